import Foundation
import Kernels
import SafeTensors
import Tokenizers
import XCTest
@testable import Encoder

/// The `polyhead embed` path (tokenizer -> SentenceEmbedder) on real text against
/// sentence-transformers, including a text truncated at max_seq_length.
final class SentenceEmbeddingTests: XCTestCase {
    func testEmbedPathMatchesSentenceTransformers() throws {
        let modelDirectory = try Fixtures.modelDirectory()
        let (encoder, _) = try BertEncoder.load(modelDirectory: modelDirectory)
        let tokenizer = try BertTokenizer(modelDirectory: modelDirectory)
        let maxLength = EmbeddingDefaults.maxLength(modelDirectory: modelDirectory, config: encoder.config)
        XCTAssertEqual(maxLength, 256, "sentence_bert_config.json's max_seq_length")
        XCTAssertEqual(EmbeddingDefaults.pooling(modelDirectory: modelDirectory), .mean)

        let lines = try String(contentsOf: Fixtures.encoder.appendingPathComponent("minilm-sentences.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        let sentences = try lines.map { line -> String in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let text = object["text"] as? String else {
                throw FixtureError(description: "minilm-sentences.jsonl: a line without \"text\"")
            }
            return text
        }
        let tokenized = try sentences.map { text -> TokenizedText in
            let encoding = try tokenizer.encode(text, maxLength: maxLength)
            return TokenizedText(ids: encoding.ids, typeIds: encoding.typeIds)
        }
        let expected = try Fixtures.file("minilm-expected.safetensors")
        XCTAssertEqual(tokenized.flatMap(\.ids), try expected.int64s("input_ids").map { Int32($0) }, "same token ids as the reference")
        XCTAssertEqual(tokenized.map(\.ids.count).max(), 256, "the long text is truncated")

        let embeddings = try SentenceEmbedder(encoder: encoder, pooling: .mean, normalize: true, batchSize: 7).embed(tokenized)
        let reference = try expected.floats("st_embeddings")
        XCTAssertEqual(embeddings.count, sentences.count)
        var worst = 1.0
        for (row, embedding) in embeddings.enumerated() {
            let cosine = zip(embedding, reference[(row * 384)..<((row + 1) * 384)]).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            XCTAssertGreaterThanOrEqual(cosine, 0.9999, "sentence \(row)")
            worst = min(worst, cosine)
        }
        print("embed path: min cosine \(worst) over \(embeddings.count) sentences")
    }

    func testBatchingDoesNotChangeEmbeddings() throws {
        let (encoder, _) = try BertEncoder.load(modelDirectory: Fixtures.tinyModel)
        let texts = [[2, 5, 9, 3], [2, 7, 3], [2, 11, 12, 13, 14, 3], [2, 3]].map { TokenizedText(ids: $0.map { Int32($0) }, typeIds: [Int32](repeating: 0, count: $0.count)) }
        for pooling in Pooling.allCases {
            let together = try SentenceEmbedder(encoder: encoder, pooling: pooling, normalize: false, batchSize: 4).embed(texts)
            let single = try SentenceEmbedder(encoder: encoder, pooling: pooling, normalize: false, batchSize: 1).embed(texts)
            for (a, b) in zip(together, single) { compare(a, b, absolute: 1e-5, relative: 0, "\(pooling) batch 4 vs 1") }
        }
    }

    func testDefaultsWithoutSentenceTransformersFiles() throws {
        let config = try BertConfig.load(contentsOf: Fixtures.tinyModel.appendingPathComponent("config.json"))
        XCTAssertEqual(EmbeddingDefaults.maxLength(modelDirectory: Fixtures.tinyModel, config: config), 64, "max_position_embeddings")
        XCTAssertEqual(EmbeddingDefaults.pooling(modelDirectory: Fixtures.tinyModel), .mean)
    }

    func testPoolingBackwardMatchesForward() throws {
        // Pooling is linear: <pool(h), g> == <h, poolBackward(g)> for any h and g.
        let offsets = [0, 3, 4, 9], channels = 4
        let hidden = (0..<36).map { Float(($0 * 7) % 11) - 5 }, upstream = (0..<12).map { Float(($0 * 5) % 7) - 3 }
        for pooling in Pooling.allCases {
            let pooled = hidden.withUnsafeBufferPointer { poolForward($0.baseAddress!, sequenceOffsets: offsets, channels: channels, pooling: pooling) }
            var dhidden = [Float](repeating: 0, count: hidden.count)
            poolBackward(&dhidden, upstream, sequenceOffsets: offsets, channels: channels, pooling: pooling)
            let left = zip(pooled, upstream).reduce(0.0) { $0 + Double($1.0 * $1.1) }
            let right = zip(hidden, dhidden).reduce(0.0) { $0 + Double($1.0 * $1.1) }
            XCTAssertEqual(left, right, accuracy: 1e-4, "\(pooling)")
        }
    }
}
