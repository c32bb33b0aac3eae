import Encoder
import Foundation
import SafeTensors
import XCTest
@testable import Training

private struct MiniLMBatch: Decodable {
    var input_ids: [[Int32]]
    var token_type_ids: [[Int32]]
    var labels: [Int32]
    var loss: Double
    var word_embedding_rows: [Int]
    var query_weight_rows: Int
    var position_rows: Int
    var gradient_names: [String]
}

/// One training step's gradients on the real all-MiniLM-L6-v2 through a CLS linear head, on
/// four real sentences, against PyTorch (float64): minilm/ from the reference script.
final class MiniLMGradientTests: XCTestCase {
    func testOneStepGradientsMatchPyTorch() throws {
        let modelDirectory = try defaultModelDirectory()
        let run = try decodeFixture(MiniLMBatch.self, "minilm/batch.json")
        let (encoder, _) = try BertEncoder.load(modelDirectory: modelDirectory)
        let head = LinearClassifierHead(hiddenSize: encoder.config.hiddenSize, classes: 3)
        let fixtures = trainingFixtures.appendingPathComponent("minilm")
        let headFile = try SafeTensorsFile(contentsOf: fixtures.appendingPathComponent("head.safetensors"))
        try head.load(weight: headFile.floats("weight"), bias: headFile.floats("bias"))
        let trainer = try ClassificationTrainer(encoder: encoder, head: head, encoderLearningRate: 1e-5, headLearningRate: 1e-3,
                                                weightDecay: 0.01, settings: TrainerSettings(hiddenDropout: 0, attentionDropout: 0))
        let batch = try PackedBatch(sequences: run.input_ids, tokenTypes: run.token_type_ids)
        let loss = try trainer.accumulate(batch: batch, labels: run.labels)
        XCTAssertEqual(Double(loss), run.loss, accuracy: 1e-5)

        let reference = try SafeTensorsFile(contentsOf: fixtures.appendingPathComponent("gradients.safetensors"))
        XCTAssertEqual(Set(reference.tensorNames), Set(run.gradient_names))
        let c = encoder.config.hiddenSize
        var worst = (0.0, "")
        for key in reference.tensorNames.sorted() {
            let theirs = try reference.floats(key)
            let ours: [Float]
            if key.hasPrefix("head.") {
                ours = Array(head.storage.gradients[key == "head.weight" ? head.weightRange : head.biasRange])
            } else {
                let isSlice = key.hasSuffix("[rows]")
                let name = layoutName(ofFixtureKey: isSlice ? String(key.dropLast("[rows]".count)) : key)
                let view = try XCTUnwrap(encoder.layout.view(named: name), "no encoder parameter for \(key)")
                let gradient = Array(trainer.encoderGradients.buffer[view.range])
                if name == "embeddings.word_embeddings.weight" {
                    ours = run.word_embedding_rows.flatMap { gradient[($0 * c)..<(($0 + 1) * c)] }
                } else if name == "embeddings.position_embeddings.weight" {
                    ours = Array(gradient[0..<(run.position_rows * c)])
                } else if isSlice {
                    ours = Array(gradient[0..<(run.query_weight_rows * c)])
                } else {
                    ours = gradient
                }
            }
            assertClose(ours, theirs, relative: 1e-4, absolute: 1e-6, "MiniLM gradient of \(key)")
            XCTAssertGreaterThan(theirs.map(abs).max() ?? 0, 1e-6, "\(key): a vanishing reference would make the check empty")
            let difference = toleranceUsed(ours, theirs, relative: 1e-4, absolute: 1e-6)
            if difference > worst.0 { worst = (difference, key) }
        }
        print("MiniLM one-step gradients: \(reference.tensorNames.count) tensors, worst uses \(worst.0) of the tolerance (\(worst.1))")
    }
}
