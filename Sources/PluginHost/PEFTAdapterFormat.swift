import Foundation
import SafeTensors

/// A PEFT adapter directory that cannot be written or read, with the file and key at fault
/// and what to do, in one line.
public struct PEFTFormatError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// LoRA adapters in PEFT's on-disk layout, so an adapter trained by Polyhead loads with
/// `peft.PeftModel.from_pretrained(BertModel, directory)` and an adapter trained with PEFT
/// loads into a `polyhead.lora` instance.
///
/// A directory holds `adapter_config.json` (peft_type LORA, r, lora_alpha, target_modules, ...)
/// and `adapter_model.safetensors` with one pair of F32 tensors per hooked linear layer:
///
///     base_model.model.encoder.layer.0.attention.self.query.lora_A.weight   [r, in]
///     base_model.model.encoder.layer.0.attention.self.query.lora_B.weight   [out, r]
///
/// ("base_model.model." + the module path in a transformers BertModel, as peft 0.21 writes
/// it, without the adapter name). `polyhead.lora` names its parameters after the module path,
/// so a key is the prefix plus the parameter name.
///
/// ```swift
/// try PEFTAdapterFormat.export(adapter, to: runDirectory.appendingPathComponent("lora"),
///                              baseModel: "sentence-transformers/all-MiniLM-L6-v2")
/// let imported = try PEFTAdapterFormat.importAdapter(from: peftDirectory, component: lora, name: "lora",
///                                                    sites: sites, inputWidth: 384)
/// ```
public enum PEFTAdapterFormat {
    public static let configFileName = "adapter_config.json"
    public static let weightsFileName = "adapter_model.safetensors"
    /// What PEFT's PeftModel puts before a BertModel's module paths.
    public static let keyPrefix = "base_model.model."

    /// The site names polyhead.lora's `targets` option uses, by module path inside a BERT
    /// layer. The plugin keeps the same table (Plugins/LoRAAdapter); plugins and host share
    /// no Swift code, only the C ABI.
    public static let targetModulePaths: [(target: String, modulePath: String)] = [
        ("query", "attention.self.query"), ("key", "attention.self.key"), ("value", "attention.self.value"),
        ("attention_output", "attention.output.dense"), ("intermediate", "intermediate.dense"), ("output", "output.dense"),
    ]

    /// A BERT encoder's linear layers as the encoder offers them to adapters: layer by
    /// layer, in the order of `targetModulePaths`.
    public static func bertLinearSites(layerCount: Int, hiddenSize: Int, intermediateSize: Int) -> [LinearSite] {
        (0..<layerCount).flatMap { layer in
            targetModulePaths.map { target, path -> LinearSite in
                let inFeatures = path == "output.dense" ? intermediateSize : hiddenSize
                let outFeatures = path == "intermediate.dense" ? intermediateSize : hiddenSize
                return LinearSite(name: "encoder.layer.\(layer).\(path)", inFeatures: inFeatures, outFeatures: outFeatures)
            }
        }
    }

    /// (layer, target name) of a site named "…encoder.layer.N.<module path>", else nil.
    static func layerAndTarget(of siteName: String) -> (layer: Int, target: String)? {
        guard let marker = siteName.range(of: "encoder.layer.", options: .backwards) else { return nil }
        let rest = siteName[marker.upperBound...]
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]), layer >= 0 else { return nil }
        let path = String(rest[rest.index(after: dot)...])
        guard let target = targetModulePaths.first(where: { $0.modulePath == path })?.target else { return nil }
        return (layer, target)
    }

    // MARK: Export

    /// Writes `adapter` (a polyhead.lora instance) as a PEFT adapter directory, creating it.
    ///
    /// `target_modules` lists the full module path of every hooked layer, so PEFT adds LoRA
    /// to exactly those layers (a short name such as "dense" would also match the pooler).
    /// `lora_alpha` is written as scaling x r with `use_rslora` false, which gives PEFT the
    /// same scaling whichever way the adapter was configured.
    /// - Parameters:
    ///   - baseModel: recorded as `base_model_name_or_path` (a hub id or a directory).
    /// - Throws: PEFTFormatError when the instance is not a LoRA adapter; SafeTensorsError or a
    ///   file error naming the path when writing fails.
    public static func export(_ adapter: AdapterInstance, to directory: URL, baseModel: String?) throws {
        let label = "adapter \"\(adapter.name)\" (\(adapter.component.id))"
        let parameters = adapter.parameters
        guard let scalingInfo = parameters.info(named: "scaling"), let dropoutInfo = parameters.info(named: "dropout") else {
            throw PEFTFormatError("\(label) has no \"scaling\" and \"dropout\" buffers; only polyhead.lora adapters export in PEFT's layout")
        }
        let scaling = parameters.values(of: scalingInfo)[0], dropout = parameters.values(of: dropoutInfo)[0]
        var writer = SafeTensorsWriter()
        writer.metadata["format"] = "pt" // what PEFT's save_pretrained records
        var rank: Int? = nil
        var modules: [String] = []
        for siteIndex in adapter.hookedSites {
            let site = adapter.sites[siteIndex]
            guard let down = parameters.info(named: "\(site.name).lora_A.weight"), let up = parameters.info(named: "\(site.name).lora_B.weight") else {
                throw PEFTFormatError("\(label) hooks \(site.name) but has no \(site.name).lora_A.weight / lora_B.weight parameters; only polyhead.lora adapters export in PEFT's layout")
            }
            guard down.shape.count == 2, up.shape.count == 2, down.shape[1] == site.inFeatures, up.shape[0] == site.outFeatures,
                  down.shape[0] == up.shape[1], rank == nil || rank == down.shape[0] else {
                throw PEFTFormatError("\(label): \(site.name) has lora_A \(down.shape) and lora_B \(up.shape), which do not form one rank-r pair for [\(site.outFeatures), \(site.inFeatures)]")
            }
            rank = down.shape[0]
            try writer.add(keyPrefix + down.name, shape: down.shape, float32Buffer: UnsafeBufferPointer(parameters.values(of: down)))
            try writer.add(keyPrefix + up.name, shape: up.shape, float32Buffer: UnsafeBufferPointer(parameters.values(of: up)))
            modules.append(site.name)
        }
        guard let rank else { throw PEFTFormatError("\(label) hooks no linear layer; there is nothing to export") }

        let config: [(String, JSONValue)] = [
            ("alpha_pattern", .object([:])),
            ("base_model_name_or_path", baseModel.map { .string($0) } ?? .null),
            ("bias", .string("none")),
            ("fan_in_fan_out", .bool(false)),
            ("inference_mode", .bool(true)),
            ("init_lora_weights", .bool(true)),
            ("layers_pattern", .null),
            ("layers_to_transform", .null),
            ("lora_alpha", .number(shortestDecimal(scaling * Float(rank)))),
            ("lora_dropout", .number(shortestDecimal(dropout))),
            ("modules_to_save", .null),
            ("peft_type", .string("LORA")),
            ("r", .number(Double(rank))),
            ("rank_pattern", .object([:])),
            ("revision", .null),
            ("target_modules", .array(modules.map { .string($0) })),
            ("task_type", .null),
            ("use_dora", .bool(false)),
            ("use_rslora", .bool(false)),
        ]
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try writer.write(to: directory.appendingPathComponent(weightsFileName))
        let text = "{\n" + config.map { "  \(quoteJSON($0.0)): \(prettyText($0.1, indent: "  "))" }.joined(separator: ",\n") + "\n}\n"
        try Data(text.utf8).write(to: directory.appendingPathComponent(configFileName), options: .atomic)
    }

    /// One adapter per task: each instance into `directory/<instance name>/`, the layout
    /// PEFT uses for the adapters of one model other than "default".
    public static func exportEach(_ adapters: [AdapterInstance], to directory: URL, baseModel: String?) throws {
        let names = adapters.map(\.name)
        guard Set(names).count == names.count else {
            throw PEFTFormatError("adapters to export share a name (\(names.joined(separator: ", "))); each needs its own directory")
        }
        for adapter in adapters {
            try export(adapter, to: directory.appendingPathComponent(adapter.name), baseModel: baseModel)
        }
    }

    /// A float as the shortest decimal that reads back to it (0.1, not 0.10000000149), and a
    /// whole number when it is one to float precision.
    static func shortestDecimal(_ value: Float) -> Double {
        let rounded = value.rounded()
        if abs(value - rounded) <= abs(value) * 4 * Float.ulpOfOne { return Double(rounded) }
        return Double("\(value)") ?? Double(value)
    }

    /// JSON text with two-space indentation, as Python's json.dumps(indent=2) writes it.
    static func prettyText(_ value: JSONValue, indent: String) -> String {
        switch value {
        case .array(let values) where !values.isEmpty:
            return "[\n" + values.map { indent + "  " + prettyText($0, indent: indent + "  ") }.joined(separator: ",\n") + "\n\(indent)]"
        case .object(let members) where !members.isEmpty:
            return "{\n" + members.keys.sorted().map { indent + "  " + quoteJSON($0) + ": " + prettyText(members[$0]!, indent: indent + "  ") }
                .joined(separator: ",\n") + "\n\(indent)}"
        case .number(let number) where number == number.rounded() && abs(number) < 1e15:
            return String(Int64(number))
        default:
            return value.text
        }
    }

    // MARK: Import

    /// A PEFT LoRA adapter read from disk and matched to an encoder's linear sites.
    public struct Adapter: Sendable {
        /// The directory it came from, for messages.
        public let directory: URL
        public let rank: Int
        public let alpha: Double
        public let dropout: Double
        public let usesRankStabilisedScaling: Bool
        /// Target names (query, key, ...) and layers, in the order polyhead.lora takes them.
        public let targets: [String]
        public let layers: [Int]
        /// Values by polyhead.lora parameter name ("encoder.layer.0.attention.self.query.lora_A.weight").
        public let tensors: [String: [Float]]

        /// The polyhead.lora options that rebuild this adapter.
        public var configJSON: String {
            JSONValue.object([
                "rank": .number(Double(rank)), "alpha": .number(alpha), "dropout": .number(dropout),
                "rslora": .bool(usesRankStabilisedScaling),
                "targets": .array(targets.map { .string($0) }), "layers": .array(layers.map { .number(Double($0)) }),
            ]).text
        }
    }

    /// Reads a PEFT adapter directory and matches its tensors to `sites`.
    /// - Throws: PEFTFormatError naming the file and key: a missing file, a PEFT type other than
    ///   LORA, options polyhead.lora does not implement (DoRA, trained biases, rank patterns,
    ///   modules_to_save, fan_in_fan_out), a key that is no site's, a shape that does not fit,
    ///   or a set of layers that is not every chosen target on every chosen layer.
    public static func read(from directory: URL, sites: [LinearSite]) throws -> Adapter {
        let configURL = directory.appendingPathComponent(configFileName), weightsURL = directory.appendingPathComponent(weightsFileName)
        guard let configData = FileManager.default.contents(atPath: configURL.path) else {
            throw PEFTFormatError("\(configURL.path): not found; a PEFT adapter directory holds \(configFileName) and \(weightsFileName) (save it with PeftModel.save_pretrained)")
        }
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            let hint = FileManager.default.fileExists(atPath: directory.appendingPathComponent("adapter_model.bin").path)
                ? "only adapter_model.bin is there: save again with save_pretrained(dir, safe_serialization=True)" : "save it with PeftModel.save_pretrained"
            throw PEFTFormatError("\(weightsURL.path): not found (\(hint))")
        }
        guard case .object(let config) = try JSONValue(parsing: String(decoding: configData, as: UTF8.self), source: configURL.path) else {
            throw PEFTFormatError("\(configURL.path): must hold a JSON object")
        }
        func fail(_ key: String, _ what: String) -> PEFTFormatError { PEFTFormatError("\(configURL.path): \"\(key)\" \(what)") }
        guard case .string(let type)? = config["peft_type"], type == "LORA" else {
            throw fail("peft_type", "is \(config["peft_type"]?.text ?? "missing"); only LORA adapters can be imported")
        }
        guard case .number(let rankNumber)? = config["r"], rankNumber == rankNumber.rounded(), rankNumber >= 1 else {
            throw fail("r", "must be a whole number of at least 1, got \(config["r"]?.text ?? "nothing")")
        }
        let rank = Int(rankNumber)
        var alpha = Double(rank) // PEFT's default lora_alpha is 8 with r 8: r x 1.
        if let value = config["lora_alpha"] {
            guard case .number(let number) = value, number > 0 else { throw fail("lora_alpha", "must be a positive number, got \(value.text)") }
            alpha = number
        }
        var dropout = 0.0
        if let value = config["lora_dropout"], value != .null {
            guard case .number(let number) = value, number >= 0, number < 1 else { throw fail("lora_dropout", "must be a number in [0, 1), got \(value.text)") }
            dropout = number
        }
        func flag(_ key: String) -> Bool { if case .bool(true)? = config[key] { return true } else { return false } }
        let rankStabilised = flag("use_rslora")
        if flag("use_dora") { throw fail("use_dora", "is true; DoRA adapters are not supported by polyhead.lora (train with use_dora=False)") }
        if flag("fan_in_fan_out") { throw fail("fan_in_fan_out", "is true; that is for GPT-2 style Conv1D layers, a BERT encoder has none") }
        if flag("lora_bias") { throw fail("lora_bias", "is true; polyhead.lora has no bias on lora_B (train with lora_bias=False)") }
        if let bias = config["bias"], bias != .null, bias != .string("none") {
            throw fail("bias", "is \(bias.text); polyhead.lora trains no biases (train with bias=\"none\")")
        }
        for key in ["rank_pattern", "alpha_pattern"] {
            if case .object(let members)? = config[key], !members.isEmpty {
                throw fail(key, "sets per-layer values; polyhead.lora uses one rank and alpha for every layer")
            }
        }
        if case .array(let modules)? = config["modules_to_save"], !modules.isEmpty {
            throw fail("modules_to_save", "lists \(modules.map(\.text).joined(separator: ", ")); fully trained extra modules are not part of a LoRA import")
        }

        // Tensors: one lora_A / lora_B pair per site.
        let file = try SafeTensorsFile(contentsOf: weightsURL)
        var factors: [Int: (down: [Float]?, up: [Float]?)] = [:]
        for key in file.tensorNames {
            var path = key.hasPrefix(keyPrefix) ? String(key.dropFirst(keyPrefix.count)) : key
            let isDown: Bool
            if path.hasSuffix(".lora_A.weight") { isDown = true } else if path.hasSuffix(".lora_B.weight") { isDown = false } else {
                throw PEFTFormatError("\(weightsURL.path): tensor \"\(key)\" is not a lora_A / lora_B weight; only plain LoRA adapters can be imported")
            }
            path.removeLast(".lora_A.weight".count)
            // A BertModel key is the site name; a BertFor* model adds "bert." before it.
            guard let siteIndex = sites.firstIndex(where: { $0.name == path || path.hasSuffix("." + $0.name) }) else {
                throw PEFTFormatError("\(weightsURL.path): tensor \"\(key)\" belongs to module \(path), which is not a linear layer of this encoder (it has \(sites.count) sites, e.g. \(sites.first?.name ?? "none"))")
            }
            let site = sites[siteIndex]
            let info = try file.info(key)
            let expected = isDown ? [rank, site.inFeatures] : [site.outFeatures, rank]
            guard info.shape == expected else {
                throw PEFTFormatError("\(weightsURL.path): tensor \"\(key)\" has shape \(info.shape), but r = \(rank) on \(site.name) [\(site.outFeatures), \(site.inFeatures)] needs \(expected)")
            }
            let values = try file.floats(key)
            if isDown { factors[siteIndex, default: (nil, nil)].down = values } else { factors[siteIndex, default: (nil, nil)].up = values }
        }
        guard !factors.isEmpty else { throw PEFTFormatError("\(weightsURL.path): holds no LoRA tensors") }

        var tensors: [String: [Float]] = [:]
        var targets: Set<String> = [], layers: Set<Int> = []
        for (siteIndex, pair) in factors {
            let name = sites[siteIndex].name
            guard let down = pair.down, let up = pair.up else {
                throw PEFTFormatError("\(weightsURL.path): \(name) has only \(pair.down == nil ? "lora_B" : "lora_A"); a LoRA layer needs both")
            }
            guard let (layer, target) = layerAndTarget(of: name) else {
                throw PEFTFormatError("\(weightsURL.path): \(name) is not one of a BERT layer's linear layers (\(targetModulePaths.map(\.modulePath).joined(separator: ", ")))")
            }
            targets.insert(target)
            layers.insert(layer)
            tensors["\(name).lora_A.weight"] = down
            tensors["\(name).lora_B.weight"] = up
        }
        // polyhead.lora hooks every chosen target on every chosen layer.
        var missing: [String] = []
        for (index, site) in sites.enumerated() where factors[index] == nil {
            if let (layer, target) = layerAndTarget(of: site.name), layers.contains(layer), targets.contains(target) { missing.append(site.name) }
        }
        guard missing.isEmpty else {
            throw PEFTFormatError("\(weightsURL.path): adapts some layers of a target but not others (no LoRA on \(missing.prefix(4).joined(separator: ", "))\(missing.count > 4 ? ", ..." : "")); polyhead.lora needs every chosen target on every chosen layer")
        }
        let orderedTargets = targetModulePaths.map(\.target).filter { targets.contains($0) }
        return Adapter(directory: directory, rank: rank, alpha: alpha, dropout: dropout, usesRankStabilisedScaling: rankStabilised,
                       targets: orderedTargets, layers: layers.sorted(), tensors: tensors)
    }

    /// Copies an imported adapter's tensors into a polyhead.lora instance with the same sites.
    /// - Throws: PEFTFormatError when the instance's LoRA parameters differ from the adapter's.
    public static func load(_ imported: Adapter, into adapter: AdapterInstance) throws {
        let loraParameters = adapter.parameters.parameters.filter { $0.name.hasSuffix(".lora_A.weight") || $0.name.hasSuffix(".lora_B.weight") }
        let expected = Set(imported.tensors.keys), actual = Set(loraParameters.map(\.name))
        guard expected == actual else {
            let extra = expected.subtracting(actual).sorted(), lacking = actual.subtracting(expected).sorted()
            throw PEFTFormatError("\(imported.directory.path): adapter \"\(adapter.name)\" was created with other layers than the PEFT adapter (only in the file: \(extra.prefix(3).joined(separator: ", ")); only in the instance: \(lacking.prefix(3).joined(separator: ", "))); create it from the adapter's configJSON")
        }
        for parameter in loraParameters {
            let values = imported.tensors[parameter.name]!
            guard values.count == parameter.count else {
                throw PEFTFormatError("\(imported.directory.path): \(parameter.name) holds \(values.count) values, the instance's parameter \(parameter.count)")
            }
            _ = adapter.parameters.values(of: parameter).update(fromContentsOf: values)
        }
    }

    /// Creates a polyhead.lora instance from a PEFT adapter directory, with its weights.
    /// - Parameters:
    ///   - component: the loaded polyhead.lora component.
    ///   - sites: the encoder's linear layers (see `bertLinearSites`).
    public static func importAdapter(from directory: URL, component: Component, name: String, sites: [LinearSite],
                                     inputWidth: Int, seed: UInt64 = 0) throws -> AdapterInstance {
        let imported = try read(from: directory, sites: sites)
        let adapter = try AdapterInstance(component: component, name: name, configJSON: imported.configJSON, inputWidth: inputWidth,
                                          sites: sites, seed: seed)
        try load(imported, into: adapter)
        return adapter
    }
}

extension AdapterInstance {
    /// Subtracts the adapter's weight delta from `weight` [out, in]: the inverse of
    /// `merge(site:weight:)`, up to float rounding (the delta is the merge of a zero matrix).
    public func unmerge(site: Int, weight: inout [Float]) throws {
        var delta = [Float](repeating: 0, count: weight.count)
        try merge(site: site, weight: &delta)
        for index in weight.indices { weight[index] -= delta[index] }
    }
}
