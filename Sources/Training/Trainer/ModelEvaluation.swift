import Foundation

/// Scores a trained model directory on dev or test rows, with the task definitions (type,
/// fields, metrics, data files) of a run config: what `polyhead eval` does.
///
/// ```swift
/// let config = try RunConfig.load(file: ModelEvaluation.defaultConfig(modelDirectory: best).path)
/// var request = ModelEvaluation.Request(modelDirectory: best, config: config)
/// request.split = .test
/// let result = try ModelEvaluation.run(request)
/// print(String(decoding: try result.jsonData(), as: UTF8.self))
/// ```
public enum ModelEvaluation {
    public struct Request {
        /// A checkpoint (`runs/X/checkpoints/best`) or a model directory with imported heads.
        public var modelDirectory: URL
        /// Defines the tasks; usually the `run.yaml` that `polyhead train` copied.
        public var config: RunConfig
        /// Tasks to score; empty scores every task of the config the model has a head for.
        public var tasks: [String] = []
        public var split = DataSplit.dev
        /// Replaces the split's file of the one task in `tasks`.
        public var dataFile: String?
        /// Searched before the config's `plugin_path`.
        public var pluginPaths: [String] = []

        public init(modelDirectory: URL, config: RunConfig) {
            self.modelDirectory = modelDirectory
            self.config = config
        }
    }

    /// What `polyhead eval` prints.
    public struct Result: Encodable, Equatable {
        public var model: String
        /// The checkpoint's step; nil for a model directory that is not a checkpoint.
        public var step: Int?
        public var split: String
        /// task -> metric -> value.
        public var tasks: [String: [String: Double]]
        /// The mean of the scored tasks' primary metrics.
        public var overall: Double

        /// Sorted keys, two-space indentation; non-finite values as "NaN", "Infinity", "-Infinity".
        public func jsonData() throws -> Data {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
            return try encoder.encode(self)
        }
    }

    /// `<output>/run.yaml` for a checkpoint `<output>/checkpoints/NAME`: the config
    /// `polyhead train` copies into its output directory.
    public static func defaultConfig(modelDirectory: URL) -> URL {
        modelDirectory.standardizedFileURL.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("run.yaml")
    }

    /// Loads the model and the requested rows, scores them.
    /// - Parameter note: receives one line per task left out (no head, or no file for the split).
    /// - Throws: `TrainerError.evaluation` for a request that does not fit the config or the
    ///   model; data, checkpoint and plugin errors.
    public static func run(_ request: Request, note: (String) -> Void = { _ in }) throws -> Result {
        let config = request.config
        let split = request.split
        for name in request.tasks where config.task(named: name) == nil {
            throw TrainerError.evaluation("task '\(name)' is not in \(config.file) (its tasks: \(config.tasks.map(\.name).joined(separator: ", ")))")
        }
        if request.dataFile != nil, request.tasks.count != 1 {
            throw TrainerError.evaluation("--data replaces one task's \(split.rawValue) file: name exactly one --task")
        }
        let layout = ModelDirectoryLayout(request.modelDirectory)
        let heads = Set(try layout.headTasks())
        var names = request.tasks
        if names.isEmpty {
            for task in config.tasks {
                if heads.contains(task.name) {
                    names.append(task.name)
                } else {
                    note("task \(task.name): no head in \(request.modelDirectory.path); left out")
                }
            }
            guard !names.isEmpty else {
                throw TrainerError.evaluation("\(request.modelDirectory.path) has no head for any task of \(config.file) (its heads: \(heads.sorted().joined(separator: ", ")))")
            }
        }
        let model = try MultiTaskModel.load(checkpoint: request.modelDirectory, pluginPaths: request.pluginPaths + config.pluginPaths, tasks: names)
        let preparer = try SplitPreparer(tokenizer: model.tokenizer, modelDirectory: model.tokenizerDirectory,
                                         maxLength: config.maxLength, cacheDirectory: config.cacheDirectory)
        var loader = DatasetLoader(skipMalformedRows: config.training.skipMalformedRows)
        var inputs: [EvaluationInput] = []
        for name in names {
            guard var task = config.task(named: name), let head = model.head(named: name) else { continue }
            guard head.type == task.type else {
                throw TrainerError.evaluation("task \(name) is a \(task.type.rawValue) task in \(config.file) but its head is a \(head.type.rawValue) head")
            }
            if let labels = task.labels, labels != head.labelNames {
                throw TrainerError.evaluation("task \(name) lists labels \(labels) in \(config.file) but its head predicts \(head.labelNames)")
            }
            if let dataFile = request.dataFile {
                switch split {
                case .train: task.data.train = dataFile
                case .dev: task.data.dev = dataFile
                case .test: task.data.test = dataFile
                }
            }
            guard let rows = try loader.load(task, split: split, labelNames: head.labelNames, outputCount: nil) else {
                guard request.tasks.isEmpty else {
                    throw TrainerError.evaluation("task \(name) has no \(split.rawValue) file in \(config.file); name one with --data FILE")
                }
                note("task \(name): no \(split.rawValue) file in \(config.file); left out")
                continue
            }
            inputs.append(EvaluationInput(task: task, labelNames: head.labelNames, split: try preparer.prepare(rows, fields: task.fields)))
        }
        guard !inputs.isEmpty else {
            throw TrainerError.evaluation("no task has a \(split.rawValue) file in \(config.file); name one with --task NAME --data FILE")
        }
        let report = try Evaluator(model: model).evaluate(inputs)
        return Result(model: request.modelDirectory.path, step: try layout.checkpointManifest()?.step, split: split.rawValue,
                      tasks: report.dictionary, overall: report.overall)
    }
}
