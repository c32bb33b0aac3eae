import Foundation
import SafeTensors
import XCTest
@testable import Training

/// `--resume` continues exactly: the run interrupted at step k and resumed from its step-k
/// checkpoint logs the same losses and ends with the same weights and optimizer state as the
/// uninterrupted run, with dropout in the encoder and in every head, gradient accumulation,
/// a learned loss weighting and a warmup schedule all in play.
final class TrainerResumeTests: XCTestCase {
    private let training = tinyTraining(steps: 6, extra: """
        gradient_accumulation: 2
        mixing: mixed
        loss_weighting: uncertainty
        """)

    /// Per step: every task's loss and the weighted total, from the `train` lines.
    private func losses(_ records: [MetricsRecord], after step: Int = 0) -> [Int: [String: Double]] {
        var result: [Int: [String: Double]] = [:]
        for record in records where record.kind == .train && record.step > step {
            var values = record.tasks.mapValues { $0["loss"] ?? .nan }
            values["total"] = record.values["loss"]
            values["learning_rate"] = record.values["learning_rate"]
            result[record.step] = values
        }
        return result
    }

    /// The files of a checkpoint that must match bit for bit (trainer_state.json also holds
    /// timings, so it is compared field by field instead).
    private func assertSameState(_ resumed: URL, _ uninterrupted: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        for relative in ["encoder/model.safetensors", "heads/animal/weights.safetensors", "heads/length/weights.safetensors",
                         "heads/tags/weights.safetensors", "trainer_state.safetensors"] {
            XCTAssertEqual(try bytes(resumed.appendingPathComponent(relative)), try bytes(uninterrupted.appendingPathComponent(relative)),
                           "\(relative) differs", file: file, line: line)
        }
        let resumedScalars = try CheckpointStore.load(directory: resumed).trainerState!.scalars(as: TrainerScalars.self)
        let uninterruptedScalars = try CheckpointStore.load(directory: uninterrupted).trainerState!.scalars(as: TrainerScalars.self)
        XCTAssertEqual(resumedScalars.step, uninterruptedScalars.step, file: file, line: line)
        XCTAssertEqual(resumedScalars.sampler, uninterruptedScalars.sampler, file: file, line: line)
        XCTAssertEqual(resumedScalars.bestStep, uninterruptedScalars.bestStep, file: file, line: line)
        XCTAssertEqual(resumedScalars.bestValue, uninterruptedScalars.bestValue, file: file, line: line)
        XCTAssertEqual(resumedScalars.trainedSequences, uninterruptedScalars.trainedSequences, file: file, line: line)
    }

    func testResumeFromStepCheckpointRepeatsTheUninterruptedRun() throws {
        let runs = try TinyRuns()
        let config = try runs.load(runs.config(training: training))
        // Uninterrupted: 6 steps; step-3 and step-6 are kept.
        try runs.train(config, output: "whole", keptStepCheckpoints: 2)
        let whole = try runs.records("whole")
        XCTAssertEqual(losses(whole).count, 6)

        // Interrupted after 3 steps: the same config, stopped by copying what a run killed after
        // its step-3 checkpoint leaves behind (the checkpoint and the first lines of its log).
        let step3 = runs.checkpoint("step-3", output: "whole")
        let interrupted = runs.path("interrupted")
        try FileManager.default.createDirectory(at: interrupted.appendingPathComponent("checkpoints"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: step3, to: interrupted.appendingPathComponent("checkpoints/step-3"))
        let logLines = String(decoding: try bytes(runs.path("whole").appendingPathComponent(MetricsLog.fileName)), as: UTF8.self)
            .split(separator: "\n").filter { line in (try? JSONDecoder().decode(MetricsRecord.self, from: Data(line.utf8)))!.step <= 4 }
        try Data((logLines.joined(separator: "\n") + "\n").utf8).write(to: interrupted.appendingPathComponent(MetricsLog.fileName))

        let (trainer, _) = try runs.train(config, output: "interrupted", resume: interrupted.appendingPathComponent("checkpoints/step-3"))
        XCTAssertEqual(trainer.totalSteps, 6)
        let resumed = try runs.records("interrupted")
        XCTAssertEqual(losses(resumed), losses(whole), "per-step losses, the resumed steps 4-6 included")
        XCTAssertEqual(losses(resumed, after: 3).keys.sorted(), [4, 5, 6])
        try assertSameState(runs.checkpoint("final", output: "interrupted"), runs.checkpoint("final", output: "whole"))

        // Resuming into a fresh output directory gives the same steps 4-6 too.
        try runs.train(config, output: "elsewhere", resume: step3)
        XCTAssertEqual(losses(try runs.records("elsewhere")), losses(whole, after: 3))
        try assertSameState(runs.checkpoint("final", output: "elsewhere"), runs.checkpoint("final", output: "whole"))
    }

    /// The heads' dropout is really random (so the test above covers their streams), and
    /// depends on the seed.
    func testHeadDropoutChangesTheLossesAndFollowsTheSeed() throws {
        let runs = try TinyRuns()
        var runCount = 0
        func firstLosses(_ headDropout: String, seed: Int) throws -> [Int: [String: Double]] {
            runCount += 1
            let tasks = [TinyRuns.task("animal"), TinyRuns.task("length"), TinyRuns.task("tags")]
                .map { $0.replacingOccurrences(of: "dropout: 0.2", with: "dropout: \(headDropout)") }
            let output = "run-\(runCount)"
            let settings = training.replacingOccurrences(of: "seed: 7", with: "seed: \(seed)")
            try runs.train(try runs.load(runs.config(tasks: tasks, training: settings, output: output), name: output), output: output)
            return losses(try runs.records(output))
        }
        let withDropout = try firstLosses("0.2", seed: 7)
        XCTAssertEqual(try firstLosses("0.2", seed: 7), withDropout, "same seed, same losses")
        XCTAssertNotEqual(try firstLosses("0.0", seed: 7), withDropout, "head dropout should change the losses")
    }
}
