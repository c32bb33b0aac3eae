import Foundation
import SafeTensors
import XCTest
@testable import Encoder

final class CheckpointTests: XCTestCase {
    func tinyLayout() throws -> ParameterLayout {
        ParameterLayout(config: try BertConfig.load(contentsOf: Fixtures.tinyModel.appendingPathComponent("config.json")))
    }

    func testKeyDispositions() throws {
        let layout = try tinyLayout()
        let query = "encoder.layer.1.attention.self.query.weight"
        XCTAssertEqual(CheckpointKeys.disposition(of: query, in: layout), .parameter(query))
        XCTAssertEqual(CheckpointKeys.disposition(of: "bert." + query, in: layout), .parameter(query))
        XCTAssertEqual(CheckpointKeys.disposition(of: "bert.embeddings.LayerNorm.gamma", in: layout), .parameter("embeddings.LayerNorm.weight"))
        XCTAssertEqual(CheckpointKeys.disposition(of: "encoder.layer.0.output.LayerNorm.beta", in: layout), .parameter("encoder.layer.0.output.LayerNorm.bias"))
        for ignored in ["pooler.dense.weight", "bert.pooler.dense.bias", "embeddings.position_ids", "cls.predictions.bias"] {
            guard case .ignored = CheckpointKeys.disposition(of: ignored, in: layout) else { return XCTFail("\(ignored) should be ignored") }
        }
        XCTAssertNil(CheckpointKeys.disposition(of: "encoder.layer.2.attention.self.query.weight", in: layout), "layer 2 does not exist")
        XCTAssertNil(CheckpointKeys.disposition(of: "classifier.weight", in: layout))
    }

    func testLayoutIsContiguousAndFusesQKV() throws {
        let layout = try tinyLayout()
        var expectedOffset = 0
        for view in layout.views {
            XCTAssertEqual(view.offset, expectedOffset, view.name)
            expectedOffset += view.count
        }
        XCTAssertEqual(layout.totalCount, expectedOffset)
        let c = 32
        for (index, offsets) in layout.layers.enumerated() {
            XCTAssertEqual(layout.view(named: "encoder.layer.\(index).attention.self.key.weight")?.offset, offsets.qkvWeight + c * c)
            XCTAssertEqual(layout.view(named: "encoder.layer.\(index).attention.self.value.weight")?.offset, offsets.qkvWeight + 2 * c * c)
            XCTAssertEqual(layout.view(named: "encoder.layer.\(index).attention.self.value.bias")?.offset, offsets.qkvBias + 2 * c)
        }
    }

    func testTinyLoadsIgnoringThePooler() throws {
        let (encoder, ignored) = try BertEncoder.load(modelDirectory: Fixtures.tinyModel)
        XCTAssertEqual(Set(ignored.map(\.name)), ["pooler.dense.weight", "pooler.dense.bias"])
        let file = try SafeTensorsFile(contentsOf: Fixtures.tinyModel.appendingPathComponent("model.safetensors"))
        for view in encoder.layout.views {
            XCTAssertEqual(Array(encoder.parameter(view.name)!), try file.floats(view.name), view.name)
        }
    }

    /// Builds an in-memory checkpoint from the tiny model's tensors, edited by `edit`.
    func checkpoint(_ edit: (inout [String: ([Int], [Float])]) -> Void) throws -> SafeTensorsFile {
        let source = try SafeTensorsFile(contentsOf: Fixtures.tinyModel.appendingPathComponent("model.safetensors"))
        var tensors: [String: ([Int], [Float])] = [:]
        for name in source.tensorNames { tensors[name] = (try source.info(name).shape, try source.floats(name)) }
        edit(&tensors)
        var writer = SafeTensorsWriter()
        for (name, tensor) in tensors { try writer.add(name, shape: tensor.0, floats: tensor.1) }
        return try SafeTensorsFile(bytes: try writer.data())
    }

    func testMissingAndUnexpectedTensorsAreListed() throws {
        let encoder = BertEncoder(config: try BertConfig.load(contentsOf: Fixtures.tinyModel.appendingPathComponent("config.json")))
        let missing = try checkpoint { tensors in
            tensors["encoder.layer.1.output.dense.bias"] = nil
            tensors["embeddings.LayerNorm.weight"] = nil
        }
        XCTAssertThrowsError(try encoder.loadWeights(from: missing, file: "x.safetensors")) { error in
            XCTAssertEqual(error as? EncoderError, .missingTensors(file: "x.safetensors", names: ["embeddings.LayerNorm.weight", "encoder.layer.1.output.dense.bias"]))
        }
        let unexpected = try checkpoint { tensors in
            tensors["classifier.weight"] = ([2, 32], [Float](repeating: 0, count: 64))
            tensors["encoder.layer.7.output.dense.bias"] = ([32], [Float](repeating: 0, count: 32))
        }
        XCTAssertThrowsError(try encoder.loadWeights(from: unexpected, file: "x.safetensors")) { error in
            XCTAssertEqual(error as? EncoderError, .unexpectedTensors(file: "x.safetensors", names: ["classifier.weight", "encoder.layer.7.output.dense.bias"]))
        }
        let misShaped = try checkpoint { tensors in
            tensors["embeddings.token_type_embeddings.weight"] = ([3, 32], [Float](repeating: 0, count: 96))
        }
        XCTAssertThrowsError(try encoder.loadWeights(from: misShaped, file: "x.safetensors")) { error in
            XCTAssertEqual(error as? EncoderError, .shapeMismatch(file: "x.safetensors", tensor: "embeddings.token_type_embeddings.weight", expected: [2, 32], found: [3, 32]))
        }
        let prefixed = try checkpoint { tensors in
            let renamed = tensors.map { ("bert." + $0.key, $0.value) }
            tensors = Dictionary(uniqueKeysWithValues: renamed)
        }
        XCTAssertEqual(try encoder.loadWeights(from: prefixed).count, 2, "bert.-prefixed keys load; the pooler is ignored")
    }

    func testSaveWritesHuggingFaceKeysAndRoundTrips() throws {
        let (encoder, _) = try BertEncoder.load(modelDirectory: Fixtures.tinyModel)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("polyhead-save-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try encoder.saveWeights(to: url)
        let saved = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(Set(saved.tensorNames), Set(encoder.layout.views.map(\.name)))
        XCTAssertEqual(saved.metadata["format"], "pt")
        let reloaded = BertEncoder(config: encoder.config)
        XCTAssertEqual(try reloaded.loadWeights(from: saved), [])
        XCTAssertEqual(reloaded.parameters.toArray(), encoder.parameters.toArray())
    }
}
