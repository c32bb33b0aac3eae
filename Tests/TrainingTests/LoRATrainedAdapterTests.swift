import Encoder
import Foundation
import PluginHost
import SafeTensors
import XCTest
@testable import Training

/// The LoRA adapter `polyhead train` trained on all-MiniLM-L6-v2
/// (Tests/Fixtures/lora/polyhead-trained), applied unmerged through the encoder's adapter hooks
/// as evaluation and prediction apply it (`PluginEncoderAdapter` in `encoder.infer`), gives the
/// hidden states peft.PeftModel computes with it (scripts/reference/lora_trained_fixture.py)
/// within 1e-4. PluginHostTests.LoRAEncoderTests checks the same adapter merged into the weights.
final class LoRATrainedAdapterTests: XCTestCase {
    static let fixture = repositoryRoot.appendingPathComponent("Tests/Fixtures/lora/polyhead-trained")

    func testHookedAdapterTrainedByPolyheadGivesPEFTsHiddenStates() throws {
        let model = repositoryRoot.appendingPathComponent("models/all-MiniLM-L6-v2")
        guard FileManager.default.fileExists(atPath: model.appendingPathComponent("model.safetensors").path) else {
            return XCTFail("\(model.path) is missing: run scripts/setup")
        }
        let (encoder, _) = try BertEncoder.load(modelDirectory: model)
        let registry = PluginRegistry()
        registry.load(searchPath: PluginSearchPath.resolve())
        let instance = try PEFTAdapterFormat.importAdapter(from: Self.fixture, component: try registry.component(id: "polyhead.lora"),
                                                           name: "lora", sites: PluginEncoderAdapter.sites(for: encoder.config),
                                                           inputWidth: encoder.config.hiddenSize)
        XCTAssertEqual(instance.hookedSites.count, 6 * 3, "6 layers x (query, value, intermediate)")

        let expected = try SafeTensorsFile(contentsOf: Self.fixture.appendingPathComponent("expected.safetensors"))
        let batch = try PackedBatch(tokenIds: expected.int64s("input_ids").map { Int32($0) },
                                    tokenTypeIds: expected.int64s("token_type_ids").map { Int32($0) },
                                    sequenceOffsets: expected.int64s("sequence_offsets").map { Int($0) })
        let peftStates = try expected.floats("hidden_states.peft")
        let hooked = try encoder.infer(batch, adapters: [PluginEncoderAdapter(instance)])
        let plain = try encoder.infer(batch)
        let difference = maxDifference(hooked, peftStates), moved = maxDifference(plain, peftStates)
        print("polyhead-trained: hidden states of \(batch.sequenceCount) sequences (\(batch.tokenCount) tokens), adapter through the "
              + "encoder's hooks vs PEFT max diff \(String(format: "%.2e", difference)); without the adapter they differ by up to "
              + String(format: "%.3f", moved))
        XCTAssertGreaterThan(moved, 0.01, "the adapter must change the hidden states for the check to mean anything")
        XCTAssertLessThanOrEqual(difference, 1e-4)
    }

    private func maxDifference(_ left: [Float], _ right: [Float]) -> Double {
        guard left.count == right.count else { return .infinity }  // a length mismatch fails any tolerance
        return zip(left, right).map { abs(Double($0) - Double($1)) }.max() ?? 0
    }
}
