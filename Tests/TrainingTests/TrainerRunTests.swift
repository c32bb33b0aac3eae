import Encoder
import Foundation
import SafeTensors
import XCTest
@testable import Training

/// Whole runs of the multi-task trainer on the tiny BERT with the real head plugins.
final class TrainerRunTests: XCTestCase {
    /// `mixing: mixed` puts several tasks in one batch (one encoder pass); `per_task` gives each
    /// step one task. Both train every task to finite losses and write their checkpoints
    /// (tasks taken in turn, so that 8 steps surely reach every task).
    func testMixedBatchesAndOneTaskPerStepBothTrain() throws {
        let runs = try TinyRuns()
        for mixing in ["mixed", "per_task"] {
            let training = tinyTraining(steps: 8, extra: "mixing: \(mixing)\nsampling: round_robin")
            let config = try runs.load(runs.config(training: training, output: mixing), name: mixing)
            let (trainer, summary) = try runs.train(config, output: mixing)
            XCTAssertEqual(summary.completedSteps, 8)
            let train = try runs.records(mixing).filter { $0.kind == .train }
            XCTAssertEqual(train.map(\.step), Array(1...8))
            for record in train {
                XCTAssertTrue(record.tasks.values.allSatisfy { $0["loss"]!.isFinite }, "\(mixing) step \(record.step)")
            }
            let tasksPerStep = train.map(\.tasks.count)
            if mixing == "per_task" {
                XCTAssertEqual(Set(tasksPerStep), [1], "one task per step")
            } else {
                XCTAssertTrue(tasksPerStep.contains { $0 > 1 }, "mixed batches should hold several tasks: \(tasksPerStep)")
            }
            XCTAssertEqual(Set(train.flatMap(\.tasks.keys)), ["animal", "length", "tags"], "\(mixing): every task trained")
            XCTAssertEqual(trainer.model.heads.map(\.task), ["animal", "length", "tags"])
            let final = try CheckpointStore.load(directory: runs.checkpoint("final", output: mixing))
            XCTAssertEqual(final.step, 8)
            XCTAssertEqual(final.heads.map(\.manifest.task), ["animal", "length", "tags"])
        }
    }

    /// Step k uses the schedule's multiplier after k - 1 steps (LambdaLR's convention, as in
    /// ClassificationTrainer): with 2 warmup steps the first step has learning rate 0 and
    /// leaves every weight where it was.
    func testScheduleMultiplierOfEachStep() throws {
        let runs = try TinyRuns()
        let config = try runs.load(runs.config(training: tinyTraining(steps: 6, extra: "eval_interval: 1").replacingOccurrences(of: "eval_interval: 3\n", with: "")))
        try runs.train(config, keptStepCheckpoints: 6)
        let schedule = LearningRateSchedule(kind: .linear, warmupSteps: 2, totalSteps: 6)
        let train = try runs.records().filter { $0.kind == .train }
        XCTAssertEqual(train.map { $0.values["learning_rate_multiplier"]! }, [0, 0.5, 1, 0.75, 0.5, 0.25])
        XCTAssertEqual(train.map { $0.values["learning_rate_multiplier"]! }, (0..<6).map { schedule.multiplier(afterSteps: $0) })
        XCTAssertEqual(train.map { $0.values["learning_rate"]! }, [0, 0.5, 1, 0.75, 0.5, 0.25].map { $0 * 2.0e-3 })

        let initial = try SafeTensorsFile(contentsOf: trainerFixtures.appendingPathComponent("tiny-bert/model.safetensors"))
        func encoderWeights(_ name: String) throws -> [[Float]] {
            let file = try SafeTensorsFile(contentsOf: runs.checkpoint(name).appendingPathComponent("encoder/model.safetensors"))
            return try file.tensorNames.sorted().map { try file.floats($0) }
        }
        let initialWeights = try initial.tensorNames.filter { !$0.hasPrefix("pooler.") && $0 != "embeddings.position_ids" }
            .sorted().map { try initial.floats($0) }
        XCTAssertEqual(try encoderWeights("step-1"), initialWeights, "step 1 runs at learning rate 0")
        XCTAssertNotEqual(try encoderWeights("step-2"), initialWeights, "step 2 runs at half the learning rate")
    }

    /// A task without a dev file trains; evaluations score the tasks that have one.
    func testTaskWithoutDevFileTrains() throws {
        let runs = try TinyRuns()
        let tasks = [TinyRuns.task("animal"), TinyRuns.task("length", dev: false, test: false), TinyRuns.task("tags", dev: false)]
        let (_, summary) = try runs.train(try runs.load(runs.config(tasks: tasks, training: tinyTraining())))
        XCTAssertEqual(summary.completedSteps, 6)
        let records = try runs.records()
        let evaluations = records.filter { $0.kind == .eval }
        XCTAssertEqual(evaluations.map(\.step), [3, 6])
        XCTAssertTrue(evaluations.allSatisfy { Set($0.tasks.keys) == ["animal"] })
        XCTAssertEqual(evaluations.last?.values["overall"], evaluations.last?.tasks["animal"]?["accuracy"])
        XCTAssertEqual(Set(try XCTUnwrap(records.last { $0.kind == .test }).tasks.keys), ["animal", "tags"])
        XCTAssertTrue(records.contains { $0.kind == .train && $0.tasks["length"] != nil })

        // No dev file at all: no evaluation, no best checkpoint, still a final one.
        let noDev = [TinyRuns.task("animal", dev: false), TinyRuns.task("length", dev: false)]
        try runs.train(try runs.load(runs.config(tasks: noDev, training: tinyTraining(), output: "nodev"), name: "nodev"), output: "nodev")
        XCTAssertFalse(try runs.records("nodev").contains { $0.kind == .eval })
        XCTAssertNoThrow(try CheckpointStore.load(directory: runs.checkpoint("final", output: "nodev")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: runs.checkpoint("best", output: "nodev").path))
    }

    /// A head plugin id that no loaded plugin provides stops the run with the config file,
    /// line and task, and what is loaded.
    func testUnknownHeadPluginNamesTheTask() throws {
        let runs = try TinyRuns()
        let tasks = [TinyRuns.task("animal"), TinyRuns.task("length", plugin: "polyhead.regresion")]
        let config = try runs.load(runs.config(tasks: tasks, training: tinyTraining()))
        XCTAssertThrowsError(try MultiTaskTrainer(config: config, log: { _ in })) { error in
            let text = "\(error)"
            XCTAssertTrue(error is ConfigError, text)
            for fragment in ["run.yaml:", "tasks.length.head", "task length", "\"polyhead.regresion\"", "polyhead.regression"] {
                XCTAssertTrue(text.contains(fragment), "\(text) should mention \(fragment)")
            }
            XCTAssertFalse(text.contains("\n"))
        }
    }

    /// Without `eval_interval`, the dev set is scored (and a checkpoint taken) at the end of
    /// every epoch, as docs/config.md says.
    func testDevEvaluationFollowsEpochsByDefault() throws {
        let runs = try TinyRuns()
        let training = tinyTraining().replacingOccurrences(of: "steps: 6", with: "epochs: 2").replacingOccurrences(of: "eval_interval: 3\n", with: "")
        let (trainer, _) = try runs.train(try runs.load(runs.config(tasks: [TinyRuns.task("animal")], training: training)))
        XCTAssertEqual(trainer.stepsPerEpoch, 4, "32 rows, batches of 8")
        XCTAssertEqual(try runs.records().filter { $0.kind == .eval }.map(\.step), [4, 8])
    }

    /// With early stopping configured, the test split is scored with the best checkpoint's
    /// weights; without it, with the final weights. Here min_delta lets only the first
    /// evaluation count as an improvement, so the best step is 2 of 6, and the test file is
    /// the dev file, so the test scores must equal the dev scores of the weights used.
    func testTestSplitUsesTheBestCheckpointOnlyWithEarlyStopping() throws {
        let runs = try TinyRuns()
        let devAsTest = TinyRuns.task("animal", test: false, extra: "      test: \(trainerFixtures.path)/data/animal.dev.jsonl")
        for (output, stopping) in [("stopping", "early_stopping: {patience: 10, min_delta: 1000}"), ("plain", "early_stopping: {min_delta: 1000}")] {
            let training = tinyTraining(extra: stopping).replacingOccurrences(of: "eval_interval: 3", with: "eval_interval: 2")
            let (_, summary) = try runs.train(try runs.load(runs.config(tasks: [devAsTest], training: training, output: output), name: output), output: output)
            let records = try runs.records(output)
            let test = try XCTUnwrap(records.last { $0.kind == .test })
            let weightsStep = output == "stopping" ? 2 : 6
            XCTAssertEqual(summary.bestStep, 2, output)
            XCTAssertEqual(test.values["weights_step"], Double(weightsStep), output)
            let dev = try XCTUnwrap(records.last { $0.kind == .eval && $0.step == weightsStep })
            XCTAssertEqual(test.tasks, dev.tasks, "\(output): test scores are the dev scores of step \(weightsStep)")
            XCTAssertEqual(summary.tasks.first?.dev, dev.tasks["animal"], "\(output): the summary's dev column is of the same weights")
        }
    }
}
