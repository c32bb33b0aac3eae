import Foundation
import Kernels
import SafeTensors
import XCTest
@testable import Encoder

/// The tiny random BERT against float64 PyTorch (scripts/reference/encoder_fixtures.py).
final class TinyParityTests: XCTestCase {
    func load() throws -> (BertEncoder, SafeTensorsFile, PackedBatch, [Bool]) {
        let (encoder, _) = try BertEncoder.load(modelDirectory: Fixtures.tinyModel)
        let expected = try Fixtures.file("tiny-bert-expected.safetensors")
        let (batch, keep) = try Fixtures.packPadded(expected)
        return (encoder, expected, batch, keep)
    }

    func testForwardMatchesPyTorchInEvalAndTrainingMode() throws {
        let (encoder, expected, batch, keep) = try load()
        let reference = unpad(try expected.floats("last_hidden_state"), keep: keep, channels: 32)
        let eval = compare(try encoder.infer(batch), reference, absolute: 1e-5, relative: 0, "eval last_hidden_state")
        let activations = EncoderActivations()
        let training = Array(try encoder.forward(batch, activations: activations, dropout: .disabled))
        compare(training, reference, absolute: 1e-5, relative: 0, "training-mode last_hidden_state")
        print("tiny forward: max abs diff \(eval.maxAbsolute)")
    }

    /// A reused workspace or activation arena (large batch, then a smaller one, then the
    /// large one again) gives the same results as fresh memory.
    func testReusedMemoryGivesFreshResults() throws {
        let (encoder, _, batch, _) = try load()
        let small = try PackedBatch(sequences: [[3, 4, 5], [6, 7]], tokenTypes: [[0, 0, 1], [0, 1]])
        let workspace = InferenceWorkspace(), activations = EncoderActivations()
        for current in [batch, small, batch] {
            let fresh = try encoder.infer(current)
            XCTAssertEqual(try encoder.infer(current, workspace: workspace), fresh)
            let training = Array(try encoder.forward(current, activations: activations, dropout: .disabled))
            compare(training, fresh, absolute: 1e-6, relative: 0, "training arena reuse")
        }
    }

    func testBackwardMatchesPyTorchForEveryParameter() throws {
        let (encoder, expected, batch, keep) = try load()
        let upstream = unpad(try expected.floats("output_gradient"), keep: keep, channels: 32)
        let activations = EncoderActivations()
        try encoder.forward(batch, activations: activations, dropout: .disabled)
        let gradients = FloatBuffer(count: encoder.layout.totalCount)
        let summary = try encoder.backward(outputGradient: upstream, activations: activations, gradients: gradients, trainable: .all(encoder.layout))
        XCTAssertEqual(summary.lowestStage, -1)
        XCTAssertEqual(summary.touchedWordRows, Array(Set(batch.tokenIds)).sorted())
        // Tolerance per element: 1e-4 relative, plus an absolute floor of 1e-6 + 2e-6 x the
        // tensor's largest gradient. Gradients here reach ~50, and float32 accumulation
        // leaves ~1e-5 absolute error on every element (PyTorch's own float32 backward is off
        // from float64 by up to 2.7e-5 on this fixture), which a small element cannot meet
        // relatively.
        var worstAbsolute = 0.0, worstScaled = 0.0
        for view in encoder.layout.views {
            let actual = Array(gradients.buffer[view.range])
            let reference = try expected.floats("grad." + view.name)
            let scale = Double(reference.map(abs).max() ?? 0)
            let difference = compare(actual, reference, absolute: 1e-6 + 2e-6 * scale, relative: 1e-4, "grad \(view.name)")
            worstAbsolute = max(worstAbsolute, difference.maxAbsolute)
            if scale > 1e-3 { worstScaled = max(worstScaled, difference.maxAbsolute / scale) }
        }
        print("tiny gradients: max abs diff \(worstAbsolute), max abs diff / tensor scale \(worstScaled)")
    }

    /// Backward accumulates: two passes give twice the gradient.
    func testBackwardAccumulates() throws {
        let (encoder, expected, batch, keep) = try load()
        let upstream = unpad(try expected.floats("output_gradient"), keep: keep, channels: 32)
        let activations = EncoderActivations()
        try encoder.forward(batch, activations: activations, dropout: .disabled)
        let once = FloatBuffer(count: encoder.layout.totalCount), twice = FloatBuffer(count: encoder.layout.totalCount)
        try encoder.backward(outputGradient: upstream, activations: activations, gradients: once, trainable: .all(encoder.layout))
        try encoder.backward(outputGradient: upstream, activations: activations, gradients: twice, trainable: .all(encoder.layout))
        try encoder.backward(outputGradient: upstream, activations: activations, gradients: twice, trainable: .all(encoder.layout))
        compare(twice.toArray(), once.toArray().map { 2 * $0 }, absolute: 1e-6, relative: 1e-6, "accumulated gradient")
    }

    /// Frozen parameters get nothing; trainable ones get exactly what a full backward gives.
    func testFrozenParametersAndEarlyStop() throws {
        let (encoder, expected, batch, keep) = try load()
        let layout = encoder.layout
        let upstream = unpad(try expected.floats("output_gradient"), keep: keep, channels: 32)
        let activations = EncoderActivations()
        try encoder.forward(batch, activations: activations, dropout: .disabled)
        let full = FloatBuffer(count: layout.totalCount)
        try encoder.backward(outputGradient: upstream, activations: activations, gradients: full, trainable: .all(layout))

        // (frozen prefixes, expected lowest stage)
        let scenarios: [([String], Int)] = [
            (["embeddings.", "encoder.layer.0.", "encoder.layer.1.attention.self.key.weight", "encoder.layer.1.attention.self.value.bias"], 1),
            (["embeddings.word_embeddings", "embeddings.position_embeddings", "embeddings.token_type_embeddings"], -1),
            (["embeddings.", "encoder.layer.0.", "encoder.layer.1.attention.", "encoder.layer.1.intermediate.", "encoder.layer.1.output.dense."], 1),
        ]
        for (frozen, lowest) in scenarios {
            var trainable = TrainableParameters.all(layout)
            trainable.freeze(prefixes: frozen, in: layout)
            let partial = FloatBuffer(count: layout.totalCount)
            let summary = try encoder.backward(outputGradient: upstream, activations: activations, gradients: partial, trainable: trainable)
            XCTAssertEqual(summary.lowestStage, lowest, "\(frozen)")
            XCTAssertEqual(summary.touchedWordRows, [], "word embeddings frozen")
            for (index, view) in layout.views.enumerated() {
                let got = Array(partial.buffer[view.range])
                if trainable.flags[index] {
                    compare(got, Array(full.buffer[view.range]), absolute: 1e-7, relative: 1e-6, "trainable \(view.name)")
                } else {
                    XCTAssertTrue(got.allSatisfy { $0 == 0 }, "frozen \(view.name) got a gradient")
                }
            }
        }
        let before = full.toArray()
        let nothing = try encoder.backward(outputGradient: upstream, activations: activations, gradients: full, trainable: .none(layout))
        XCTAssertNil(nothing.lowestStage)
        XCTAssertEqual(full.toArray(), before, "nothing trainable: no gradient written")
    }

    /// With dropout on, the backward must use the forward's masks: a directional finite
    /// difference of the loss (same seed, so same masks) matches <gradient, direction>.
    func testDropoutBackwardMatchesDirectionalDerivative() throws {
        let (encoder, expected, batch, keep) = try load()
        let layout = encoder.layout
        let upstream = unpad(try expected.floats("output_gradient"), keep: keep, channels: 32)
        let dropout = DropoutSettings(seed: 77, hiddenProbability: 0.2, attentionProbability: 0.3)
        let activations = EncoderActivations()
        let first = Array(try encoder.forward(batch, activations: activations, dropout: dropout))
        XCTAssertEqual(first, Array(try encoder.forward(batch, activations: activations, dropout: dropout)), "same seed, same output")
        var reseeded = dropout
        reseeded.seed = 78
        XCTAssertNotEqual(first, Array(try encoder.forward(batch, activations: activations, dropout: reseeded)), "another seed, other masks")
        XCTAssertNotEqual(first, try encoder.infer(batch), "dropout changes the training output")

        try encoder.forward(batch, activations: activations, dropout: dropout)
        let gradients = FloatBuffer(count: layout.totalCount)
        try encoder.backward(outputGradient: upstream, activations: activations, gradients: gradients, trainable: .all(layout))
        // A fixed pseudo-random direction in [-1, 1]: the check is the same on every run. (A
        // fresh random direction made it flaky: when the projection nearly cancels, Float32
        // noise in the difference quotient exceeds the relative tolerance about one run in five.)
        let direction = (0..<layout.totalCount).map { Float(sin(Double($0) * 12.9898 + 0.5)) }
        let original = encoder.parameters.toArray()
        func loss(_ step: Float) throws -> Double {
            for index in 0..<original.count { encoder.parameters.pointer[index] = original[index] + step * direction[index] }
            let out = try encoder.forward(batch, activations: activations, dropout: dropout)
            return zip(out, upstream).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let step: Float = 1e-3
        let numerical = (try loss(step) - loss(-step)) / (2 * Double(step))
        _ = encoder.parameters.buffer.update(fromContentsOf: original)
        let analytic = zip(gradients.toArray(), direction).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        XCTAssertEqual(numerical, analytic, accuracy: 2e-3 * abs(analytic), "directional derivative with dropout")
    }
}
