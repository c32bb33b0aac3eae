import Foundation
import XCTest
@testable import Training

/// Tests/Fixtures/trainer: the tiny BERT with a vocabulary that fits it, and three small
/// tasks over sentences of that vocabulary (written by make_data.py there).
let trainerFixtures = repositoryRoot.appendingPathComponent("Tests/Fixtures/trainer")

/// One test's scratch directory with run configs over the trainer fixtures; the real plugins
/// are found next to the test binary, where `swift build` puts them.
final class TinyRuns {
    let directory: URL

    init(_ name: String = #function) throws {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("polyhead-trainer-\(safe)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    func path(_ relative: String) -> URL { directory.appendingPathComponent(relative) }

    /// A task of the fixtures: `animal` (classification), `length` (regression) or `tags`
    /// (token classification), with head dropout so the heads draw random numbers.
    static func task(_ name: String, dev: Bool = true, test: Bool = true, plugin: String? = nil, extra: String = "") -> String {
        let data = trainerFixtures.appendingPathComponent("data").path
        var lines = ["  \(name):"]
        switch name {
        case "animal":
            lines += ["    type: classification",
                      "    head: {plugin: \(plugin ?? "polyhead.classification"), options: {pooling: cls, dropout: 0.2}}",
                      "    metrics: [accuracy, macro_f1]"]
        case "length":
            lines += ["    type: regression",
                      "    head: {plugin: \(plugin ?? "polyhead.regression"), options: {pooling: mean, dropout: 0.2}}",
                      "    fields: {label: value}"]
        case "tags":
            lines += ["    type: token_classification",
                      "    head: {plugin: \(plugin ?? "polyhead.token_classification"), options: {dropout: 0.2}}",
                      "    fields: {words: words, label: labels}",
                      "    metrics: [token_f1, accuracy]"]
        default:
            preconditionFailure("no fixture task \(name)")
        }
        lines.append("    data:")
        lines.append("      train: \(data)/\(name).train.jsonl")
        if dev { lines.append("      dev: \(data)/\(name).dev.jsonl") }
        if test { lines.append("      test: \(data)/\(name).test.jsonl") }
        if !extra.isEmpty { lines.append(extra) }
        return lines.joined(separator: "\n")
    }

    /// A run config over the tiny BERT writing into `output` (relative to the scratch directory).
    func config(tasks: [String] = [task("animal"), task("length"), task("tags")], training: String, output: String = "run") -> String {
        """
        model: \(trainerFixtures.appendingPathComponent("tiny-bert").path)
        max_length: 32
        output: \(path(output).path)
        cache_directory: \(path("cache").path)
        tasks:
        \(tasks.joined(separator: "\n"))
        training:
        \(training.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        """
    }

    /// Writes `yaml` as NAME.yaml and loads it.
    func load(_ yaml: String, name: String = "run") throws -> RunConfig {
        let file = path("\(name).yaml")
        try Data(yaml.utf8).write(to: file)
        return try RunConfig.load(file: file.path)
    }

    /// Trains to the end; the log goes nowhere (tests read metrics.jsonl and checkpoints).
    @discardableResult
    func train(_ config: RunConfig, output: String? = nil, resume: URL? = nil, keptStepCheckpoints: Int = 1,
               log: @escaping (String) -> Void = { _ in }) throws -> (trainer: MultiTaskTrainer, summary: RunSummary) {
        let trainer = try MultiTaskTrainer(config: config, outputDirectory: output.map(path), log: log)
        trainer.keptStepCheckpoints = keptStepCheckpoints
        return (trainer, try trainer.run(resume: resume))
    }

    /// metrics.jsonl of an output directory.
    func records(_ output: String = "run") throws -> [MetricsRecord] {
        try MetricsLog.read(path(output).appendingPathComponent(MetricsLog.fileName))
    }

    func checkpoint(_ name: String, output: String = "run") -> URL {
        path(output).appendingPathComponent("checkpoints").appendingPathComponent(name)
    }
}

/// Training settings shared by most tests: a linear schedule with warmup, every step logged.
func tinyTraining(steps: Int = 6, extra: String = "") -> String {
    """
    steps: \(steps)
    batch_size: 8
    optimizer: {lr: 2.0e-3, groups: {heads: {lr: 1.0e-2}}}
    schedule: {name: linear, warmup_steps: 2}
    log_interval: 1
    eval_interval: 3
    seed: 7
    \(extra)
    """
}

/// The bytes of a file, failing the test with its path when unreadable.
func bytes(_ url: URL, file: StaticString = #filePath, line: UInt = #line) throws -> Data {
    guard let data = FileManager.default.contents(atPath: url.path) else {
        XCTFail("cannot read \(url.path)", file: file, line: line)
        throw CocoaError(.fileReadNoSuchFile)
    }
    return data
}
