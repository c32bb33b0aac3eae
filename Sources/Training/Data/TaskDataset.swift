import Foundation

/// A task's label for one example, with class names already turned into indices into the
/// task's label set.
public enum LabelValue: Sendable, Equatable, Hashable {
    /// classification: one class.
    case classIndex(Int)
    /// multi_label: the positive classes, ascending (possibly none).
    case classIndices([Int])
    /// regression: one value per output.
    case values([Float])
    /// token_classification: one class per word.
    case wordClasses([Int])

    /// The label as a plugin reads it in the data: class names, numbers or lists of them.
    public func jsonNode(labelNames: [String]) -> JSONNode {
        func name(_ index: Int) -> JSONNode { .string(labelNames[index]) }
        switch self {
        case .classIndex(let index): return name(index)
        case .classIndices(let indices): return .array(indices.map(name))
        case .values(let values): return values.count == 1 ? .number(Double(values[0])) : .array(values.map { .number(Double($0)) })
        case .wordClasses(let indices): return .array(indices.map(name))
        }
    }
}

/// One labelled example of one task.
public struct TaskExample: Sendable, Equatable {
    /// Line of the data file the row starts on.
    public var line: Int
    public var text: String
    public var textPair: String?
    /// Token tasks: the words the labels align with; nil otherwise.
    public var words: [String]?
    public var label: LabelValue
}

/// The labelled rows of one task in one split.
///
/// Rows without a label for the task (the field absent, null, or an empty CSV cell) are
/// masked: they are not examples of this task, are never guessed, and are counted in
/// `maskedRowCount`. In a file shared by several tasks such a row usually belongs to
/// another task; `TaskExample.line` identifies the same row across tasks.
public struct TaskDataset: Sendable {
    public var task: String
    public var split: DataSplit
    /// The file as named in the config.
    public var file: String
    public var type: TaskType
    /// Class names in index order; empty for regression.
    public var labelNames: [String]
    /// Regression: values per label (from the first labelled training row); nil otherwise.
    public var outputCount: Int?
    public var examples: [TaskExample]
    /// Rows without a label for this task.
    public var maskedRowCount: Int
    /// Rows skipped as malformed (only with `skip_malformed_rows`), each with file:line and
    /// what was wrong.
    public var skipped: [DataIssue]

    public var count: Int { examples.count }
    public var skippedRowCount: Int { skipped.count }

    /// How often each class occurs as a target (per word for token tasks, per positive
    /// class for multi-label); empty for regression.
    public func classCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: labelNames.count)
        for example in examples {
            switch example.label {
            case .classIndex(let index): counts[index] += 1
            case .classIndices(let indices), .wordClasses(let indices): for index in indices { counts[index] += 1 }
            case .values: break
            }
        }
        return counts
    }
}

/// Why one row cannot give an example for a task. `fatal` problems stop the run even when
/// malformed rows may be skipped: an unknown label means the label set or the data is
/// wrong, and skipping it would quietly change what is evaluated.
struct RowProblem: Error {
    var message: String
    var hint: String?
    var fatal = false
}

/// A class as written in a row, before it is looked up in the label set.
enum RawClass: Equatable {
    case name(String)
    case index(Int)

    /// The name used when the label set is inferred: integers stand for themselves.
    var inferredName: String {
        switch self {
        case .name(let name): return name
        case .index(let index): return String(index)
        }
    }
}

/// Turns one row's fields into a task example for a task type and label set.
struct RowInterpreter {
    let task: String
    let type: TaskType
    let fields: FieldNames
    /// The label set; indices follow its order.
    let labelNames: [String]
    /// True when the set comes from the config: integers in the data are then indices into
    /// it. When it is inferred, an integer label is the name of a class ("3").
    let labelsConfigured: Bool
    let labelIndex: [String: Int]
    /// Regression: the number of values every label must have, once known.
    var outputCount: Int?

    init(task: String, type: TaskType, fields: FieldNames, labelNames: [String], labelsConfigured: Bool, outputCount: Int?) {
        self.task = task
        self.type = type
        self.fields = fields
        self.labelNames = labelNames
        self.labelsConfigured = labelsConfigured
        self.outputCount = outputCount
        var index: [String: Int] = [:]
        for (position, name) in labelNames.enumerated() { index[name] = position }
        labelIndex = index
    }

    /// The example, or nil when the row has no label for this task (masked).
    mutating func example(from record: DataRecord) throws(RowProblem) -> TaskExample? {
        var words: [String]?
        if type == .tokenClassification, let wordsField = fields.words {
            guard let value = record[wordsField] else {
                throw RowProblem(message: "missing field '\(wordsField)' (the words of a token task)", hint: hintForMissing(wordsField, key: "words"))
            }
            words = try stringList(value, field: wordsField)
            if words?.isEmpty == true { throw RowProblem(message: "field '\(wordsField)' is an empty list; a token task needs at least one word") }
        }
        let text: String
        if let value = record[fields.text] {
            text = try string(value, field: fields.text)
        } else if let words {
            text = words.joined(separator: " ")
        } else {
            throw RowProblem(message: "missing field '\(fields.text)'", hint: hintForMissing(fields.text, key: "text"))
        }
        var textPair: String?
        if let pairField = fields.textPair {
            guard let value = record[pairField] else {
                throw RowProblem(message: "missing field '\(pairField)' (the second text of the pair)", hint: hintForMissing(pairField, key: "text_pair"))
            }
            textPair = try string(value, field: pairField)
        }
        guard let labelValue = record[fields.label], !isMissing(labelValue) else { return nil }
        let label = try self.label(labelValue, words: words)
        return TaskExample(line: record.line, text: text, textPair: textPair, words: words, label: label)
    }

    func hintForMissing(_ field: String, key: String) -> String {
        "the task \(task) reads fields.\(key) = '\(field)'; add the field to every row or change fields.\(key)"
    }

    /// Absent labels: JSON null or an empty cell.
    func isMissing(_ value: FieldValue) -> Bool {
        switch value {
        case .json(let json): return json.isNull
        case .cell(let cell): return cell.isEmpty
        }
    }

    func string(_ value: FieldValue, field: String) throws(RowProblem) -> String {
        switch value {
        case .cell(let cell): return cell
        case .json(.string(let string)): return string
        case .json(let json): throw RowProblem(message: "field '\(field)': expected a string, got \(json.kindDescription)")
        }
    }

    /// A JSON array; in a CSV/TSV cell, the array written as JSON text.
    func array(_ value: FieldValue, field: String, what: String) throws(RowProblem) -> [JSONNode] {
        switch value {
        case .json(.array(let elements)): return elements
        case .json(let json): throw RowProblem(message: "field '\(field)': expected a list of \(what), got \(json.kindDescription)")
        case .cell(let cell):
            guard let parsed = try? JSONNode.parse(cell), case .array(let elements) = parsed else {
                throw RowProblem(message: "field '\(field)': expected a list of \(what) written as a JSON array, got \"\(cell.prefix(40))\"",
                                 hint: "write the cell as [\"a\", \"b\"] (in CSV: \"[\"\"a\"\", \"\"b\"\"]\")")
            }
            return elements
        }
    }

    func stringList(_ value: FieldValue, field: String) throws(RowProblem) -> [String] {
        var strings: [String] = []
        for (position, element) in try array(value, field: field, what: "strings").enumerated() {
            guard case .string(let string) = element else {
                throw RowProblem(message: "field '\(field)'[\(position)]: expected a string, got \(element.kindDescription)")
            }
            strings.append(string)
        }
        return strings
    }

    func label(_ value: FieldValue, words: [String]?) throws(RowProblem) -> LabelValue {
        let field = fields.label
        switch type {
        case .classification:
            return .classIndex(try resolve(try rawClass(value, field: field), field: field))
        case .multiLabel:
            var indices: [Int] = []
            for (position, element) in try array(value, field: field, what: "labels").enumerated() {
                let index = try resolve(try rawClass(.json(element), field: "\(field)[\(position)]"), field: "\(field)[\(position)]")
                if indices.contains(index) { throw RowProblem(message: "field '\(field)' lists '\(labelNames[index])' twice") }
                indices.append(index)
            }
            return .classIndices(indices.sorted())
        case .regression:
            let values = try numbers(value, field: field)
            if let outputCount, values.count != outputCount {
                throw RowProblem(message: "field '\(field)': expected \(outputCount) value\(outputCount == 1 ? "" : "s") as in the first training row, got \(values.count)")
            }
            return .values(values)
        case .tokenClassification:
            let elements = try array(value, field: field, what: "labels, one per word")
            let wordCount = words?.count ?? 0
            guard elements.count == wordCount else {
                throw RowProblem(message: "\(wordCount) words in '\(fields.words ?? "words")' but \(elements.count) labels in '\(field)'",
                                 hint: "give exactly one label per word (\"O\" for words outside any entity)")
            }
            var indices: [Int] = []
            for (position, element) in elements.enumerated() {
                indices.append(try resolve(try rawClass(.json(element), field: "\(field)[\(position)]"), field: "\(field)[\(position)]"))
            }
            return .wordClasses(indices)
        }
    }

    func rawClass(_ value: FieldValue, field: String) throws(RowProblem) -> RawClass {
        switch value {
        case .json(.string(let name)): return .name(name)
        case .json(.integer(let index)): return .index(index)
        case .json(let json):
            throw RowProblem(message: "field '\(field)': expected a class name or index, got \(json.kindDescription)")
        case .cell(let cell):
            // A cell is a name; with a configured label set, a number that is not itself a
            // name is an index into the set.
            if labelsConfigured, labelIndex[cell] == nil, let index = Int(cell) { return .index(index) }
            return .name(cell)
        }
    }

    func resolve(_ raw: RawClass, field: String) throws(RowProblem) -> Int {
        switch raw {
        case .index(let index) where labelsConfigured:
            guard labelNames.indices.contains(index) else {
                throw RowProblem(message: "class index \(index) in field '\(field)' is out of range for task \(task) (0..<\(labelNames.count)); known labels: \(knownLabels)",
                                 hint: "fix the row or tasks.\(task).labels", fatal: true)
            }
            return index
        default:
            let name = raw.inferredName
            guard let index = labelIndex[name] else {
                let suggestion = NameSuggestion.didYouMean(name, among: labelNames)
                let remedy = labelsConfigured ? "add it to tasks.\(task).labels or fix the row" : "labels are inferred from the training file; fix the row or list the labels in tasks.\(task).labels"
                throw RowProblem(message: "unknown label '\(name)' for task \(task); known labels: \(knownLabels)",
                                 hint: [suggestion, remedy].compactMap { $0 }.joined(separator: " "), fatal: true)
            }
            return index
        }
    }

    var knownLabels: String {
        let shown = labelNames.prefix(40).joined(separator: ", ")
        return labelNames.count > 40 ? shown + ", ... (\(labelNames.count) in all)" : shown
    }

    func numbers(_ value: FieldValue, field: String) throws(RowProblem) -> [Float] {
        func number(_ json: JSONNode, _ name: String) throws(RowProblem) -> Float {
            guard let double = json.doubleValue else {
                throw RowProblem(message: "field '\(name)': expected a number, got \(json.kindDescription)")
            }
            return Float(double)
        }
        switch value {
        case .json(.array(let elements)):
            guard !elements.isEmpty else { throw RowProblem(message: "field '\(field)': expected at least one value, got an empty list") }
            var values: [Float] = []
            for (position, element) in elements.enumerated() { values.append(try number(element, "\(field)[\(position)]")) }
            return values
        case .json(let json):
            return [try number(json, field)]
        case .cell(let cell):
            if let double = Double(cell.trimmingCharacters(in: .whitespaces)), double.isFinite { return [Float(double)] }
            if cell.hasPrefix("[") { return try numbers(.json(.array(try array(value, field: field, what: "numbers"))), field: field) }
            throw RowProblem(message: "field '\(field)': expected a number, got \"\(cell.prefix(40))\"")
        }
    }

    /// The class names a row would contribute to an inferred label set; nil when the row
    /// has no (readable) label. Malformed rows are reported by the main pass, not here.
    func inferenceNames(from record: DataRecord) -> [String]? {
        guard let value = record[fields.label], !isMissing(value) else { return nil }
        do throws(RowProblem) {
            switch type {
            case .classification:
                return [try rawClass(value, field: fields.label).inferredName]
            case .multiLabel, .tokenClassification:
                return try array(value, field: fields.label, what: "labels").map { element throws(RowProblem) in
                    try rawClass(.json(element), field: fields.label).inferredName
                }
            case .regression:
                return nil
            }
        } catch {
            return nil
        }
    }
}
