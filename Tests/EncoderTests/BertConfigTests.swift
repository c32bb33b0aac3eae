import Foundation
import XCTest
@testable import Encoder
import Kernels

final class BertConfigTests: XCTestCase {
    func decode(_ json: String) throws -> BertConfig {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("polyhead-config-\(UUID().uuidString).json")
        try Data(json.utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        return try BertConfig.load(contentsOf: url)
    }

    func testMiniLMConfigDecodes() throws {
        let config = try BertConfig.load(contentsOf: Fixtures.modelDirectory().appendingPathComponent("config.json"))
        XCTAssertEqual(config.hiddenSize, 384)
        XCTAssertEqual(config.numHiddenLayers, 6)
        XCTAssertEqual(config.numAttentionHeads, 12)
        XCTAssertEqual(config.intermediateSize, 1536)
        XCTAssertEqual(config.layerNormEps, 1e-12)
        XCTAssertEqual(config.activation, .gelu)
        XCTAssertEqual(config.headSize, 32)
    }

    func testMissingKeysTakeTransformersDefaults() throws {
        let config = try decode(#"{"hidden_size": 64, "num_attention_heads": 4, "pad_token_id": null}"#)
        XCTAssertEqual(config.vocabSize, 30522)
        XCTAssertEqual(config.numHiddenLayers, 12)
        XCTAssertEqual(config.intermediateSize, 3072)
        XCTAssertEqual(config.maxPositionEmbeddings, 512)
        XCTAssertEqual(config.typeVocabSize, 2)
        XCTAssertEqual(config.hiddenDropoutProb, 0.1)
        XCTAssertEqual(config.padTokenId, 0)
        XCTAssertEqual(config.hiddenAct, "gelu")
    }

    func testActivationsAreMapped() throws {
        XCTAssertEqual(try decode(#"{"hidden_act": "gelu_new"}"#).activation, .geluTanh)
        XCTAssertEqual(try decode(#"{"hidden_act": "gelu_pytorch_tanh"}"#).activation, .geluTanh)
        XCTAssertEqual(try decode(#"{"hidden_act": "relu"}"#).activation, .relu)
    }

    func testUnsupportedValuesAreRefusedByKeyAndValue() {
        let cases: [(String, String, String)] = [
            (#"{"position_embedding_type": "relative_key"}"#, "position_embedding_type", "relative_key"),
            (#"{"hidden_act": "silu"}"#, "hidden_act", "silu"),
            (#"{"is_decoder": true}"#, "is_decoder", "true"),
            (#"{"add_cross_attention": true}"#, "add_cross_attention", "true"),
            (#"{"model_type": "roberta"}"#, "model_type", "roberta"),
            (#"{"hidden_size": 100, "num_attention_heads": 12}"#, "hidden_size", "100"),
            (#"{"hidden_dropout_prob": 1.0}"#, "hidden_dropout_prob", "1.0"),
            (#"{"num_hidden_layers": 0}"#, "num_hidden_layers", "0"),
        ]
        for (json, key, value) in cases {
            XCTAssertThrowsError(try decode(json), json) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(key) && message.contains(value), "\(json): \(message)")
            }
        }
    }

    func testWrongTypeNamesTheKey() {
        XCTAssertThrowsError(try decode(#"{"hidden_size": "big"}"#)) { error in
            XCTAssertTrue("\(error)".contains("hidden_size"), "\(error)")
        }
    }
}
