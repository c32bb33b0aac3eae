import Encoder
import Foundation
import Kernels
import SafeTensors
import XCTest
@testable import Training

/// tiny_bert/batch.json: the padded batch without its padding, and the PyTorch run's record.
struct TinyBertRun: Decodable {
    struct Settings: Decodable {
        var encoder_learning_rate: Double
        var head_learning_rate: Double
        var weight_decay: Double
        var warmup_steps: Int
        var total_steps: Int
        var max_grad_norm: Float
        var betas: [Double]
        var eps: Double
    }
    var input_ids: [[Int32]]
    var token_type_ids: [[Int32]]
    var labels: [Int32]
    var settings: Settings
    var losses: [Double]
    var gradient_norms: [Double]
    var schedule_multipliers: [Double]
    var loss_after_training: Double
}

/// The encoder name of a fixture key written from the PyTorch module `ClassifierOnCLS`
/// ("encoder.<BertModel name>" or "head.<name>"): BertModel names stay, the head keeps "head.".
func layoutName(ofFixtureKey key: String) -> String {
    key.hasPrefix("encoder.") ? String(key.dropFirst("encoder.".count)) : key
}

/// The tiny BERT fixture: the model and head as PyTorch initialised them and the batch.
struct TinyBertFixture {
    static let directory = trainingFixtures.appendingPathComponent("tiny_bert")
    let run: TinyBertRun

    init() throws { run = try decodeFixture(TinyBertRun.self, "tiny_bert/batch.json") }

    /// A trainer set up like the reference script's optimizer and schedule (unless `settings`).
    func makeTrainer(trainable: ((ParameterLayout) -> TrainableParameters)? = nil,
                     settings: TrainerSettings? = nil) throws -> ClassificationTrainer {
        let (encoder, ignored) = try BertEncoder.load(modelDirectory: TinyBertFixture.directory)
        XCTAssertTrue(ignored.allSatisfy { !$0.name.contains("weight") && !$0.name.contains("bias") }, "\(ignored)")
        let head = LinearClassifierHead(hiddenSize: encoder.config.hiddenSize, classes: 3)
        let headFile = try SafeTensorsFile(contentsOf: TinyBertFixture.directory.appendingPathComponent("head.safetensors"))
        try head.load(weight: headFile.floats("weight"), bias: headFile.floats("bias"))
        let s = run.settings
        return try ClassificationTrainer(
            encoder: encoder, head: head, encoderLearningRate: s.encoder_learning_rate, headLearningRate: s.head_learning_rate,
            weightDecay: s.weight_decay, trainable: trainable?(encoder.layout),
            optimizerSettings: AdamWSettings(beta1: s.betas[0], beta2: s.betas[1], epsilon: s.eps),
            settings: settings ?? TrainerSettings(maxGradientNorm: s.max_grad_norm,
                                                  schedule: LearningRateSchedule(kind: .linear, warmupSteps: s.warmup_steps, totalSteps: s.total_steps)))
    }

    /// The batch's rows (all by default) packed without padding, and their labels.
    func batch(rows: Range<Int>? = nil) throws -> (batch: PackedBatch, labels: [Int32]) {
        let rows = rows ?? 0..<run.labels.count
        return (try PackedBatch(sequences: Array(run.input_ids[rows]), tokenTypes: Array(run.token_type_ids[rows])), Array(run.labels[rows]))
    }
}

final class TrainerParityTests: XCTestCase {
    private let directory = TinyBertFixture.directory

    /// Every parameter's gradient as (fixture key, ours, PyTorch's).
    func gradientPairs(_ trainer: ClassificationTrainer, reference: SafeTensorsFile) throws -> [(String, [Float], [Float])] {
        try reference.tensorNames.sorted().map { key in
            let name = layoutName(ofFixtureKey: key)
            let ours: [Float]
            if name.hasPrefix("head.") {
                ours = Array(trainer.head.storage.gradients[name == "head.weight" ? trainer.head.weightRange : trainer.head.biasRange])
            } else {
                let view = try XCTUnwrap(trainer.encoder.layout.view(named: name), "no encoder parameter for \(key)")
                ours = Array(trainer.encoderGradients.buffer[view.range])
            }
            return (key, ours, try reference.floats(key))
        }
    }

    /// Step-1 gradients of all 39 parameters against PyTorch (float64) within 1e-4 relative,
    /// 1e-6 absolute, element by element.
    func testStepOneGradientsMatchPyTorch() throws {
        let fixture = try TinyBertFixture()
        let run = fixture.run
        let trainer = try fixture.makeTrainer()
        let (batch, labels) = try fixture.batch()
        let loss = try trainer.accumulate(batch: batch, labels: labels)
        XCTAssertEqual(Double(loss), run.losses[0], accuracy: 1e-5)
        let reference = try SafeTensorsFile(contentsOf: directory.appendingPathComponent("step1_gradients.safetensors"))
        let pairs = try gradientPairs(trainer, reference: reference)
        XCTAssertEqual(pairs.count, trainer.encoder.layout.views.count + 2, "every parameter is checked")
        var worst = (0.0, "")
        for (key, ours, theirs) in pairs {
            assertClose(ours, theirs, relative: 1e-4, absolute: 1e-6, "gradient of \(key)")
            XCTAssertGreaterThan(theirs.map(abs).max() ?? 0, 0, "\(key) has a zero reference gradient")
            let difference = toleranceUsed(ours, theirs, relative: 1e-4, absolute: 1e-6)
            if difference > worst.0 { worst = (difference, key) }
        }
        print("tiny BERT step-1 gradients: worst uses \(worst.0) of the tolerance (\(worst.1))")
    }

    /// Ten steps with warmup, linear decay, per-group rates, weight decay and clipping: the loss
    /// trajectory within 1e-4 of PyTorch's and the final weights close.
    func testTenAdamWStepsMatchPyTorch() throws {
        let fixture = try TinyBertFixture()
        let run = fixture.run
        let trainer = try fixture.makeTrainer()
        let (batch, labels) = try fixture.batch()
        var clipped = 0
        var worstLoss = 0.0
        for step in 0..<run.settings.total_steps {
            let report = try trainer.step([(batch, labels)])
            worstLoss = max(worstLoss, abs(Double(report.loss) - run.losses[step]))
            XCTAssertEqual(Double(report.loss), run.losses[step], accuracy: 1e-4, "loss at step \(step + 1)")
            XCTAssertEqual(Double(report.gradientNorm), run.gradient_norms[step], accuracy: 1e-4 * run.gradient_norms[step], "norm at step \(step + 1)")
            XCTAssertEqual(report.learningRateMultiplier, run.schedule_multipliers[step], accuracy: 1e-12)
            if report.gradientNorm > run.settings.max_grad_norm { clipped += 1 }
        }
        XCTAssertGreaterThan(clipped, 5, "the run should exercise clipping")
        print("tiny BERT 10 steps: worst loss difference \(worstLoss)")
        let final = try trainer.accumulate(batch: batch, labels: labels)
        XCTAssertEqual(Double(final), run.loss_after_training, accuracy: 1e-4)
        XCTAssertLessThan(run.loss_after_training, run.losses[0] - 0.05, "training should have moved the loss")

        let reference = try SafeTensorsFile(contentsOf: directory.appendingPathComponent("final_weights.safetensors"))
        let initial = try SafeTensorsFile(contentsOf: directory.appendingPathComponent("model.safetensors"))
        var worst = (0.0, "")
        var worstKeyBias = 0.0
        for key in reference.tensorNames.sorted() {
            let name = layoutName(ofFixtureKey: key)
            let ours: [Float]
            if name.hasPrefix("head.") {
                ours = Array(trainer.head.storage.values[name == "head.weight" ? trainer.head.weightRange : trainer.head.biasRange])
            } else {
                ours = Array(try XCTUnwrap(trainer.encoder.parameter(name), key))
                // The weights moved, so agreeing with the final weights is not agreeing with the start.
                if initial.tensorNames.contains(name) {
                    XCTAssertNotEqual(ours, try initial.floats(name), "\(name) did not change")
                }
            }
            let theirs = try reference.floats(key)
            let difference = zip(ours, theirs).map { abs(Double($0) - Double($1)) }.max() ?? 0
            if name.hasSuffix("attention.self.key.bias") {
                // Softmax ignores a shift shared by all keys, so this gradient is exactly 0 in
                // theory and rounding noise in practice; Adam normalises the noise into steps
                // of up to lr. PyTorch's own float32 run ends 4.4e-5 from its float64 run here.
                assertClose(ours, theirs, relative: 0, absolute: 1e-4, "final \(key)")
                worstKeyBias = max(worstKeyBias, difference)
                continue
            }
            assertClose(ours, theirs, relative: 1e-4, absolute: 1e-6, "final \(key)")
            if difference > worst.0 { worst = (difference, key) }
        }
        print("tiny BERT after 10 steps: worst absolute weight difference \(worst.0) (\(worst.1)); key biases \(worstKeyBias)")
    }
}
