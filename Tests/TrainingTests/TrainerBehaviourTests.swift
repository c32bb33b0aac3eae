import Encoder
import Foundation
import Kernels
import SafeTensors
import XCTest
@testable import Training

/// Accumulation, determinism, freezing and failure handling of the trainer, on the tiny BERT.
final class TrainerBehaviourTests: XCTestCase {
    private func constantSettings(accumulation: Int = 1, seed: UInt64 = 0, dropout: Float? = 0) -> TrainerSettings {
        TrainerSettings(maxGradientNorm: 1, accumulationSteps: accumulation, schedule: .constant, seed: seed,
                        hiddenDropout: dropout, attentionDropout: dropout)
    }

    /// Two micro-batches of two sequences each, with loss scale 1/2, give the gradients and the
    /// update of one batch of four (equal halves, so the means agree).
    func testGradientAccumulationEqualsOneLargeBatch() throws {
        let fixture = try TinyBertFixture()
        let whole = try fixture.makeTrainer(settings: constantSettings())
        let accumulated = try fixture.makeTrainer(settings: constantSettings(accumulation: 2))
        try whole.accumulate(batch: fixture.batch().batch, labels: fixture.run.labels)
        let first = try fixture.batch(rows: 0..<2), second = try fixture.batch(rows: 2..<4)
        try accumulated.accumulate(batch: first.batch, labels: first.labels)
        XCTAssertEqual(accumulated.pendingMicroBatches, 1)
        try accumulated.accumulate(batch: second.batch, labels: second.labels)
        assertClose(accumulated.encoderGradients.toArray(), whole.encoderGradients.toArray(), relative: 1e-5, absolute: 1e-8, "accumulated encoder gradients")
        assertClose(Array(accumulated.head.storage.gradients), Array(whole.head.storage.gradients), relative: 1e-5, absolute: 1e-8, "accumulated head gradients")

        let wholeReport = try whole.update(), accumulatedReport = try accumulated.update()
        XCTAssertEqual(accumulatedReport.gradientNorm, wholeReport.gradientNorm, accuracy: 1e-5 * wholeReport.gradientNorm)
        XCTAssertEqual(accumulatedReport.loss, wholeReport.loss, accuracy: 1e-5, "mean of the halves' losses is the batch loss")
        let accumulatedWeights = accumulated.encoder.parameters.toArray(), wholeWeights = whole.encoder.parameters.toArray()
        for view in whole.encoder.layout.views {
            // A first Adam step moves each weight by lr * g / (|g| + eps): for gradients near
            // eps (1e-8) rounding noise changes the step by a visible fraction of lr (1e-3), so
            // weights are compared to 1% of lr; the gradients above carry the tight check.
            // Key biases have an exactly-zero true gradient, so their whole step is noise.
            let keyBias = view.name.hasSuffix("attention.self.key.bias")
            assertClose(Array(accumulatedWeights[view.range]), Array(wholeWeights[view.range]),
                        relative: keyBias ? 0 : 1e-4, absolute: keyBias ? 2e-3 : 1e-5, "\(view.name) after the step")
        }
        XCTAssertEqual(accumulated.pendingMicroBatches, 0)
        XCTAssertEqual(accumulated.encoderGradients.toArray().map(abs).max(), 0, "update zeroes the gradients")

        XCTAssertThrowsError(try accumulated.step([first])) {
            XCTAssertEqual($0 as? TrainingError, .shapeMismatch(what: "micro-batches per step", expected: 2, actual: 1))
        }
    }

    /// With dropout on, the same seed and data give bit-identical weights after 3 steps; another
    /// seed gives different ones, and dropout really changed the computation.
    func testSameSeedAndDataGiveSameWeights() throws {
        let fixture = try TinyBertFixture()
        let (batch, labels) = try fixture.batch()
        func train(seed: UInt64, dropout: Float) throws -> (weights: [Float], losses: [Float]) {
            let trainer = try fixture.makeTrainer(settings: constantSettings(seed: seed, dropout: dropout))
            var losses: [Float] = []
            for _ in 0..<3 { losses.append(try trainer.step([(batch, labels)]).loss) }
            return (trainer.encoder.parameters.toArray() + Array(trainer.head.storage.values), losses)
        }
        let first = try train(seed: 7, dropout: 0.2)
        let second = try train(seed: 7, dropout: 0.2)
        XCTAssertEqual(first.weights, second.weights)
        XCTAssertEqual(first.losses, second.losses)
        let otherSeed = try train(seed: 8, dropout: 0.2)
        XCTAssertNotEqual(first.weights, otherSeed.weights)
        let noDropout = try train(seed: 7, dropout: 0)
        XCTAssertNotEqual(first.losses[0], noDropout.losses[0], "dropout should change the first loss")
    }

    /// Freezing the embeddings and layer 0: those weights never move, they get no optimizer
    /// state, and the remaining gradients are exactly what full training computes.
    func testFrozenLowerLayersCostNothingAndKeepUpperGradients() throws {
        let fixture = try TinyBertFixture()
        let frozenPrefixes = ["embeddings.", "encoder.layer.0."]
        let trainer = try fixture.makeTrainer(trainable: { layout in
            var flags = TrainableParameters.all(layout)
            flags.freeze(prefixes: frozenPrefixes, in: layout)
            return flags
        })
        let layout = trainer.encoder.layout
        let frozenViews = layout.views.filter { view in frozenPrefixes.contains { view.name.hasPrefix($0) } }
        XCTAssertFalse(frozenViews.isEmpty)
        let frozenCount = frozenViews.reduce(0) { $0 + $1.count }
        XCTAssertEqual(trainer.optimizer.trainableParameterCount, layout.totalCount - frozenCount + trainer.head.storage.parameterCount)
        let before = trainer.encoder.parameters.toArray()

        let (batch, labels) = try fixture.batch()
        try trainer.accumulate(batch: batch, labels: labels)
        let reference = try SafeTensorsFile(contentsOf: trainingFixtures.appendingPathComponent("tiny_bert/step1_gradients.safetensors"))
        for view in layout.views {
            let ours = Array(trainer.encoderGradients.buffer[view.range])
            if frozenViews.contains(view) {
                XCTAssertEqual(ours.map(abs).max(), 0, "\(view.name) is frozen but got a gradient")
            } else {
                assertClose(ours, try reference.floats("encoder." + view.name), relative: 1e-4, absolute: 1e-6, "gradient of \(view.name)")
            }
        }
        for _ in 0..<3 { _ = try trainer.update(); try trainer.accumulate(batch: batch, labels: labels) }
        let after = trainer.encoder.parameters.toArray()
        for view in layout.views {
            let unchanged = Array(before[view.range]) == Array(after[view.range])
            XCTAssertEqual(unchanged, frozenViews.contains(view), "\(view.name)")
        }
    }

    /// A wholly frozen encoder: no gradient block, no encoder backward, only the head trains,
    /// and its gradient is still PyTorch's.
    func testFrozenEncoderTrainsOnlyTheHead() throws {
        let fixture = try TinyBertFixture()
        let trainer = try fixture.makeTrainer(trainable: { TrainableParameters.none($0) })
        XCTAssertEqual(trainer.encoderGradients.count, 0)
        XCTAssertEqual(trainer.optimizer.trainableParameterNames, ["head.weight", "head.bias"])
        let before = trainer.encoder.parameters.toArray()
        let (batch, labels) = try fixture.batch()
        try trainer.accumulate(batch: batch, labels: labels)
        let reference = try SafeTensorsFile(contentsOf: trainingFixtures.appendingPathComponent("tiny_bert/step1_gradients.safetensors"))
        assertClose(Array(trainer.head.storage.gradients[trainer.head.weightRange]), try reference.floats("head.weight"),
                    relative: 1e-4, absolute: 1e-6, "head weight gradient")
        let headBefore = Array(trainer.head.storage.values)
        // Warmup gives the first step a zero learning rate; take two.
        _ = try trainer.update()
        _ = try trainer.step([(batch, labels)])
        XCTAssertEqual(trainer.encoder.parameters.toArray(), before)
        XCTAssertNotEqual(Array(trainer.head.storage.values), headBefore)
    }

    /// A NaN in the head makes the norm NaN: the step throws, weights stay, gradients are dropped.
    func testNonFiniteGradientThrowsWithoutTouchingWeights() throws {
        let fixture = try TinyBertFixture()
        let trainer = try fixture.makeTrainer(settings: constantSettings())
        trainer.head.storage.values[0] = .nan
        let before = trainer.encoder.parameters.toArray()
        let (batch, labels) = try fixture.batch()
        XCTAssertThrowsError(try trainer.step([(batch, labels)])) {
            guard case .nonFiniteGradient(step: 1, _)? = $0 as? TrainingError else { return XCTFail("\($0)") }
            XCTAssertTrue("\($0)".contains("lower the learning rate"))
        }
        XCTAssertEqual(trainer.encoder.parameters.toArray(), before)
        XCTAssertEqual(trainer.optimizer.completedSteps, 0)
        XCTAssertEqual(trainer.encoderGradients.toArray().map(abs).max(), 0)
    }

    func testRejectsLabelsThatDoNotFitTheBatch() throws {
        let fixture = try TinyBertFixture()
        let trainer = try fixture.makeTrainer()
        let (batch, _) = try fixture.batch()
        XCTAssertThrowsError(try trainer.accumulate(batch: batch, labels: [0, 1])) {
            XCTAssertEqual($0 as? TrainingError, .shapeMismatch(what: "labels", expected: 4, actual: 2))
        }
        XCTAssertThrowsError(try trainer.accumulate(batch: batch, labels: [0, 1, 2, 3])) {
            XCTAssertEqual($0 as? TrainingError, .targetOutOfRange(row: 3, target: 3, classes: 3, ignoreIndex: -100))
        }
    }

    /// Stop after 2 of 4 steps, save encoder, head and optimizer state, start a new trainer from
    /// the files, finish: bit-identical to the uninterrupted run (dropout and schedule included,
    /// since both follow the restored step count).
    func testResumeFromSavedStateMatchesUninterruptedRun() throws {
        let fixture = try TinyBertFixture()
        let (batch, labels) = try fixture.batch()
        let settings = TrainerSettings(maxGradientNorm: 1, schedule: LearningRateSchedule(kind: .linear, warmupSteps: 1, totalSteps: 4),
                                       seed: 3, hiddenDropout: 0.1, attentionDropout: 0.1)
        let uninterrupted = try fixture.makeTrainer(settings: settings)
        for _ in 0..<4 { _ = try uninterrupted.step([(batch, labels)]) }

        let first = try fixture.makeTrainer(settings: settings)
        for _ in 0..<2 { _ = try first.step([(batch, labels)]) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("polyhead-resume-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try first.encoder.saveWeights(to: directory.appendingPathComponent("model.safetensors"))
        var headWriter = SafeTensorsWriter()
        try headWriter.add("weight", shape: [3, first.head.hiddenSize], floats: Array(first.head.storage.values[first.head.weightRange]))
        try headWriter.add("bias", shape: [3], floats: Array(first.head.storage.values[first.head.biasRange]))
        try headWriter.write(to: directory.appendingPathComponent("head.safetensors"))
        try first.optimizer.saveState(to: directory.appendingPathComponent("optimizer.safetensors"))

        let resumed = try fixture.makeTrainer(settings: settings)
        try resumed.encoder.loadWeights(from: SafeTensorsFile(contentsOf: directory.appendingPathComponent("model.safetensors")))
        let head = try SafeTensorsFile(contentsOf: directory.appendingPathComponent("head.safetensors"))
        try resumed.head.load(weight: head.floats("weight"), bias: head.floats("bias"))
        try resumed.optimizer.loadState(from: directory.appendingPathComponent("optimizer.safetensors"))
        for _ in 0..<2 { _ = try resumed.step([(batch, labels)]) }

        XCTAssertEqual(resumed.optimizer.completedSteps, 4)
        XCTAssertEqual(resumed.encoder.parameters.toArray(), uninterrupted.encoder.parameters.toArray())
        XCTAssertEqual(Array(resumed.head.storage.values), Array(uninterrupted.head.storage.values))
    }
}
