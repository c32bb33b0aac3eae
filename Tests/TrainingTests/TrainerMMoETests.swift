import Foundation
import SafeTensors
import XCTest
@testable import Training

/// A polyhead.mmoe router shared by several tasks: each routed task's features go through the
/// router before its head; the router trains (group "routers"), logs expert usage, checkpoints
/// and resumes exactly, and a checkpoint predicts through it.
final class TrainerMMoETests: XCTestCase {
    static let routerYAML = """

        routers:
          shared: {plugin: polyhead.mmoe, options: {experts: 3, expert_width: 24, pooling: token, gate_noise: 0.1}}
        """

    static let training = tinyTraining(steps: 8, extra: """
        gradient_accumulation: 2
        optimizer: {lr: 2.0e-3, groups: {heads: {lr: 1.0e-2}, routers: {lr: 1.0e-2}}}
        """).replacingOccurrences(of: "optimizer: {lr: 2.0e-3, groups: {heads: {lr: 1.0e-2}}}\n", with: "")

    private func trainLosses(_ records: [MetricsRecord]) -> [Int: Double] {
        Dictionary(uniqueKeysWithValues: records.filter { $0.kind == .train }.map { ($0.step, $0.values["loss"]!) })
    }

    func testSharedRouterTrainsLogsUsageAndResumesExactly() throws {
        let runs = try TinyRuns()
        // animal and tags share the router; length goes straight to its head.
        let tasks = [TinyRuns.task("animal", extra: "    router: shared"), TinyRuns.task("length"), TinyRuns.task("tags", extra: "    router: shared")]
        let config = try runs.load(runs.config(tasks: tasks, training: Self.training) + Self.routerYAML)
        let (trainer, _) = try runs.train(config, keptStepCheckpoints: 3)
        XCTAssertEqual(trainer.model.routers.map(\.instance.taskNames), [["animal", "tags"]])
        XCTAssertEqual(trainer.model.head(named: "animal")?.instance.inputWidth, 24)
        XCTAssertEqual(trainer.model.head(named: "length")?.instance.inputWidth, 32)

        let records = try runs.records()
        let losses = trainLosses(records)
        XCTAssertEqual(losses.count, 8)
        XCTAssertLessThan((losses[6]! + losses[7]! + losses[8]!) / 3, (losses[1]! + losses[2]! + losses[3]!) / 3, "\(losses.sorted { $0.key < $1.key })")

        // Expert usage on every train line: per routed task, 3 weights summing to 1.
        for record in records where record.kind == .train {
            for task in ["animal", "tags"] {
                let usage = (0..<3).compactMap { record.values["expert_usage.shared.\(task).\($0)"] }
                XCTAssertEqual(usage.count, 3, "step \(record.step) \(task): \(record.values.keys.sorted())")
                XCTAssertEqual(usage.reduce(0, +), 1, accuracy: 1e-4)
                XCTAssertGreaterThan(record.values["expert_usage.shared.\(task).rows"] ?? 0, 0)
            }
            XCTAssertNil(record.values["expert_usage.shared.length.0"])
        }

        // The router's folder and its weights changed from the start; the optimizer has its moments.
        let final = runs.checkpoint("final")
        let folder = final.appendingPathComponent("routers/shared")
        let manifest = try HeadManifest.decode(try bytes(folder.appendingPathComponent("manifest.json")), source: "manifest")
        XCTAssertEqual(manifest.componentKind, "router")
        XCTAssertEqual(manifest.labelNames, ["animal", "tags"])
        // A routed task's head cannot ship alone (its features come from the router); `length` can.
        XCTAssertThrowsError(try HeadBundle.export(modelDirectory: final, task: "tags", to: runs.path("tags.head"))) { error in
            XCTAssertTrue("\(error)".contains("router shared (routers/shared/)"), "\(error)")
        }
        XCTAssertNoThrow(try HeadBundle.export(modelDirectory: final, task: "length", to: runs.path("length.head")))
        let state = try SafeTensorsFile(contentsOf: final.appendingPathComponent("trainer_state.safetensors"))
        XCTAssertTrue(state.tensorNames.contains { $0.hasPrefix("exp_avg.routers.shared.gates.0.weight") }, "\(state.tensorNames)")

        // The checkpoint predicts what the trained model predicts.
        let loaded = try MultiTaskModel.load(checkpoint: final, pluginPaths: config.pluginPaths)
        let texts: [(text: String, pair: String?)] = [("the cat sat on the mat", nil), ("a dog ran", nil)]
        XCTAssertEqual(try Predictor(model: loaded, maxLength: 32).predict(texts).map { $0.map(\.json) },
                       try Predictor(model: trainer.model, maxLength: 32).predict(texts).map { $0.map(\.json) })

        // Resume from step 3 (gate noise on) repeats the uninterrupted run.
        try runs.train(config, output: "resumed", resume: runs.checkpoint("step-3"))
        let resumedFinal = runs.checkpoint("final", output: "resumed")
        for relative in ["routers/shared/weights.safetensors", "heads/animal/weights.safetensors", "heads/length/weights.safetensors",
                         "heads/tags/weights.safetensors", "trainer_state.safetensors", "encoder/model.safetensors"] {
            XCTAssertEqual(try bytes(resumedFinal.appendingPathComponent(relative)), try bytes(final.appendingPathComponent(relative)), relative)
        }
        let resumedLosses = trainLosses(try runs.records("resumed"))
        for step in 4...8 { XCTAssertEqual(resumedLosses[step], losses[step], "step \(step)") }
    }
}
