import Encoder
import Foundation
import PluginHost
import SafeTensors
import XCTest
@testable import Training

/// A run config whose tasks all name one polyhead.lora adapter: the base encoder stays frozen,
/// the adapter trains, checkpoints hold it (component folder and PEFT export) and load back.
final class TrainerLoRATests: XCTestCase {
    static let adapterYAML = """

        adapters:
          lora: {plugin: polyhead.lora, options: {rank: 4, alpha: 8, targets: [query, value, intermediate]}}
        """

    static func tasks(adapter: String? = "lora") -> [String] {
        ["animal", "length", "tags"].map { TinyRuns.task($0, extra: adapter.map { "    adapter: \($0)" } ?? "") }
    }

    static let training = tinyTraining(steps: 8, extra: """
        gradient_accumulation: 2
        optimizer: {lr: 2.0e-3, groups: {heads: {lr: 1.0e-2}, adapters: {lr: 2.0e-2}}}
        """).replacingOccurrences(of: "optimizer: {lr: 2.0e-3, groups: {heads: {lr: 1.0e-2}}}\n", with: "")

    private func trainLosses(_ records: [MetricsRecord]) -> [Int: Double] {
        Dictionary(uniqueKeysWithValues: records.filter { $0.kind == .train }.map { ($0.step, $0.values["loss"]!) })
    }

    private func floats(_ file: URL) throws -> [String: [Float]] {
        let tensors = try SafeTensorsFile(contentsOf: file)
        return Dictionary(uniqueKeysWithValues: try tensors.tensorNames.map { ($0, try tensors.floats($0)) })
    }

    func testLoRATrainsTheAdapterOnlyAndCheckpointsLoadBack() throws {
        let runs = try TinyRuns()
        let config = try runs.load(runs.config(tasks: Self.tasks(), training: Self.training) + Self.adapterYAML)
        let (trainer, _) = try runs.train(config, keptStepCheckpoints: 3)
        XCTAssertEqual(trainer.model.adapters.map(\.name), ["lora"])

        // Loss goes down.
        let losses = trainLosses(try runs.records())
        XCTAssertEqual(losses.count, 8)
        XCTAssertLessThan((losses[6]! + losses[7]! + losses[8]!) / 3, (losses[1]! + losses[2]! + losses[3]!) / 3, "\(losses.sorted { $0.key < $1.key })")

        // The base encoder is bit-identical; the encoder has no optimizer state.
        let final = runs.checkpoint("final")
        let base = try floats(trinerBase())
        let saved = try floats(final.appendingPathComponent("encoder/model.safetensors"))
        for (name, values) in saved {
            XCTAssertEqual(values.map(\.bitPattern), base[name]?.map(\.bitPattern), "\(name) changed")
        }
        let state = try SafeTensorsFile(contentsOf: final.appendingPathComponent("trainer_state.safetensors"))
        XCTAssertFalse(state.tensorNames.contains { $0.hasPrefix("exp_avg.encoder") || $0.contains(".embeddings.") || $0.contains("attention.self.query.weight") },
                       "moments for the frozen encoder: \(state.tensorNames.filter { !$0.contains("heads.") && !$0.contains("adapters.") })")
        XCTAssertTrue(state.tensorNames.contains { $0.contains("adapters.lora.encoder.layer.0.attention.self.query.lora_A.weight") })

        // The adapter changed: B started at zero.
        let folder = final.appendingPathComponent("adapters/lora")
        let adapterWeights = try floats(folder.appendingPathComponent("weights.safetensors"))
        let upKeys = adapterWeights.keys.filter { $0.hasSuffix("lora_B.weight") }
        XCTAssertEqual(upKeys.count, 2 * 3, "2 layers x 3 targets")
        for key in upKeys { XCTAssertTrue(adapterWeights[key]!.contains { $0 != 0 }, "\(key) still zero") }
        let manifest = try HeadManifest.decode(try bytes(folder.appendingPathComponent("manifest.json")), source: "manifest")
        XCTAssertEqual(manifest.componentKind, "adapter")
        XCTAssertEqual(manifest.pluginID, "polyhead.lora")

        // The PEFT export re-imports to the same weights.
        let model = trainer.model
        let sites = PluginEncoderAdapter.sites(for: model.encoder.config)
        let component = try model.registry.component(id: "polyhead.lora")
        let imported = try PEFTAdapterFormat.importAdapter(from: folder, component: component, name: "lora", sites: sites,
                                                           inputWidth: model.encoder.config.hiddenSize)
        for parameter in imported.parameters.parameters where parameter.name.contains("lora_") {
            XCTAssertEqual(Array(imported.parameters.values(of: parameter)), adapterWeights[parameter.name], parameter.name)
        }

        // The checkpoint loads back with its adapter and predicts what the trained model predicts;
        // without the adapter the predictions differ.
        let loaded = try MultiTaskModel.load(checkpoint: final, pluginPaths: config.pluginPaths)
        XCTAssertEqual(loaded.adapters.map(\.name), ["lora"])
        let texts: [(text: String, pair: String?)] = [("the cat sat on the mat", nil), ("a dog ran", nil)]
        let expected = try Predictor(model: model, maxLength: 32).predict(texts)
        let got = try Predictor(model: loaded, maxLength: 32).predict(texts)
        XCTAssertEqual(got.map { $0.map(\.json) }, expected.map { $0.map(\.json) })
        let plain = try MultiTaskModel.loadEncoder(directory: final.appendingPathComponent("encoder"), pluginPaths: config.pluginPaths).0
        for head in try CheckpointStore.load(directory: final).heads { try plain.addHead(head) }
        XCTAssertNotEqual(try Predictor(model: plain, maxLength: 32).predict(texts).map { $0.map(\.json) }, expected.map { $0.map(\.json) })

        // Resume from step 3 repeats the uninterrupted run bit for bit.
        try runs.train(config, output: "resumed", resume: runs.checkpoint("step-3"))
        let resumedFinal = runs.checkpoint("final", output: "resumed")
        for relative in ["adapters/lora/weights.safetensors", "adapters/lora/adapter_model.safetensors", "heads/animal/weights.safetensors",
                         "heads/tags/weights.safetensors", "trainer_state.safetensors", "encoder/model.safetensors"] {
            XCTAssertEqual(try bytes(resumedFinal.appendingPathComponent(relative)), try bytes(final.appendingPathComponent(relative)), relative)
        }
        let resumedLosses = trainLosses(try runs.records("resumed"))
        for step in 4...8 { XCTAssertEqual(resumedLosses[step], losses[step], "step \(step)") }
    }

    private func trinerBase() -> URL { trainerFixtures.appendingPathComponent("tiny-bert/model.safetensors") }

    static let perTaskAdapterYAML = """

        adapters:
          lora_a: {plugin: polyhead.lora, options: {rank: 4, alpha: 8, targets: [query, value]}}
          lora_b: {plugin: polyhead.lora, options: {rank: 2, alpha: 4, dropout: 0.1, targets: [intermediate, output]}}
          unused: {plugin: polyhead.lora, options: {rank: 2}}
        """

    /// Two tasks with their own adapters and one without: three encoder passes per mixed batch.
    /// Each adapter trains on its task's rows only, the encoder stays frozen, a task without an
    /// adapter reads the plain encoder, and the checkpoint loads back with each adapter on its
    /// tasks; resume is bit-exact (each pass draws its own dropout masks from the seed).
    func testPerTaskAdaptersApplyToTheirTasksOnly() throws {
        let runs = try TinyRuns()
        let tasks = [TinyRuns.task("animal", extra: "    adapter: lora_a"), TinyRuns.task("length", extra: "    adapter: lora_b"),
                     TinyRuns.task("tags")]
        let config = try runs.load(runs.config(tasks: tasks, training: Self.training) + Self.perTaskAdapterYAML)
        var logged: [String] = []
        let (trainer, _) = try runs.train(config, keptStepCheckpoints: 3, log: { logged.append($0) })
        let model = trainer.model
        XCTAssertEqual(model.adapters.map(\.name), ["lora_a", "lora_b"], "an adapter no task names is not created")
        XCTAssertTrue(logged.contains("not created (no task names them): unused"), "\(logged)")
        XCTAssertEqual(model.adapters.map(\.taskNames), [["animal"], ["length"]])
        XCTAssertEqual(model.encoderPasses(tasks: ["animal", "length", "tags"]).passOfTask, [0, 1, 2])

        let losses = trainLosses(try runs.records())
        XCTAssertLessThan((losses[6]! + losses[7]! + losses[8]!) / 3, (losses[1]! + losses[2]! + losses[3]!) / 3, "\(losses.sorted { $0.key < $1.key })")

        // Frozen encoder; both adapters trained (B moved from zero); manifests name their tasks.
        let final = runs.checkpoint("final")
        let base = try floats(trinerBase())
        for (name, values) in try floats(final.appendingPathComponent("encoder/model.safetensors")) {
            XCTAssertEqual(values.map(\.bitPattern), base[name]?.map(\.bitPattern), "\(name) changed")
        }
        for (adapter, task) in [("lora_a", "animal"), ("lora_b", "length")] {
            let folder = final.appendingPathComponent("adapters/\(adapter)")
            let weights = try floats(folder.appendingPathComponent("weights.safetensors"))
            let upKeys = weights.keys.filter { $0.hasSuffix("lora_B.weight") }
            XCTAssertEqual(upKeys.count, 2 * 2, "\(adapter): 2 layers x 2 targets")
            for key in upKeys { XCTAssertTrue(weights[key]!.contains { $0 != 0 }, "\(adapter) \(key) still zero") }
            let manifest = try HeadManifest.decode(try bytes(folder.appendingPathComponent("manifest.json")), source: "manifest")
            XCTAssertEqual(manifest.labelNames, [task])
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("adapter_model.safetensors").path))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: final.appendingPathComponent("adapters/unused").path))

        // A head trained through an adapter cannot ship alone; one without can.
        XCTAssertThrowsError(try HeadBundle.export(modelDirectory: final, task: "animal", to: runs.path("animal.head"))) { error in
            XCTAssertTrue("\(error)".contains("adapter lora_a (adapters/lora_a/)"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: runs.path("animal.head").path))
        XCTAssertNoThrow(try HeadBundle.export(modelDirectory: final, task: "tags", to: runs.path("tags.head")))

        // Loaded back: the same predictions. A plain encoder with the same heads predicts `tags`
        // (no adapter) identically and the adapted tasks differently.
        let loaded = try MultiTaskModel.load(checkpoint: final, pluginPaths: config.pluginPaths)
        XCTAssertEqual(loaded.adapters.map(\.taskNames), [["animal"], ["length"]])
        let texts: [(text: String, pair: String?)] = [("the cat sat on the mat", nil), ("a dog ran far away", nil), ("birds", nil)]
        let expected = try Predictor(model: model, maxLength: 32).predict(texts)
        XCTAssertEqual(try Predictor(model: loaded, maxLength: 32).predict(texts).map { $0.map(\.json) }, expected.map { $0.map(\.json) })
        let plain = try MultiTaskModel.loadEncoder(directory: final.appendingPathComponent("encoder"), pluginPaths: config.pluginPaths).0
        for head in try CheckpointStore.load(directory: final).heads { try plain.addHead(head) }
        let unadapted = try Predictor(model: plain, maxLength: 32).predict(texts)
        for (text, (got, want)) in zip(texts, zip(unadapted, expected)) {
            let byTask = Dictionary(uniqueKeysWithValues: got.map { ($0.task, $0.json) })
            for (task, json) in want {
                if task == "tags" {
                    XCTAssertEqual(byTask[task], json, "tags has no adapter: \(text.text)")
                } else if task == "length" {
                    XCTAssertNotEqual(byTask[task], json, "\(task) without its adapter: \(text.text)")
                }
            }
        }

        // Resume from step 3 repeats the uninterrupted run bit for bit.
        try runs.train(config, output: "resumed", resume: runs.checkpoint("step-3"))
        let resumedFinal = runs.checkpoint("final", output: "resumed")
        for relative in ["adapters/lora_a/weights.safetensors", "adapters/lora_b/weights.safetensors", "heads/tags/weights.safetensors",
                         "trainer_state.safetensors"] {
            XCTAssertEqual(try bytes(resumedFinal.appendingPathComponent(relative)), try bytes(final.appendingPathComponent(relative)), relative)
        }
    }

    /// `training.freeze_encoder` overrides the default: false trains the encoder beside an
    /// adapter; true without adapters trains the heads only.
    func testFreezeEncoderOverridesTheDefault() throws {
        let runs = try TinyRuns()
        let base = try floats(trinerBase())
        func encoderChanged(_ output: String) throws -> Bool {
            let saved = try floats(runs.checkpoint("final", output: output).appendingPathComponent("encoder/model.safetensors"))
            return saved.contains { name, values in values.map(\.bitPattern) != base[name]?.map(\.bitPattern) }
        }
        let unfrozen = try runs.load(runs.config(tasks: Self.tasks(), training: Self.training + "\nfreeze_encoder: false") + Self.adapterYAML)
        try runs.train(unfrozen, output: "unfrozen")
        XCTAssertTrue(try encoderChanged("unfrozen"), "freeze_encoder: false must train the encoder beside the adapter")
        let frozen = try runs.load(runs.config(tasks: Self.tasks(adapter: nil), training: Self.training + "\nfreeze_encoder: true"))
        try runs.train(frozen, output: "frozen")
        XCTAssertFalse(try encoderChanged("frozen"), "freeze_encoder: true must leave the encoder as loaded")
        let state = try SafeTensorsFile(contentsOf: runs.checkpoint("final", output: "frozen").appendingPathComponent("trainer_state.safetensors"))
        XCTAssertFalse(state.tensorNames.contains { $0.contains("attention.self.query.weight") }, "no moments for a frozen encoder")
    }
}
