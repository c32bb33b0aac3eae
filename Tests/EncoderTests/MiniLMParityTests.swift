import Foundation
import Kernels
import SafeTensors
import XCTest
@testable import Encoder

/// all-MiniLM-L6-v2 on real sentences against float64 PyTorch and sentence-transformers.
final class MiniLMParityTests: XCTestCase {
    nonisolated(unsafe) static var cached: BertEncoder?

    func model() throws -> BertEncoder {
        if let encoder = Self.cached { return encoder }
        let (encoder, ignored) = try BertEncoder.load(modelDirectory: try Fixtures.modelDirectory())
        XCTAssertEqual(Set(ignored.map(\.name)), ["embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"])
        Self.cached = encoder
        return encoder
    }

    func testLastHiddenStateMatchesPyTorch() throws {
        let encoder = try model()
        let expected = try Fixtures.file("minilm-expected.safetensors")
        let batch = try Fixtures.packed(expected)
        XCTAssertGreaterThanOrEqual(batch.sequenceCount, 20)
        let difference = compare(try encoder.infer(batch), try expected.floats("last_hidden_state"), absolute: 1e-4, relative: 0, "MiniLM last_hidden_state")
        print("MiniLM forward: \(batch.sequenceCount) sentences, \(batch.tokenCount) tokens, max abs diff \(difference.maxAbsolute)")
    }

    func testNormalizedMeanEmbeddingsMatchSentenceTransformers() throws {
        let encoder = try model()
        let expected = try Fixtures.file("minilm-expected.safetensors")
        let batch = try Fixtures.packed(expected)
        let embeddings = try encoder.sentenceEmbeddings(batch, pooling: .mean, normalize: true)
        let reference = try expected.floats("st_embeddings")
        var worst = 1.0
        for (row, embedding) in embeddings.enumerated() {
            let target = reference[(row * 384)..<((row + 1) * 384)]
            let cosine = zip(embedding, target).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let norm = embedding.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            XCTAssertEqual(norm, 1, accuracy: 1e-5, "row \(row) is unit length")
            XCTAssertGreaterThanOrEqual(cosine, 0.9999, "row \(row)")
            worst = min(worst, cosine)
        }
        print("MiniLM embeddings: min cosine to sentence-transformers \(worst)")
    }

    func testOneStepGradientsMatchPyTorch() throws {
        let encoder = try model()
        let layout = encoder.layout
        let expected = try Fixtures.file("minilm-gradients.safetensors")
        let batch = try Fixtures.packed(expected)
        let activations = EncoderActivations()
        try encoder.forward(batch, activations: activations, dropout: .disabled)
        let gradients = FloatBuffer(count: layout.totalCount)
        let summary = try encoder.backward(outputGradient: try expected.floats("output_gradient"), activations: activations,
                                           gradients: gradients, trainable: .all(layout))
        func gradient(_ name: String) -> [Float] {
            guard let view = layout.view(named: name) else { XCTFail("no \(name)"); return [] }
            return Array(gradients.buffer[view.range])
        }
        var report: [String] = []
        func check(_ actual: [Float], _ key: String) throws {
            let reference = try expected.floats(key)
            // 1e-4 relative with an absolute floor scaled to the tensor (see TinyParityTests:
            // float32 accumulation error is absolute, ~1e-6 of the largest gradient).
            let scale = Double(reference.map(abs).max() ?? 0)
            let difference = compare(actual, reference, absolute: 1e-6 + 2e-6 * scale, relative: 1e-4, key)
            report.append("\(key): max abs \(difference.maxAbsolute) (scale \(scale)), max rel \(difference.maxRelative)")
        }
        for name in ["encoder.layer.0.attention.self.query.weight", "encoder.layer.3.intermediate.dense.bias",
                     "encoder.layer.5.output.LayerNorm.weight", "encoder.layer.5.output.LayerNorm.bias",
                     "embeddings.LayerNorm.weight", "embeddings.token_type_embeddings.weight"] {
            try check(gradient(name), "grad." + name)
        }
        let rows = try expected.int64s("word_rows").map { Int32($0) }
        XCTAssertEqual(summary.touchedWordRows, rows)
        let word = gradient("embeddings.word_embeddings.weight")
        try check(rows.flatMap { word[(Int($0) * 384)..<((Int($0) + 1) * 384)] }, "grad.embeddings.word_embeddings.weight.rows")
        let positionRows = try expected.info("grad.embeddings.position_embeddings.weight.rows").shape[0]
        try check(Array(gradient("embeddings.position_embeddings.weight")[0..<(positionRows * 384)]), "grad.embeddings.position_embeddings.weight.rows")
        print("MiniLM gradients:\n  " + report.joined(separator: "\n  "))
    }
}
