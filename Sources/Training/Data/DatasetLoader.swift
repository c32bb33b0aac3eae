/// One task's data: its label set and its splits.
public struct TaskData: Sendable {
    public var config: TaskConfig
    /// Class names in index order (configured, or inferred from the training file); empty
    /// for regression.
    public var labelNames: [String]
    /// Regression: values per label.
    public var outputCount: Int?
    public var train: TaskDataset
    public var dev: TaskDataset?
    public var test: TaskDataset?
    /// Per-class loss weights from `class_weights`; nil for `none` or regression.
    public var classWeights: [Float]?

    public var splits: [TaskDataset] { [train, dev, test].compactMap { $0 } }
}

/// Every task's data for a run.
public struct MultiTaskData: Sendable {
    public var tasks: [TaskData]

    /// Malformed rows skipped over all tasks and splits, each row once even when its file
    /// serves several tasks; the trainer logs it.
    public var skippedRowCount: Int { skippedRows.count }

    /// Every skipped row once, in task and split order, for the log.
    public var skippedRows: [DataIssue] {
        var seen = Set<String>()
        return tasks.flatMap { $0.splits.flatMap(\.skipped) }.filter { seen.insert("\($0.line):\($0.file)").inserted }
    }
}

/// Reads the data files of a run's tasks. A file listed under several tasks (each reading its
/// own label field) is read once and interpreted per task.
///
/// ```swift
/// var loader = DatasetLoader(skipMalformedRows: config.training.skipMalformedRows)
/// let data = try loader.load(config)
/// if data.skippedRowCount > 0 { log("skipped \(data.skippedRowCount) malformed rows") }
/// ```
public struct DatasetLoader {
    public var skipMalformedRows: Bool
    /// Files read so far, by path.
    private var files: [String: DataFileContents] = [:]

    public init(skipMalformedRows: Bool) {
        self.skipMalformedRows = skipMalformedRows
    }

    /// Loads every task of a run: infers label sets, reads every split, computes class weights.
    /// - Throws: `DataError` for bad files or rows, `ConfigError` for explicit class weights
    ///   naming a label the data does not have.
    public mutating func load(_ config: RunConfig) throws -> MultiTaskData {
        MultiTaskData(tasks: try config.tasks.map { try load($0) })
    }

    /// Loads one task's splits.
    public mutating func load(_ task: TaskConfig) throws -> TaskData {
        let labelNames: [String]
        if task.type.hasClasses {
            labelNames = try task.labels ?? inferLabels(task)
        } else {
            labelNames = []
        }
        let train = try read(task, split: .train, path: task.data.train, labelNames: labelNames, outputCount: nil)
        if train.examples.isEmpty {
            throw DataError(file: task.data.train, line: nil, message: "no row has a label for task \(task.name) (field '\(task.fields.label)')",
                            hint: "check fields.label for the task")
        }
        let dev = try load(task, split: .dev, labelNames: labelNames, outputCount: train.outputCount)
        let test = try load(task, split: .test, labelNames: labelNames, outputCount: train.outputCount)
        let weights = try ClassWeights.compute(task.classWeights, labelNames: labelNames, counts: train.classCounts())
        return TaskData(config: task, labelNames: labelNames, outputCount: train.outputCount, train: train, dev: dev, test: test, classWeights: weights)
    }

    /// Reads one split of a task.
    /// - Parameters:
    ///   - labelNames: the task's label set (ignored for regression).
    ///   - outputCount: regression values per label, from the training split; nil to take it
    ///     from the first labelled row.
    /// - Returns: the split, or nil when the task has no file for it.
    public mutating func load(_ task: TaskConfig, split: DataSplit, labelNames: [String], outputCount: Int?) throws -> TaskDataset? {
        guard let path = task.data.bySplit.first(where: { $0.split == split })?.path else { return nil }
        return try read(task, split: split, path: path, labelNames: labelNames, outputCount: outputCount)
    }

    private mutating func read(_ task: TaskConfig, split: DataSplit, path: String, labelNames: [String], outputCount: Int?) throws -> TaskDataset {
        let contents = try file(path)
        var interpreter = RowInterpreter(task: task.name, type: task.type, fields: task.fields, labelNames: labelNames,
                                         labelsConfigured: task.labels != nil, outputCount: outputCount)
        var dataset = TaskDataset(task: task.name, split: split, file: path, type: task.type, labelNames: task.type.hasClasses ? labelNames : [],
                                  outputCount: outputCount, examples: [], maskedRowCount: 0, skipped: contents.malformed)
        for record in contents.records {
            do throws(RowProblem) {
                guard let example = try interpreter.example(from: record) else {
                    dataset.maskedRowCount += 1
                    continue
                }
                if case .values(let values) = example.label, interpreter.outputCount == nil {
                    interpreter.outputCount = values.count
                    dataset.outputCount = values.count
                }
                dataset.examples.append(example)
            } catch {
                if skipMalformedRows, !error.fatal {
                    dataset.skipped.append(DataIssue(file: path, line: record.line, message: error.message))
                } else {
                    throw DataError(file: path, line: record.line, message: error.message,
                                    hint: error.hint ?? (error.fatal ? nil : "fix the row, or set training.skip_malformed_rows: true to skip such rows"))
                }
            }
        }
        return dataset
    }

    /// The label set of a task whose config lists none: the sorted unique class names of
    /// its training file (numerically when every name is an integer, so "2" < "10";
    /// otherwise by Unicode code points).
    public mutating func inferLabels(_ task: TaskConfig) throws -> [String] {
        let contents = try file(task.data.train)
        let interpreter = RowInterpreter(task: task.name, type: task.type, fields: task.fields, labelNames: [], labelsConfigured: false, outputCount: nil)
        var names = Set<String>()
        for record in contents.records {
            if let rowNames = interpreter.inferenceNames(from: record) { names.formUnion(rowNames) }
        }
        guard !names.isEmpty else {
            throw DataError(file: task.data.train, line: nil, message: "no labels found for task \(task.name) in field '\(task.fields.label)'",
                            hint: "check fields.label, or list the labels in tasks.\(task.name).labels")
        }
        return Self.sortedLabelNames(names)
    }

    static func sortedLabelNames(_ names: Set<String>) -> [String] {
        let integers = names.compactMap { Int($0) }
        if integers.count == names.count { return integers.sorted().map(String.init) }
        return names.sorted { Array($0.unicodeScalars.map(\.value)).lexicographicallyPrecedes($1.unicodeScalars.map(\.value)) }
    }

    private mutating func file(_ path: String) throws -> DataFileContents {
        if let contents = files[path] { return contents }
        let contents = try DataFileReader.read(path: path, skipMalformed: skipMalformedRows)
        files[path] = contents
        return contents
    }
}
