import Foundation
import SafeTensors
import XCTest
@testable import PluginHost

/// LoRA adapters in PEFT's layout (Sources/PluginHost/PEFTAdapterFormat.swift), against
/// adapters written by peft 0.21.2 and merged by its merge_and_unload()
/// (scripts/reference/lora_fixtures.py), and an adapter Polyhead exported that the same
/// script loads with PeftModel.
///
/// Hidden-state parity (an adapter applied inside the encoder's forward pass) waits for the
/// encoder's adapter hooks; the fixtures already hold PEFT's hidden states for it
/// ("hidden_states.peft"). Until then parity is checked on the merged weights, which is what
/// an exported merged checkpoint contains.
final class LoRAPEFTTests: XCTestCase {
    static let fixtures = Repository.root.appendingPathComponent("Tests/Fixtures/lora")
    static let tinySites = PEFTAdapterFormat.bertLinearSites(layerCount: 2, hiddenSize: 32, intermediateSize: 64)
    static let miniLMSites = PEFTAdapterFormat.bertLinearSites(layerCount: 6, hiddenSize: 384, intermediateSize: 1536)

    static var lora: Component {
        get throws { try LoRATests.registry.component(id: "polyhead.lora") }
    }

    private var temporaryDirectories: [URL] = []

    private func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("polyhead-lora-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        temporaryDirectories.append(url)
        return url
    }

    override func tearDown() {
        for url in temporaryDirectories { try? FileManager.default.removeItem(at: url) }
        temporaryDirectories = []
        super.tearDown()
    }

    private func value(_ adapter: AdapterInstance, _ name: String) -> [Float] {
        adapter.parameters.info(named: name).map { Array(adapter.parameters.values(of: $0)) } ?? []
    }

    // MARK: Import

    /// PEFT's own adapter on a tiny BERT (every linear site, rslora): merged into the base
    /// weights by the plugin, it gives merge_and_unload()'s weights.
    func testTinyPEFTAdapterMergesLikePEFT() throws {
        let directory = Self.fixtures.appendingPathComponent("tiny-peft")
        let imported = try PEFTAdapterFormat.read(from: directory, sites: Self.tinySites)
        XCTAssertEqual(imported.rank, 4)
        XCTAssertEqual(imported.alpha, 6)
        XCTAssertTrue(imported.usesRankStabilisedScaling)
        XCTAssertEqual(imported.dropout, 0.1)
        XCTAssertEqual(imported.targets, ["query", "key", "value", "attention_output", "intermediate", "output"])
        XCTAssertEqual(imported.layers, [0, 1])
        let adapter = try PEFTAdapterFormat.importAdapter(from: directory, component: Self.lora, name: "tiny", sites: Self.tinySites, inputWidth: 32)
        XCTAssertEqual(adapter.hookedSites, Array(Self.tinySites.indices))
        XCTAssertEqual(value(adapter, "scaling"), [3], "use_rslora: 6 / sqrt(4)")

        let base = try SafeTensorsFile(contentsOf: Self.fixtures.appendingPathComponent("tiny-bert/model.safetensors"))
        let expected = try SafeTensorsFile(contentsOf: Self.fixtures.appendingPathComponent("tiny-peft-expected.safetensors"))
        var worstMerge = 0.0, worstUnmerge = 0.0, smallestDelta = Double.infinity
        for site in adapter.hookedSites {
            let name = Self.tinySites[site].name
            let original = try base.floats("\(name).weight")
            var weight = original
            try adapter.merge(site: site, weight: &weight)
            worstMerge = max(worstMerge, maxDifference(weight, try expected.floats("merged.\(name).weight").map(Double.init)))
            smallestDelta = min(smallestDelta, maxDifference(weight, original.map(Double.init)))
            try adapter.unmerge(site: site, weight: &weight)
            worstUnmerge = max(worstUnmerge, maxDifference(weight, original.map(Double.init)))
        }
        print("tiny PEFT adapter, 12 layers: merged weights vs peft merge_and_unload max diff \(String(format: "%.2e", worstMerge)), unmerged vs base \(String(format: "%.2e", worstUnmerge))")
        XCTAssertGreaterThan(smallestDelta, 1e-2, "every layer's adapter changes its weight (the check is not vacuous)")
        XCTAssertLessThanOrEqual(worstMerge, 1e-6)
        XCTAssertLessThanOrEqual(worstUnmerge, 1e-6)
    }

    /// Each layer of PEFT's tiny adapter on its own: y = x W^T + b + LoRA(x) and the backward
    /// of a random d(y) (d(x), d(lora_A), d(lora_B)) match PEFT's LoRA Linear, dropout off.
    func testTinyPEFTLayersForwardAndBackwardLikePEFT() throws {
        let directory = Self.fixtures.appendingPathComponent("tiny-peft")
        let imported = try PEFTAdapterFormat.read(from: directory, sites: Self.tinySites)
        // The same adapter without dropout, so a training pass is deterministic.
        guard case .object(var options) = try JSONValue(parsing: imported.configJSON) else { return XCTFail("configJSON is not an object") }
        options["dropout"] = .number(0)
        let adapter = try AdapterInstance(component: Self.lora, name: "tiny-layers", configJSON: JSONValue.object(options).text,
                                          inputWidth: 32, sites: Self.tinySites)
        try PEFTAdapterFormat.load(imported, into: adapter)
        let base = try SafeTensorsFile(contentsOf: Self.fixtures.appendingPathComponent("tiny-bert/model.safetensors"))
        let expected = try SafeTensorsFile(contentsOf: Self.fixtures.appendingPathComponent("tiny-peft-expected.safetensors"))
        // PEFT computed in float32 too, so differences are relative to each tensor's size.
        var worst: [String: Double] = ["y": 0, "d_x": 0, "d_lora_A": 0, "d_lora_B": 0]
        func record(_ key: String, _ actual: [Float], _ reference: [Float]) {
            let scale = max(1, reference.map { abs(Double($0)) }.max() ?? 0)
            worst[key] = max(worst[key]!, maxDifference(actual, reference.map(Double.init)) / scale)
        }
        for site in adapter.hookedSites {
            let shape = Self.tinySites[site], name = shape.name
            let x = try expected.floats("site.\(name).x")
            let rows = x.count / shape.inFeatures
            var y = LoRATests.linear(x, try base.floats("\(name).weight"), try base.floats("\(name).bias"), rows: rows,
                                     inFeatures: shape.inFeatures, outFeatures: shape.outFeatures)
            adapter.parameters.zeroGradients()
            let saved = try adapter.forward(site: site, x: x, y: &y, training: true)
            record("y", y, try expected.floats("site.\(name).y"))
            // d(x) of the base layer, dy W, then the adapter's part added.
            let dy = try expected.floats("site.\(name).output_gradient"), weight = try base.floats("\(name).weight")
            var dx = [Float](repeating: 0, count: x.count)
            for row in 0..<rows {
                for input in 0..<shape.inFeatures {
                    var sum = 0.0
                    for out in 0..<shape.outFeatures { sum += Double(dy[row * shape.outFeatures + out]) * Double(weight[out * shape.inFeatures + input]) }
                    dx[row * shape.inFeatures + input] = Float(sum)
                }
            }
            try adapter.backward(saved, site: site, x: x, outputGradient: dy, inputGradient: &dx)
            record("d_x", dx, try expected.floats("site.\(name).d_x"))
            for (factor, key) in [("lora_A", "d_lora_A"), ("lora_B", "d_lora_B")] {
                let gradient = Array(adapter.parameters.gradients(of: adapter.parameters.info(named: "\(name).\(factor).weight")!))
                record(key, gradient, try expected.floats("site.\(name).\(factor).grad"))
            }
        }
        print("tiny PEFT adapter, each of 12 layers vs PEFT's LoRA Linear: " + worst.keys.sorted().map { "\($0) max diff \(String(format: "%.2e", worst[$0]!))" }.joined(separator: ", ") + " (relative to max(1, largest value))")
        for (what, difference) in worst { XCTAssertLessThanOrEqual(difference, 1e-5, what) }
    }

    /// PEFT's adapter on all-MiniLM-L6-v2 (query and value of six layers): merged into the
    /// real checkpoint's weights, the first rows and the whole matrix times a probe match.
    func testMiniLMPEFTAdapterMergesLikePEFT() throws {
        let model = Repository.root.appendingPathComponent("models/all-MiniLM-L6-v2/model.safetensors")
        guard FileManager.default.fileExists(atPath: model.path) else {
            return XCTFail("\(model.path) is missing: run scripts/setup")
        }
        let adapter = try PEFTAdapterFormat.importAdapter(from: Self.fixtures.appendingPathComponent("minilm-peft"), component: Self.lora,
                                                          name: "minilm", sites: Self.miniLMSites, inputWidth: 384)
        XCTAssertEqual(adapter.hookedSites.map { Self.miniLMSites[$0].name }.filter { $0.hasSuffix("query") }.count, 6)
        XCTAssertEqual(adapter.hookedSites.count, 12)
        XCTAssertEqual(value(adapter, "scaling"), [2], "lora_alpha 8 / r 4")
        XCTAssertEqual(value(adapter, "dropout"), [0.05])

        let base = try SafeTensorsFile(contentsOf: model)
        let expected = try SafeTensorsFile(contentsOf: Self.fixtures.appendingPathComponent("minilm-peft-expected.safetensors"))
        let probe = try expected.floats("probe") // [384, 2]
        var worstRows = 0.0, worstProbe = 0.0, smallestDelta = Double.infinity
        for site in adapter.hookedSites {
            let shape = Self.miniLMSites[site]
            let original = try base.floats("\(shape.name).weight")
            var weight = original
            try adapter.merge(site: site, weight: &weight)
            smallestDelta = min(smallestDelta, maxDifference(weight, original.map(Double.init)))
            worstRows = max(worstRows, maxDifference(Array(weight[0..<(8 * shape.inFeatures)]),
                                                     try expected.floats("merged_rows.\(shape.name).weight").map(Double.init)))
            var product = [Float](repeating: 0, count: shape.outFeatures * 2)
            for row in 0..<shape.outFeatures {
                for column in 0..<2 {
                    var sum = 0.0
                    for input in 0..<shape.inFeatures { sum += Double(weight[row * shape.inFeatures + input]) * Double(probe[input * 2 + column]) }
                    product[row * 2 + column] = Float(sum)
                }
            }
            worstProbe = max(worstProbe, maxDifference(product, try expected.floats("merged_probe.\(shape.name).weight").map(Double.init)))
        }
        // Each adapted layer on its own, the real weights plus the adapter's term, as PEFT computes it.
        var worstLayer = 0.0
        for site in adapter.hookedSites {
            let shape = Self.miniLMSites[site], name = shape.name
            let x = try expected.floats("site.\(name).x")
            var y = LoRATests.linear(x, try base.floats("\(name).weight"), try base.floats("\(name).bias"), rows: x.count / shape.inFeatures,
                                     inFeatures: shape.inFeatures, outFeatures: shape.outFeatures)
            _ = try adapter.forward(site: site, x: x, y: &y, training: false)
            worstLayer = max(worstLayer, maxDifference(y, try expected.floats("site.\(name).y").map(Double.init)))
        }
        XCTAssertLessThanOrEqual(worstLayer, 2e-5)
        print("all-MiniLM-L6-v2 PEFT adapter (trained by PEFT), 12 layers: outputs vs PEFT's LoRA Linear max diff \(String(format: "%.2e", worstLayer)), merged rows max diff \(String(format: "%.2e", worstRows)), merged weight x probe max diff \(String(format: "%.2e", worstProbe))")
        XCTAssertGreaterThan(smallestDelta, 1e-3, "every layer's adapter changes its weight (the check is not vacuous)")
        XCTAssertLessThanOrEqual(worstRows, 1e-6)
        XCTAssertLessThanOrEqual(worstProbe, 2e-5)
    }

    // MARK: Export

    /// A fixed adapter on the tiny BERT's layer 1 (query, key, intermediate): the one in
    /// Tests/Fixtures/lora/polyhead-export.
    static func fixedAdapter(name: String = "export") throws -> AdapterInstance {
        let adapter = try AdapterInstance(component: lora, name: name,
                                          configJSON: #"{"rank": 4, "alpha": 8, "dropout": 0.05, "targets": ["query", "key", "intermediate"], "layers": [1]}"#,
                                          inputWidth: 32, sites: Self.tinySites)
        var random = TestRandom(seed: 91)
        for parameter in adapter.parameters.parameters where parameter.trainable {
            let values = adapter.parameters.values(of: parameter)
            for index in values.indices { values[index] = random.normal() * 0.2 }
        }
        return adapter
    }

    /// Export, read back, import into a fresh instance: the same settings and values; and the
    /// bytes are those of the committed export that scripts/reference/lora_fixtures.py checked
    /// with PeftModel (POLYHEAD_RECORD_LORA_FIXTURES=1 rewrites them).
    func testExportLoadsBackAndMatchesTheExportPEFTVerified() throws {
        let adapter = try Self.fixedAdapter()
        let directory = try temporaryDirectory().appendingPathComponent("adapter")
        try PEFTAdapterFormat.export(adapter, to: directory, baseModel: "Tests/Fixtures/lora/tiny-bert")

        guard case .object(let config) = try JSONValue(parsing: String(contentsOf: directory.appendingPathComponent("adapter_config.json"), encoding: .utf8)) else {
            return XCTFail("adapter_config.json is not an object")
        }
        XCTAssertEqual(config["peft_type"], .string("LORA"))
        XCTAssertEqual(config["r"], .number(4))
        XCTAssertEqual(config["lora_alpha"], .number(8))
        XCTAssertEqual(config["lora_dropout"], .number(0.05))
        XCTAssertEqual(config["bias"], .string("none"))
        XCTAssertEqual(config["task_type"], .null)
        XCTAssertEqual(config["base_model_name_or_path"], .string("Tests/Fixtures/lora/tiny-bert"))
        XCTAssertEqual(config["target_modules"], .array(["encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.key",
                                                         "encoder.layer.1.intermediate.dense"].map { .string($0) }))
        let weights = try SafeTensorsFile(contentsOf: directory.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertEqual(Set(weights.tensorNames), Set(["query", "key"].flatMap { name in ["A", "B"].map { "base_model.model.encoder.layer.1.attention.self.\(name).lora_\($0).weight" } }
                                                      + ["A", "B"].map { "base_model.model.encoder.layer.1.intermediate.dense.lora_\($0).weight" }))
        XCTAssertEqual(try weights.info("base_model.model.encoder.layer.1.intermediate.dense.lora_B.weight").shape, [64, 4])
        XCTAssertEqual(weights.metadata["format"], "pt")

        let again = try PEFTAdapterFormat.importAdapter(from: directory, component: Self.lora, name: "again", sites: Self.tinySites, inputWidth: 32)
        XCTAssertEqual(again.hookedSites, adapter.hookedSites)
        for parameter in adapter.parameters.parameters {
            XCTAssertEqual(value(again, parameter.name), value(adapter, parameter.name), parameter.name)
        }

        // Merged weights over the tiny BERT, for the script to compare with PEFT's merge.
        let base = try SafeTensorsFile(contentsOf: Self.fixtures.appendingPathComponent("tiny-bert/model.safetensors"))
        var merged = SafeTensorsWriter()
        for site in adapter.hookedSites {
            let shape = Self.tinySites[site]
            var weight = try base.floats("\(shape.name).weight")
            try adapter.merge(site: site, weight: &weight)
            try merged.add("merged.\(shape.name).weight", shape: [shape.outFeatures, shape.inFeatures], floats: weight)
        }
        try merged.write(to: directory.appendingPathComponent("merged.safetensors"))

        let committed = Self.fixtures.appendingPathComponent("polyhead-export")
        let files = ["adapter_config.json", "adapter_model.safetensors", "merged.safetensors"]
        if ProcessInfo.processInfo.environment["POLYHEAD_RECORD_LORA_FIXTURES"] == "1" {
            try FileManager.default.createDirectory(at: committed, withIntermediateDirectories: true)
            for file in files {
                try? FileManager.default.removeItem(at: committed.appendingPathComponent(file))
                try FileManager.default.copyItem(at: directory.appendingPathComponent(file), to: committed.appendingPathComponent(file))
            }
            print("wrote \(committed.path); now run scripts/reference/lora_fixtures.py --verify")
        }
        for file in files {
            let written = try Data(contentsOf: directory.appendingPathComponent(file))
            guard let expected = FileManager.default.contents(atPath: committed.appendingPathComponent(file).path) else {
                XCTFail("\(committed.path)/\(file) is missing: rerun this test with POLYHEAD_RECORD_LORA_FIXTURES=1, then scripts/reference/lora_fixtures.py --verify")
                continue
            }
            XCTAssertEqual(written, expected, "\(file) differs from the export PEFT verified; if the change is meant, rerecord and reverify")
        }
    }

    /// One adapter per task: each in its own directory, named after the instance.
    func testExportEachTaskAdapterIntoItsOwnDirectory() throws {
        let directory = try temporaryDirectory()
        try PEFTAdapterFormat.exportEach([Self.fixedAdapter(name: "topics"), Self.fixedAdapter(name: "tags")], to: directory, baseModel: nil)
        for task in ["topics", "tags"] {
            let imported = try PEFTAdapterFormat.read(from: directory.appendingPathComponent(task), sites: Self.tinySites)
            XCTAssertEqual(imported.targets, ["query", "key", "intermediate"])
            XCTAssertEqual(imported.layers, [1])
        }
        XCTAssertThrowsError(try PEFTAdapterFormat.exportEach([Self.fixedAdapter(name: "same"), Self.fixedAdapter(name: "same")], to: directory, baseModel: nil)) {
            assertOneLine($0, contains: ["share a name"])
        }
    }

    func testSettingsSurviveExport() throws {
        // rslora's scaling 8 / sqrt(4) = 4 is exported as lora_alpha = 4 x 4 without rslora: the same scaling in PEFT.
        let adapter = try AdapterInstance(component: Self.lora, name: "rs", configJSON: #"{"rank": 4, "alpha": 8, "rslora": true, "dropout": 0.1, "targets": ["output"]}"#,
                                          inputWidth: 32, sites: Self.tinySites)
        let directory = try temporaryDirectory()
        try PEFTAdapterFormat.export(adapter, to: directory, baseModel: nil)
        let imported = try PEFTAdapterFormat.read(from: directory, sites: Self.tinySites)
        XCTAssertEqual(imported.alpha, 16)
        XCTAssertFalse(imported.usesRankStabilisedScaling)
        XCTAssertEqual(imported.dropout, 0.1, "the config's decimal, not the float's expansion")
        let again = try PEFTAdapterFormat.importAdapter(from: directory, component: Self.lora, name: "rs-again", sites: Self.tinySites, inputWidth: 32)
        XCTAssertEqual(value(again, "scaling"), value(adapter, "scaling"))
    }

    // MARK: Refusals

    /// Copies the tiny PEFT adapter into a temporary directory, edits it, and expects `read` to refuse.
    private func expectRefusal(config edit: (inout [String: JSONValue]) -> Void = { _ in }, dropKey: String? = nil, sites: [LinearSite] = LoRAPEFTTests.tinySites,
                               _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let source = Self.fixtures.appendingPathComponent("tiny-peft")
        let directory = try temporaryDirectory()
        guard case .object(var config) = try JSONValue(parsing: String(contentsOf: source.appendingPathComponent("adapter_config.json"), encoding: .utf8)) else {
            return XCTFail("fixture config is not an object", file: file, line: line)
        }
        edit(&config)
        try Data(JSONValue.object(config).text.utf8).write(to: directory.appendingPathComponent("adapter_config.json"))
        let weights = try SafeTensorsFile(contentsOf: source.appendingPathComponent("adapter_model.safetensors"))
        var writer = SafeTensorsWriter()
        for name in weights.tensorNames where name != dropKey {
            try writer.add(name, shape: try weights.info(name).shape, floats: try weights.floats(name))
        }
        try writer.write(to: directory.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertThrowsError(try PEFTAdapterFormat.read(from: directory, sites: sites), file: file, line: line) {
            assertOneLine($0, contains: fragments, file: file, line: line)
        }
    }


    func testImportRefusals() throws {
        try expectRefusal(config: { $0["peft_type"] = .string("IA3") }, ["adapter_config.json", "\"peft_type\" is \"IA3\"", "only LORA"])
        try expectRefusal(config: { $0["use_dora"] = .bool(true) }, ["\"use_dora\" is true", "DoRA"])
        try expectRefusal(config: { $0["bias"] = .string("lora_only") }, ["\"bias\" is \"lora_only\"", "bias=\"none\""])
        try expectRefusal(config: { $0["rank_pattern"] = .object(["query": .number(8)]) }, ["\"rank_pattern\" sets per-layer values"])
        try expectRefusal(config: { $0["r"] = .number(8) }, ["has shape [4, 32], but r = 8", "needs [8, 32]"])
        try expectRefusal(config: { $0["modules_to_save"] = .array([.string("classifier")]) }, ["\"modules_to_save\" lists \"classifier\""])
        try expectRefusal(dropKey: "base_model.model.encoder.layer.1.attention.self.key.lora_B.weight",
                          ["encoder.layer.1.attention.self.key has only lora_A"])
        try expectRefusal(dropKey: "base_model.model.encoder.layer.1.attention.self.key.lora_B.weight".replacingOccurrences(of: "lora_B", with: "lora_A"),
                          ["has only lora_B"])
        let wider = PEFTAdapterFormat.bertLinearSites(layerCount: 2, hiddenSize: 48, intermediateSize: 64)
        try expectRefusal(sites: wider, ["adapter_model.safetensors", "has shape [4, 32]", "needs [4, 48]"])
        let oneLayer = PEFTAdapterFormat.bertLinearSites(layerCount: 1, hiddenSize: 32, intermediateSize: 64)
        try expectRefusal(sites: oneLayer, ["module encoder.layer.1.", "not a linear layer of this encoder"])

        // A subset that is not every target on every layer: drop both tensors of one site.
        let source = Self.fixtures.appendingPathComponent("tiny-peft")
        let directory = try temporaryDirectory()
        try FileManager.default.copyItem(at: source.appendingPathComponent("adapter_config.json"), to: directory.appendingPathComponent("adapter_config.json"))
        let weights = try SafeTensorsFile(contentsOf: source.appendingPathComponent("adapter_model.safetensors"))
        var writer = SafeTensorsWriter()
        for name in weights.tensorNames where !name.contains("layer.0.attention.self.key") {
            try writer.add(name, shape: try weights.info(name).shape, floats: try weights.floats(name))
        }
        try writer.write(to: directory.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertThrowsError(try PEFTAdapterFormat.read(from: directory, sites: Self.tinySites)) {
            assertOneLine($0, contains: ["no LoRA on encoder.layer.0.attention.self.key", "every chosen target on every chosen layer"])
        }
        XCTAssertThrowsError(try PEFTAdapterFormat.read(from: directory.appendingPathComponent("absent"), sites: Self.tinySites)) {
            assertOneLine($0, contains: ["absent/adapter_config.json: not found", "save_pretrained"])
        }
        // An instance created with other layers than the file's.
        let imported = try PEFTAdapterFormat.read(from: source, sites: Self.tinySites)
        let other = try AdapterInstance(component: Self.lora, name: "other", configJSON: #"{"rank": 4, "targets": ["query"]}"#, inputWidth: 32, sites: Self.tinySites)
        XCTAssertThrowsError(try PEFTAdapterFormat.load(imported, into: other)) {
            assertOneLine($0, contains: ["was created with other layers than the PEFT adapter", "configJSON"])
        }
    }
}
