import Encoder
import Foundation
import SafeTensors
import XCTest
@testable import PluginHost

/// LoRA adapters against PEFT at the level of the encoder's hidden states: an adapter merged
/// into Polyhead's BERT encoder (the plugin's merge, then the encoder's eval forward) gives
/// the last hidden states PEFT's PeftModel computes with the adapter unmerged
/// (scripts/reference/lora_fixtures.py), within 1e-4; and an adapter Polyhead exports gives,
/// in PeftModel, the hidden states recorded here (the script checks them). The adapter that
/// `polyhead train` trained on all-MiniLM-L6-v2 (Tests/Fixtures/lora/polyhead-trained, PeftModel's
/// hidden states from scripts/reference/lora_trained_fixture.py) is checked the same way here,
/// and through the encoder's adapter hooks in TrainingTests.LoRATrainedAdapterTests.
///
/// At evaluation (no dropout) base plus adapter is exactly the merged layer, so these hold
/// whichever way the encoder applies the adapter. Training through the adapter needs the
/// encoder to call the adapter at each linear site (adapter.h); that is the encoder's part.
final class LoRAEncoderTests: XCTestCase {
    static let fixtures = LoRAPEFTTests.fixtures

    /// Adds every hooked site's delta into the encoder's weight of the same name.
    static func merge(_ adapter: AdapterInstance, into encoder: BertEncoder) throws {
        for site in adapter.hookedSites {
            let name = adapter.sites[site].name + ".weight"
            guard let weight = encoder.parameter(name) else { throw PEFTFormatError("the encoder has no parameter \(name)") }
            var values = Array(weight)
            try adapter.merge(site: site, weight: &values)
            _ = weight.update(fromContentsOf: values)
        }
    }

    /// The fixture's packed sequences, with their token types where the fixture records them.
    static func batch(_ file: SafeTensorsFile) throws -> PackedBatch {
        let tokenTypes = file.tensorNames.contains("token_type_ids") ? try file.int64s("token_type_ids").map { Int32($0) } : nil
        return try PackedBatch(tokenIds: file.int64s("input_ids").map { Int32($0) }, tokenTypeIds: tokenTypes,
                               sequenceOffsets: file.int64s("sequence_offsets").map { Int($0) })
    }

    /// models/all-MiniLM-L6-v2, or nil after failing the test when it is missing.
    private func miniLM(file: StaticString = #filePath, line: UInt = #line) -> URL? {
        let model = Repository.root.appendingPathComponent("models/all-MiniLM-L6-v2")
        guard FileManager.default.fileExists(atPath: model.appendingPathComponent("model.safetensors").path) else {
            XCTFail("\(model.path) is missing: run scripts/setup", file: file, line: line)
            return nil
        }
        return model
    }

    /// Imports the PEFT adapter in `adapterDirectory`, merges it into the encoder in `model` and
    /// compares the encoder's hidden states with PeftModel's ("hidden_states.peft" of
    /// `expectedFile`) within 1e-4.
    private func checkHiddenStates(model: URL, adapterDirectory: String, expectedFile: String, name: String,
                                   file: StaticString = #filePath, line: UInt = #line) throws {
        let (encoder, _) = try BertEncoder.load(modelDirectory: model)
        let config = encoder.config
        let sites = PEFTAdapterFormat.bertLinearSites(layerCount: config.numHiddenLayers, hiddenSize: config.hiddenSize,
                                                      intermediateSize: config.intermediateSize)
        let adapter = try PEFTAdapterFormat.importAdapter(from: Self.fixtures.appendingPathComponent(adapterDirectory), component: LoRAPEFTTests.lora,
                                                          name: name, sites: sites, inputWidth: config.hiddenSize)
        let expected = try SafeTensorsFile(contentsOf: Self.fixtures.appendingPathComponent(expectedFile))
        let batch = try Self.batch(expected)
        let peftStates = try expected.floats("hidden_states.peft").map(Double.init)
        let before = try encoder.infer(batch)
        let baseDifference = maxDifference(before, try expected.floats("hidden_states.base").map(Double.init))
        try Self.merge(adapter, into: encoder)
        let after = try encoder.infer(batch)
        let difference = maxDifference(after, peftStates)
        let moved = maxDifference(before, peftStates)
        print("\(name): hidden states of \(batch.sequenceCount) sequences (\(batch.tokenCount) tokens), merged adapter vs PEFT max diff \(String(format: "%.2e", difference)); without the adapter vs transformers \(String(format: "%.2e", baseDifference)); the adapter moves them by up to \(String(format: "%.3f", moved))")
        XCTAssertGreaterThan(moved, 0.05, "the adapter must change the hidden states for the check to mean anything", file: file, line: line)
        XCTAssertLessThanOrEqual(difference, 1e-4, file: file, line: line)
    }

    func testTinyPEFTAdapterGivesPEFTsHiddenStates() throws {
        try checkHiddenStates(model: Self.fixtures.appendingPathComponent("tiny-bert"), adapterDirectory: "tiny-peft",
                              expectedFile: "tiny-peft-expected.safetensors", name: "tiny PEFT adapter")
    }

    func testMiniLMAdapterTrainedWithPEFTGivesPEFTsHiddenStates() throws {
        guard let model = miniLM() else { return }
        try checkHiddenStates(model: model, adapterDirectory: "minilm-peft", expectedFile: "minilm-peft-expected.safetensors",
                              name: "all-MiniLM-L6-v2 adapter trained by PEFT")
    }

    /// The adapter `polyhead train` trained on all-MiniLM-L6-v2 with WordNet tasks
    /// (polyhead-trained/run.yaml), exported in PEFT's layout, merged into the encoder: PeftModel's
    /// hidden states of 12 WordNet texts (one a text pair).
    func testMiniLMAdapterTrainedByPolyheadGivesPEFTsHiddenStates() throws {
        guard let model = miniLM() else { return }
        let directory = Self.fixtures.appendingPathComponent("polyhead-trained")
        // Trained: polyhead.lora starts B at zero, so a B still zero would leave its site unchecked.
        let written = try SafeTensorsFile(contentsOf: directory.appendingPathComponent("adapter_model.safetensors"))
        let upKeys = written.tensorNames.filter { $0.hasSuffix("lora_B.weight") }
        XCTAssertEqual(upKeys.count, 6 * 3, "6 layers x (query, value, intermediate)")
        for key in upKeys { XCTAssertTrue(try written.floats(key).contains { $0 != 0 }, "\(key) is zero: the adapter was not trained") }
        // PEFT's hidden states with and without the adapter differ, so the check can fail.
        let expected = try SafeTensorsFile(contentsOf: directory.appendingPathComponent("expected.safetensors"))
        let moved = maxDifference(try expected.floats("hidden_states.peft"), try expected.floats("hidden_states.base").map(Double.init))
        print("polyhead-trained: in PEFT the adapter moves the hidden states by up to \(String(format: "%.3f", moved))")
        XCTAssertGreaterThan(moved, 0.01)
        try checkHiddenStates(model: model, adapterDirectory: "polyhead-trained", expectedFile: "polyhead-trained/expected.safetensors",
                              name: "all-MiniLM-L6-v2 adapter trained by polyhead train")
    }

    /// Hidden states of the tiny BERT with Polyhead's exported adapter merged in, recorded
    /// next to the export (POLYHEAD_RECORD_LORA_FIXTURES=1) for lora_fixtures.py --verify
    /// to compare with PeftModel's.
    func testPolyheadExportHiddenStates() throws {
        let (encoder, _) = try BertEncoder.load(modelDirectory: Self.fixtures.appendingPathComponent("tiny-bert"))
        let adapter = try LoRAPEFTTests.fixedAdapter()
        let batch = try PackedBatch(sequences: [[2, 11, 23, 5, 3], [2, 50, 3], [2, 8, 8, 41, 19, 62, 3]])
        let before = try encoder.infer(batch)
        try Self.merge(adapter, into: encoder)
        let states = try encoder.infer(batch)
        XCTAssertGreaterThan(maxDifference(states, before.map(Double.init)), 0.05, "the adapter changes the hidden states")

        let url = Self.fixtures.appendingPathComponent("polyhead-export/hidden_states.safetensors")
        if ProcessInfo.processInfo.environment["POLYHEAD_RECORD_LORA_FIXTURES"] == "1" {
            var writer = SafeTensorsWriter()
            try writer.add("input_ids", shape: [batch.tokenCount], int64s: batch.tokenIds.map { Int64($0) })
            try writer.add("sequence_offsets", shape: [batch.sequenceOffsets.count], int64s: batch.sequenceOffsets.map { Int64($0) })
            try writer.add("hidden_states", shape: [batch.tokenCount, encoder.config.hiddenSize], floats: states)
            try writer.write(to: url)
            print("wrote \(url.path); now run scripts/reference/lora_fixtures.py --verify")
        }
        guard FileManager.default.fileExists(atPath: url.path) else {
            return XCTFail("\(url.path) is missing: rerun with POLYHEAD_RECORD_LORA_FIXTURES=1, then scripts/reference/lora_fixtures.py --verify")
        }
        let recorded = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(try Self.batch(recorded), batch)
        // The encoder's results may move in the last bits with BLAS threading; PEFT's check is 1e-4.
        XCTAssertLessThanOrEqual(maxDifference(states, try recorded.floats("hidden_states").map(Double.init)), 1e-5)
    }
}
