import Foundation
import XCTest
@testable import PluginHost

/// `polyhead plugins ...` run as a process, from the build directory.
final class CommandLineTests: XCTestCase {
    private func polyhead(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String, errors: String) {
        let executable = (Repository.builtPlugins as NSString).appendingPathComponent("polyhead")
        guard FileManager.default.isExecutableFile(atPath: executable) else { throw XCTSkip("polyhead is not built next to the tests") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: outputData, as: UTF8.self), String(decoding: errorData, as: UTF8.self))
    }

    func testListShowsBuiltHeadsAndRefusals() throws {
        let broken = try FixtureCompiler.fixture("fixture_plugin.c", output: "libmajor2-cli.so", defines: ["ANSWER_MAJOR=2"], subdirectory: "cli")
        let result = try polyhead(["plugins", "list", "--plugin-path", ExampleHead.path], environment: ["POLYHEAD_PLUGIN_PATH": broken])
        XCTAssertEqual(result.status, 0)
        for id in ["example.ordinal", "polyhead.classification", "polyhead.multi_label_classification", "polyhead.regression", "polyhead.token_classification"] {
            XCTAssertTrue(result.output.contains(id), "list lacks \(id): \(result.output)")
        }
        XCTAssertEqual(result.errors.split(separator: "\n").count, 1)
        XCTAssertTrue(result.errors.contains("refused: libmajor2-cli.so: the plugin implements ABI 2.0"), result.errors)
    }

    func testInspectShowsParametersAndExtensionFunctions() throws {
        let result = try polyhead(["plugins", "inspect", "polyhead.regression", "--config", #"{"outputs": 2, "hidden_size": 3, "standardize": true}"#, "--hidden-size", "10"])
        XCTAssertEqual(result.status, 0, result.errors)
        for fragment in ["plugin polyhead.heads.regression 1.0.0", "ABI        1.0", "toolchain  swift"] {
            XCTAssertTrue(result.output.contains(fragment), "inspect lacks \"\(fragment)\":\n\(result.output)")
        }
        // One line per parameter and per function, columns padded: compare the words.
        let lines = result.output.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        for line in ["dense.weight [3, 10] normal(0.0, 0.02) trainable", "output.bias [2] zeros trainable, no decay",
                     "target_std [2] ones buffer", "huber d(ddd) Huber loss of one prediction: huber(prediction, target, delta)"] {
            XCTAssertTrue(lines.contains(line), "inspect lacks the line \"\(line)\":\n\(result.output)")
        }
        let c = try polyhead(["plugins", "inspect", "example.ordinal", "--plugin-path", ExampleHead.path])
        XCTAssertTrue(c.output.contains("toolchain  none (no Swift runtime)"), c.output)
        XCTAssertTrue(c.output.contains("ordinal.weight  [1, 384]  normal(0.0, 0.02)"), c.output)
    }

    func testCallPrintsTheResultAndRefusesBadArguments() throws {
        XCTAssertEqual(try polyhead(["plugins", "call", "polyhead.regression.huber", "-1", "2", "1"]).output, "2.5\n")
        XCTAssertEqual(try polyhead(["plugins", "call", "example.ordinal.rank", "[0.5, 0.1, -2]", "--plugin-path", ExampleHead.path]).output, "2\n")
        let bad = try polyhead(["plugins", "call", "polyhead.regression.huber", "2.5", "one", "1"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertEqual(bad.errors.trimmingCharacters(in: .newlines), "Error: polyhead.heads.regression.huber argument 2 \"one\" is not a double (d)")
    }
}
