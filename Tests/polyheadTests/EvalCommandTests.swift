import Foundation
import XCTest

/// `polyhead eval`: a checkpoint scored with the run's own task definitions gives the numbers
/// the run logged, since both go through the same Evaluator.
final class EvalCommandTests: XCTestCase {
    private func line(_ records: [[String: Any]], kind: String, step: Int? = nil) -> [String: Any]? {
        records.last { $0["kind"] as? String == kind && (step == nil || $0["step"] as? Int == step) }
    }

    func testEvalReproducesTheRunsDevAndTestScores() throws {
        let cli = try PolyheadProcess()
        try cli.train()
        let records = try cli.metrics()

        // Default config: run.yaml two levels above the checkpoint; default split: dev.
        let dev = try cli.run(["eval", "--model", cli.path("run/checkpoints/final")])
        XCTAssertEqual(dev.status, 0, dev.errors)
        let devJSON = try dev.json()
        XCTAssertEqual(devJSON["split"] as? String, "dev")
        XCTAssertEqual(devJSON["step"] as? Int, 4)
        let logged = line(records, kind: "eval", step: 4)
        XCTAssertEqual(taskMetrics(devJSON), taskMetrics(logged))
        XCTAssertEqual(Set(taskMetrics(devJSON).keys), ["animal", "length", "tags"])
        XCTAssertEqual((devJSON["overall"] as? NSNumber)?.doubleValue, ((logged?["values"] as? [String: Any])?["overall"] as? NSNumber)?.doubleValue)

        // Test split: length has no test file and is left out, saying so.
        let test = try cli.run(["eval", "--model", cli.path("run/checkpoints/final"), "--split", "test"])
        XCTAssertEqual(test.status, 0, test.errors)
        XCTAssertEqual(taskMetrics(try test.json()), taskMetrics(line(records, kind: "test")))
        XCTAssertTrue(test.errors.contains("task length: no test file"), test.errors)

        // --data replaces one task's file: animal's test rows scored as its "dev" split.
        let replaced = try cli.run(["eval", "--model", cli.path("run/checkpoints/final"), "--task", "animal",
                                    "--data", PolyheadProcess.fixtures.appendingPathComponent("data/animal.test.jsonl").path])
        XCTAssertEqual(replaced.status, 0, replaced.errors)
        XCTAssertEqual(taskMetrics(try replaced.json()), ["animal": taskMetrics(line(records, kind: "test"))["animal"]!])

        // An explicitly named task without the split needs --data.
        let missing = try cli.run(["eval", "--model", cli.path("run/checkpoints/final"), "--task", "length", "--split", "test"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.errors.contains("task length has no test file") && missing.errors.contains("--data"), missing.errors)
        let given = try cli.run(["eval", "--model", cli.path("run/checkpoints/final"), "--task", "length", "--split", "test",
                                 "--data", PolyheadProcess.fixtures.appendingPathComponent("data/length.test.jsonl").path])
        XCTAssertEqual(given.status, 0, given.errors)
        XCTAssertEqual(Set(taskMetrics(try given.json())["length"]?.keys ?? [:].keys), ["pearson", "spearman", "mse"])
    }

    func testEvalRefusals() throws {
        let cli = try PolyheadProcess()
        try cli.train()
        let model = cli.path("run/checkpoints/final")

        let unknown = try cli.run(["eval", "--model", model, "--task", "colour"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.errors.contains("task 'colour' is not in") && unknown.errors.contains("animal, length, tags"), unknown.errors)

        let dataWithoutTask = try cli.run(["eval", "--model", model, "--data", "x.jsonl"])
        XCTAssertNotEqual(dataWithoutTask.status, 0)
        XCTAssertTrue(dataWithoutTask.errors.contains("name exactly one --task"), dataWithoutTask.errors)

        let badSplit = try cli.run(["eval", "--model", model, "--split", "train"])
        XCTAssertNotEqual(badSplit.status, 0)
        XCTAssertTrue(badSplit.errors.contains("--split must be dev or test"), badSplit.errors)

        // A checkpoint away from its run directory: no run.yaml above it, so --config is needed.
        try FileManager.default.copyItem(atPath: model, toPath: cli.path("moved"))
        let lost = try cli.run(["eval", "--model", cli.path("moved")])
        XCTAssertNotEqual(lost.status, 0)
        XCTAssertTrue(lost.errors.contains("no run config at") && lost.errors.contains("--config"), lost.errors)
        let found = try cli.run(["eval", "--model", cli.path("moved"), "--config", cli.path("run/run.yaml"), "--task", "animal"])
        XCTAssertEqual(found.status, 0, found.errors)
        XCTAssertEqual(Set(taskMetrics(try found.json()).keys), ["animal"])

        // The best checkpoint reports its own step.
        let best = try cli.run(["eval", "--model", cli.path("run/checkpoints/best"), "--task", "tags"])
        XCTAssertEqual(best.status, 0, best.errors)
        let bestStep = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cli.path("run/summary.json")))) as? [String: Any]
        XCTAssertEqual(try best.json()["step"] as? Int, bestStep?["best_step"] as? Int)
    }
}
