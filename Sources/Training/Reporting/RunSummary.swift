import Foundation

/// The end-of-run report: `summary.json` (for tools) and `summary.md` (for people) in the
/// output directory.
///
/// ```swift
/// var summary = RunSummary(runName: "wordnet", totalSteps: 2000)
/// summary.completedSteps = 2000
/// summary.tasks = [RunSummary.TaskResult(task: "supersense", taskType: "classification",
///     dev: ["accuracy": 0.81], test: ["accuracy": 0.79], baselines: ["majority class": ["accuracy": 0.22]])]
/// try summary.write(to: outputDirectory)
/// ```
public struct RunSummary: Codable, Equatable, Sendable {
    public struct TaskResult: Codable, Equatable, Sendable {
        public var task: String
        public var taskType: String?
        /// Metric -> value on the dev split, at the best step (or the last, without one).
        public var dev: [String: Double]
        /// Metric -> value on the test split.
        public var test: [String: Double]
        /// Baseline name (e.g. "majority class", "PyTorch reference") -> metric -> value.
        public var baselines: [String: [String: Double]]

        public init(task: String, taskType: String? = nil, dev: [String: Double] = [:], test: [String: Double] = [:],
                    baselines: [String: [String: Double]] = [:]) {
            self.task = task
            self.taskType = taskType
            self.dev = dev
            self.test = test
            self.baselines = baselines
        }

        enum CodingKeys: String, CodingKey {
            case task, dev, test, baselines
            case taskType = "task_type"
        }
    }

    public struct Timings: Codable, Equatable, Sendable {
        public var wallSeconds: Double
        public var trainingSeconds: Double
        public var evaluationSeconds: Double
        public var sequencesPerSecond: Double?

        public init(wallSeconds: Double = 0, trainingSeconds: Double = 0, evaluationSeconds: Double = 0, sequencesPerSecond: Double? = nil) {
            self.wallSeconds = wallSeconds
            self.trainingSeconds = trainingSeconds
            self.evaluationSeconds = evaluationSeconds
            self.sequencesPerSecond = sequencesPerSecond
        }

        enum CodingKeys: String, CodingKey {
            case wallSeconds = "wall_seconds"
            case trainingSeconds = "training_seconds"
            case evaluationSeconds = "evaluation_seconds"
            case sequencesPerSecond = "sequences_per_second"
        }
    }

    public var runName: String
    /// ISO 8601 times, UTC.
    public var started: String?
    public var finished: String?
    public var totalSteps: Int
    public var completedSteps: Int
    public var bestStep: Int?
    /// What "best" maximised or minimised, e.g. "mean dev accuracy".
    public var bestMetricName: String?
    public var bestMetricValue: Double?
    public var tasks: [TaskResult]
    public var timings: Timings
    /// Checkpoint name -> path relative to the output directory.
    public var checkpoints: [String: String]
    /// Anything else worth a line (resumed at step N, stopped early, ...).
    public var notes: [String]

    public init(runName: String, totalSteps: Int) {
        self.runName = runName
        self.totalSteps = totalSteps
        self.completedSteps = 0
        self.tasks = []
        self.timings = Timings()
        self.checkpoints = [:]
        self.notes = []
    }

    enum CodingKeys: String, CodingKey {
        case runName = "run_name"
        case started, finished, tasks, timings, checkpoints, notes
        case totalSteps = "total_steps"
        case completedSteps = "completed_steps"
        case bestStep = "best_step"
        case bestMetricName = "best_metric_name"
        case bestMetricValue = "best_metric_value"
    }

    /// Per-task dev and test metrics read from a run's metrics log: dev from the `.eval` line
    /// at `devStep` (the best step; none when no line has that step; the last `.eval` line
    /// when `devStep` is nil), test from the last `.test` line. Tasks are sorted by name; baselines are left for the caller to add.
    public static func taskResults(from records: [MetricsRecord], devStep: Int?) -> [TaskResult] {
        let evaluations = records.filter { $0.kind == .eval }
        let dev = devStep.map { step in evaluations.last { $0.step == step } } ?? evaluations.last
        let test = records.last { $0.kind == .test }
        let taskNames = Set(dev?.tasks.keys.map { $0 } ?? []).union(test?.tasks.keys.map { $0 } ?? [])
        return taskNames.sorted().map { task in
            TaskResult(task: task, dev: dev?.tasks[task] ?? [:], test: test?.tasks[task] ?? [:])
        }
    }

    public static let jsonFileName = "summary.json"
    public static let markdownFileName = "summary.md"

    /// Writes `summary.json` and `summary.md` into `directory`, each atomically.
    /// - Throws: `CheckpointError.cannotWrite` naming the file.
    public func write(to directory: URL) throws {
        try DurableFiles.createDirectory(directory)
        try DurableFiles.replace(jsonData(), at: directory.appendingPathComponent(Self.jsonFileName))
        try DurableFiles.replace(Data(markdown().utf8), at: directory.appendingPathComponent(Self.markdownFileName))
    }

    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return try encoder.encode(self)
    }

    /// - Throws: `DecodingError` when `data` is not a summary.
    public static func decode(_ data: Data) throws -> RunSummary {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return try decoder.decode(RunSummary.self, from: data)
    }

    /// The readable report: a key-facts table, then one row per task and metric with dev,
    /// test and every baseline side by side.
    public func markdown() -> String {
        var lines = ["# Polyhead run: \(Self.escaped(runName))", "", "| | |", "| --- | --- |"]
        lines.append("| Steps | \(completedSteps) of \(totalSteps) |")
        if let bestStep {
            var best = "\(bestStep)"
            if let name = bestMetricName, let value = bestMetricValue {
                best += " (\(Self.escaped(name)) \(Self.format(value)))"
            }
            lines.append("| Best step | \(best) |")
        }
        if let started { lines.append("| Started | \(started) |") }
        if let finished { lines.append("| Finished | \(finished) |") }
        lines.append("| Wall time | \(Self.duration(timings.wallSeconds)) (training \(Self.duration(timings.trainingSeconds)), evaluation \(Self.duration(timings.evaluationSeconds))) |")
        if let rate = timings.sequencesPerSecond {
            lines.append("| Training throughput | \(String(format: "%.2f", rate)) sequences/s |")
        }
        for name in checkpoints.keys.sorted() {
            lines.append("| Checkpoint \(Self.escaped(name)) | `\(checkpoints[name] ?? "")` |")
        }

        lines += ["", "## Results", ""]
        if tasks.isEmpty {
            lines.append("No task results were recorded.")
        } else {
            let baselineNames = Set(tasks.flatMap { $0.baselines.keys }).sorted()
            let header = ["Task", "Metric", "Dev", "Test"] + baselineNames.map(Self.escaped)
            lines.append("| " + header.joined(separator: " | ") + " |")
            lines.append("|" + Array(repeating: " --- |", count: 2).joined() + Array(repeating: " ---: |", count: header.count - 2).joined())
            for result in tasks {
                var metricNames = Set(result.dev.keys).union(result.test.keys)
                for baseline in result.baselines.values { metricNames.formUnion(baseline.keys) }
                let taskLabel = Self.escaped(result.task) + (result.taskType.map { " (\(Self.escaped($0)))" } ?? "")
                for metric in metricNames.sorted() {
                    var cells = [taskLabel, Self.escaped(metric), Self.cell(result.dev[metric]), Self.cell(result.test[metric])]
                    cells += baselineNames.map { Self.cell(result.baselines[$0]?[metric]) }
                    lines.append("| " + cells.joined(separator: " | ") + " |")
                }
            }
        }
        if !notes.isEmpty {
            lines += ["", "## Notes", ""]
            lines += notes.map { "- " + $0 }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func cell(_ value: Double?) -> String {
        value.map(format) ?? "–"
    }

    static func format(_ value: Double) -> String {
        guard value.isFinite else { return value.isNaN ? "NaN" : (value > 0 ? "∞" : "-∞") }
        if value != 0 && (abs(value) >= 1e5 || abs(value) < 1e-3) {
            return String(format: "%.3e", value)
        }
        return String(format: "%.4f", value)
    }

    /// "1h 02m", "4m 05s", "12.3s".
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        if seconds < 60 { return String(format: "%.1fs", seconds) }
        let whole = Int(seconds.rounded())
        if whole < 3600 { return String(format: "%dm %02ds", whole / 60, whole % 60) }
        return String(format: "%dh %02dm", whole / 3600, (whole % 3600) / 60)
    }

    /// Keeps a name from breaking the table.
    private static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }
}
