import Foundation
import XCTest

/// Runs the `polyhead` executable that `swift build` put next to this test binary (with the
/// head plugins) in a scratch directory, on the trainer fixtures' tiny BERT.
final class PolyheadProcess {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = repository.appendingPathComponent("Tests/Fixtures/trainer")

    let directory: URL

    init(_ name: String = #function) throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("polyhead-cli-\(name.filter { $0.isLetter })-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    func path(_ relative: String) -> String { directory.appendingPathComponent(relative).path }

    /// The built executable: beside this test binary, where `swift build` puts it.
    static func executable(file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")).map { URL(fileURLWithPath: $0) }
            ?? Bundle.main.executableURL ?? repository.appendingPathComponent(".build/debug/x")
        let executable = binary.deletingLastPathComponent().appendingPathComponent("polyhead")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            XCTFail("no polyhead at \(executable.path): run `swift build --build-tests` (scripts/test does) before the tests", file: file, line: line)
            throw CocoaError(.fileNoSuchFile)
        }
        return executable
    }

    struct Result {
        let status: Int32
        let output: String
        let errors: String
        /// Standard output parsed as one JSON object.
        func json(file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
            let object = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
            return try XCTUnwrap(object, "not a JSON object: \(output)\n\(errors)", file: file, line: line)
        }
    }

    /// Runs `polyhead ARGUMENTS` in the scratch directory; output goes through files, so a
    /// chatty command never blocks on a full pipe.
    @discardableResult
    func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = try Self.executable()
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let outputURL = directory.appendingPathComponent(".stdout"), errorsURL = directory.appendingPathComponent(".stderr")
        try Data().write(to: outputURL)
        try Data().write(to: errorsURL)
        let output = try FileHandle(forWritingTo: outputURL), errors = try FileHandle(forWritingTo: errorsURL)
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        process.waitUntilExit()
        try output.close()
        try errors.close()
        return Result(status: process.terminationStatus,
                      output: String(decoding: try Data(contentsOf: outputURL), as: UTF8.self),
                      errors: String(decoding: try Data(contentsOf: errorsURL), as: UTF8.self))
    }

    /// Writes a run config over the fixtures as NAME.yaml: animal (classification; dev, test),
    /// length (regression; dev only) and tags (token classification; dev, test), 4 steps,
    /// dev scored every 2. `seed` changes the encoder's training.
    func writeConfig(_ name: String = "run", seed: Int = 5) throws -> String {
        let data = Self.fixtures.appendingPathComponent("data").path
        let yaml = """
            model: \(Self.fixtures.appendingPathComponent("tiny-bert").path)
            max_length: 32
            output: \(path(name))
            cache_directory: \(path("cache"))
            tasks:
              - {name: animal, type: classification, metrics: [accuracy, macro_f1],
                 data: {train: \(data)/animal.train.jsonl, dev: \(data)/animal.dev.jsonl, test: \(data)/animal.test.jsonl}}
              - {name: length, type: regression, fields: {label: value},
                 data: {train: \(data)/length.train.jsonl, dev: \(data)/length.dev.jsonl}}
              - {name: tags, type: token_classification, fields: {words: words, label: labels},
                 data: {train: \(data)/tags.train.jsonl, dev: \(data)/tags.dev.jsonl, test: \(data)/tags.test.jsonl}}
            training: {steps: 4, batch_size: 8, eval_interval: 2, log_interval: 1, seed: \(seed),
                       optimizer: {lr: 3.0e-3}, schedule: {name: linear, warmup_steps: 1}}
            """
        let file = path("\(name).yaml")
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: file))
        return file
    }

    /// `polyhead train` on `writeConfig(name)`; fails the test unless it succeeds.
    func train(_ name: String = "run", seed: Int = 5, file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try run(["train", try writeConfig(name, seed: seed)])
        XCTAssertEqual(result.status, 0, result.errors, file: file, line: line)
    }

    /// The lines of an output directory's metrics.jsonl.
    func metrics(_ name: String = "run") throws -> [[String: Any]] {
        let text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: path("\(name)/metrics.jsonl"))), as: UTF8.self)
        return try text.split(separator: "\n").map { line in
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
    }
}

/// task -> metric -> value of a JSON object's "tasks".
func taskMetrics(_ object: [String: Any]?) -> [String: [String: Double]] {
    (object?["tasks"] as? [String: [String: Any]] ?? [:]).mapValues { $0.compactMapValues { ($0 as? NSNumber)?.doubleValue } }
}
