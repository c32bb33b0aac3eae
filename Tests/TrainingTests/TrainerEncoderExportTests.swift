import Encoder
import Foundation
import SafeTensors
import XCTest
@testable import Training

/// A checkpoint's encoder/ is a Hugging Face model directory: transformers' AutoModel loads the
/// one Polyhead wrote (Tests/Fixtures/trainer/checkpoint-encoder), and what it computed there
/// is in checkpoint-encoder-automodel.json (scripts/reference/checkpoint_automodel.py).
final class TrainerEncoderExportTests: XCTestCase {
    private struct AutoModelRecord: Decodable {
        struct Sequence: Decodable {
            let ids: [Int32]
            let type_ids: [Int32]
            let last_hidden_state: [[Float]]
        }
        let model_sha256: String
        let loaded_tensors: [String]
        let missing_keys: [String]
        let sequences: [Sequence]
    }

    private let fixture = trainerFixtures.appendingPathComponent("checkpoint-encoder")

    private func record() throws -> AutoModelRecord {
        let url = trainerFixtures.appendingPathComponent("checkpoint-encoder-automodel.json")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            XCTFail("missing \(url.path); run python scripts/reference/checkpoint_automodel.py")
            throw CocoaError(.fileReadNoSuchFile)
        }
        let record = try JSONDecoder().decode(AutoModelRecord.self, from: data)
        let weights = try bytes(fixture.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(SHA256.hash(weights).hexString, record.model_sha256, "the record belongs to another model.safetensors; rerun the script")
        return record
    }

    /// (a) The checkpoint writer, as the trainer calls it, still writes this directory: the
    /// same config.json, the same tensor names (those AutoModel loaded, nothing missing but
    /// the pooler), shapes and values, and the tokenizer files beside them.
    func testCheckpointWriterStillWritesTheDirectoryAutoModelLoaded() throws {
        let record = try record()
        XCTAssertEqual(record.missing_keys, ["pooler.dense.bias", "pooler.dense.weight"])
        let (encoder, ignored) = try BertEncoder.load(modelDirectory: fixture)
        XCTAssertEqual(ignored, [])

        let runs = try TinyRuns()
        let store = CheckpointStore(outputDirectory: runs.directory)
        try store.save(CheckpointContents(step: 0, writeEncoder: MultiTaskModel.encoderWriter(encoder, configFrom: fixture),
                                          tokenizerDirectory: fixture, heads: [], trainerState: nil), as: "written")
        let written = try store.load("written").encoderDirectory
        for name in ["config.json", "vocab.txt"] {
            XCTAssertEqual(try bytes(written.appendingPathComponent(name)), try bytes(fixture.appendingPathComponent(name)), name)
        }
        let ours = try SafeTensorsFile(contentsOf: written.appendingPathComponent("model.safetensors"))
        let theirs = try SafeTensorsFile(contentsOf: fixture.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(ours.tensorNames.sorted(), record.loaded_tensors)
        XCTAssertEqual(ours.metadata["format"], "pt", "transformers wants the pt format tag")
        for name in record.loaded_tensors {
            XCTAssertEqual(try ours.info(name).dtype, .f32, name)
            XCTAssertEqual(try ours.info(name).shape, try theirs.info(name).shape, name)
            XCTAssertEqual(try ours.floats(name), try theirs.floats(name), name)
        }
    }

    /// (b) Polyhead's forward pass on the directory gives AutoModel's last_hidden_state.
    func testForwardMatchesAutoModelHiddenStates() throws {
        let record = try record()
        let (encoder, _) = try BertEncoder.load(modelDirectory: fixture)
        let batch = try PackedBatch(sequences: record.sequences.map(\.ids), tokenTypes: record.sequences.map(\.type_ids))
        let hidden = try encoder.infer(batch)
        let width = encoder.config.hiddenSize
        var offset = 0
        for (index, sequence) in record.sequences.enumerated() {
            let expected = sequence.last_hidden_state.flatMap { $0 }
            XCTAssertEqual(expected.count, sequence.ids.count * width)
            let actual = Array(hidden[offset..<(offset + expected.count)])
            assertClose(actual, expected, relative: 0, absolute: 1e-5, "sequence \(index) last_hidden_state")
            print("sequence \(index): \(sequence.ids.count) tokens, largest difference from AutoModel \(toleranceUsed(actual, expected, relative: 0, absolute: 1))")
            offset += expected.count
        }
        XCTAssertEqual(offset, hidden.count)
    }
}
