import Foundation
import XCTest

/// `polyhead train` as a process: errors naming the task, and output directories reused.
final class TrainCommandTests: XCTestCase {
    /// A run config naming a head plugin nobody provides stops `polyhead train` with the task.
    func testTrainNamesTheTaskOfAnUnknownHeadPlugin() throws {
        let cli = try PolyheadProcess()
        let config = try cli.writeConfig()
        let text = try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "{name: length, type: regression,", with: "{name: length, type: regression, head: polyhead.regressor,")
        try Data(text.utf8).write(to: URL(fileURLWithPath: config))
        let result = try cli.run(["train", config])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.errors.contains("task length") && result.errors.contains("\"polyhead.regressor\""), result.errors)
        XCTAssertTrue(result.errors.contains("run.yaml:"), result.errors)
    }

    /// A new run in an output directory holding an earlier run moves that run to previous/
    /// (whole: its config, log and checkpoints) instead of mixing with it.
    func testNewRunMovesAnEarlierRunAside() throws {
        let cli = try PolyheadProcess()
        try cli.train()
        let firstFinal = try Data(contentsOf: URL(fileURLWithPath: cli.path("run/checkpoints/final/checkpoint.json")))
        try cli.train(seed: 9)
        XCTAssertEqual(try cli.metrics().filter { $0["kind"] as? String == "train" }.count, 4, "one run's lines only")
        XCTAssertEqual(try cli.metrics("run/previous").filter { $0["kind"] as? String == "train" }.count, 4)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: cli.path("run/previous/checkpoints/final/checkpoint.json"))), firstFinal)
        let steps = try FileManager.default.contentsOfDirectory(atPath: cli.path("run/checkpoints")).filter { $0.hasPrefix("step-") }
        XCTAssertEqual(steps, ["step-4"])
        let earlier = try cli.run(["eval", "--model", cli.path("run/previous/checkpoints/final"), "--task", "animal"])
        XCTAssertEqual(earlier.status, 0, "previous/ holds its own run.yaml: \(earlier.errors)")

        // A resumed run stays where it is.
        let resumed = try cli.run(["train", cli.path("run.yaml"), "--resume", cli.path("run/checkpoints/step-4")])
        XCTAssertEqual(resumed.status, 0, resumed.errors)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: cli.path("run/previous/checkpoints/final/checkpoint.json"))), firstFinal)
    }
}
