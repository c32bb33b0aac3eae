// LoRA (Hu et al. 2021) as an encoder adapter: at each hooked linear site the encoder
// computes y = x W^T + b and the adapter adds
//   y += scaling * (dropout(x) A^T) B^T,   scaling = alpha / rank (alpha / sqrt(rank) with rslora)
// with A [rank, in] and B [out, rank] per site, A initialised as PEFT does
// (kaiming_uniform with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in))), B zero.
// Loads through the Polyhead C ABI only.
//
// Parameter names are the site's Hugging Face prefix plus PEFT's module names, e.g.
// "encoder.layer.0.attention.self.query.lora_A.weight", so PEFT's adapter_model.safetensors
// key is "base_model.model." + the parameter name. Two buffers make a checkpoint
// self-describing for export: "scaling" [1] and "dropout" [1].
import CPolyhead
import PluginSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The linear sites of a BERT layer an adapter may target, by the names configs use.
enum Target: String, CaseIterable {
    case query, key, value
    case attentionOutput = "attention_output"
    case intermediate, output

    /// The module path inside "encoder.layer.N." (Hugging Face's BertLayer).
    var modulePath: String {
        switch self {
        case .query: return "attention.self.query"
        case .key: return "attention.self.key"
        case .value: return "attention.self.value"
        case .attentionOutput: return "attention.output.dense"
        case .intermediate: return "intermediate.dense"
        case .output: return "output.dense"
        }
    }

    /// Reads "…encoder.layer.N.<module path>" into (N, target); nil for any other site.
    static func parse(siteName: String) -> (layer: Int, target: Target)? {
        guard let marker = siteName.range(of: "encoder.layer.", options: .backwards) else { return nil }
        let rest = siteName[marker.upperBound...]
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[rest.startIndex..<dot]), layer >= 0 else { return nil }
        let path = String(rest[rest.index(after: dot)...])
        guard let target = Target.allCases.first(where: { $0.modulePath == path }) else { return nil }
        return (layer, target)
    }
}

// String.range(of:options:) is Foundation's; plugins do not link Foundation.
extension String {
    fileprivate enum SearchOptions { case backwards }
    fileprivate func range(of needle: String, options: SearchOptions) -> Range<String.Index>? {
        var index = endIndex
        while index > startIndex {
            index = self.index(before: index)
            if self[index...].hasPrefix(needle) { return index..<self.index(index, offsetBy: needle.count) }
        }
        return nil
    }
}

final class LowRankAdapter: EncoderAdapter {
    /// A hooked site's factors.
    struct Site {
        let name: String
        let inFeatures: Int
        let outFeatures: Int
        let down: BoundParameter // A [rank, in]
        let up: BoundParameter   // B [out, rank]
    }

    /// What forward keeps for backward.
    final class Saved {
        let site: Int
        let rows: Int
        var mask: [Float]? = nil // [T, in], inverted dropout
        var dropped: [Float] = [] // dropout(x) [T, in], kept for d(A) (with a mask only)
        var down: [Float] = []   // u = dropout(x) A^T [T, rank]
        init(site: Int, rows: Int) {
            self.site = site
            self.rows = rows
        }
    }

    let rank: Int
    let alpha: Double
    let useRankStabilised: Bool
    let dropout: Float
    let parameters = ParameterSet()
    /// Site index → hooked site; nil where the adapter does not hook.
    private var sites: [Site?]
    private let scalingBuffer: BoundParameter
    private let dropoutBuffer: BoundParameter
    private let random: OpaquePointer?

    var scaling: Float { Float(useRankStabilised ? alpha / Double(rank).squareRoot() : alpha / Double(rank)) }

    static let configKeys = ["rank", "alpha", "dropout", "targets", "layers", "init", "rslora"]

    init(context: CreateContext) throws {
        let config = context.config
        try config.requireOnly(Self.configKeys)
        rank = try config.integer("rank", default: 8, range: 1...65536)
        alpha = try config.number("alpha", default: Double(rank), range: 1e-6...1e6)
        useRankStabilised = try config.bool("rslora", default: false)
        dropout = Float(try config.number("dropout", default: 0, range: 0...0.95))
        let initialisation = try config.string("init", default: "kaiming", allowed: ["kaiming", "gaussian"])
        random = context.random

        let targetNames = try config.names("targets") ?? ["query", "value"]
        var targets: Set<Target> = []
        for name in targetNames {
            guard let target = Target(rawValue: name) else {
                throw PluginFailure("config key \"targets\" names \"\(name)\"; use some of \(Target.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            targets.insert(target)
        }
        guard !targets.isEmpty else { throw PluginFailure("config key \"targets\" is empty; name at least one site, e.g. [\"query\", \"value\"]") }

        let offered = try context.linearSites()
        let parsed = offered.map { Target.parse(siteName: $0.name) }
        let layerCount = (parsed.compactMap { $0?.layer }.max() ?? -1) + 1
        guard layerCount > 0 else {
            throw PluginFailure("the encoder offers no BERT linear sites (encoder.layer.N....) to hook; an adapter needs the encoder's sites")
        }
        var layers: Set<Int>
        let layersValue = config.json["layers"]
        if !layersValue.exists || layersValue.string == "all" {
            layers = Set(0..<layerCount)
        } else {
            guard let numbers = try config.numbers("layers"), !numbers.isEmpty else {
                throw PluginFailure("config key \"layers\" must be \"all\" or a non-empty array of layer indices")
            }
            layers = []
            for number in numbers {
                guard number == number.rounded(), number >= 0, number < Double(layerCount) else {
                    throw PluginFailure("config key \"layers\" holds \(number == number.rounded() && abs(number) < 1e9 ? String(Int(number)) : "\(number)"), but the encoder has layers 0 ... \(layerCount - 1)")
                }
                layers.insert(Int(number))
            }
        }

        sites = []
        for (index, site) in offered.enumerated() {
            guard let (layer, target) = parsed[index], layers.contains(layer), targets.contains(target) else {
                sites.append(nil)
                continue
            }
            guard site.inFeatures >= 1, site.outFeatures >= 1 else { throw PluginFailure("linear site \(site.name) has no features") }
            // PEFT: kaiming_uniform_(a = sqrt(5)) is U(-1/sqrt(in), 1/sqrt(in)); "gaussian" is N(0, 1/rank).
            let down = initialisation == "kaiming"
                ? try context.declare("\(site.name).lora_A.weight", shape: [rank, site.inFeatures], initializer: PH_INIT_FAN_IN_UNIFORM, into: parameters)
                : try context.declare("\(site.name).lora_A.weight", shape: [rank, site.inFeatures], initializer: PH_INIT_NORMAL,
                                      a: 0, b: 1 / Double(rank), into: parameters)
            let up = try context.declare("\(site.name).lora_B.weight", shape: [site.outFeatures, rank], initializer: PH_INIT_ZEROS, into: parameters)
            sites.append(Site(name: site.name, inFeatures: site.inFeatures, outFeatures: site.outFeatures, down: down, up: up))
        }
        for target in targets where !zip(parsed, sites).contains(where: { $0.0?.target == target && $0.1 != nil }) {
            throw PluginFailure("no linear site of the encoder matches target \"\(target.rawValue)\" on the chosen layers (it offers \(offered.count) sites)")
        }
        scalingBuffer = try context.declare("scaling", shape: [1], initializer: PH_INIT_ONES, trainable: false, noDecay: true, into: parameters)
        dropoutBuffer = try context.declare("dropout", shape: [1], initializer: PH_INIT_ZEROS, trainable: false, noDecay: true, into: parameters)
    }

    /// The buffers record the settings, so an exported checkpoint carries them.
    func didBind() throws {
        scalingBuffer.value[0] = scaling
        dropoutBuffer.value[0] = dropout
    }

    func hooks(site: Int) -> Bool { site >= 0 && site < sites.count && sites[site] != nil }

    private func site(_ index: Int) throws -> Site {
        guard index >= 0, index < sites.count, let site = sites[index] else {
            throw PluginFailure("site \(index) is not hooked by this adapter")
        }
        return site
    }

    private func checkWidths(_ site: Site, x: Tensor, other: Tensor, _ otherName: String) throws {
        guard x.dimension(1) == site.inFeatures, other.dimension(1) == site.outFeatures else {
            throw PluginFailure("site \(site.name) is [\(site.outFeatures), \(site.inFeatures)] but got x with \(x.dimension(1)) and \(otherName) with \(other.dimension(1)) columns")
        }
    }

    func forward(site index: Int, training: Bool, x: Tensor, y: Tensor) throws -> AnyObject? {
        let site = try site(index)
        try checkWidths(site, x: x, other: y, "y")
        let rows = x.dimension(0)
        let saved = Saved(site: index, rows: rows)
        var input: UnsafePointer<Float> = UnsafePointer(x.floats)
        var dropped: [Float] = []
        if training && dropout > 0 {
            let mask = dropoutMask(count: rows * site.inFeatures, probability: dropout, random: random)
            dropped = [Float](repeating: 0, count: mask.count)
            for index in mask.indices { dropped[index] = x.floats[index] * mask[index] }
            saved.mask = mask
            saved.dropped = dropped
        }
        saved.down = [Float](repeating: 0, count: rows * rank)
        dropped.withUnsafeBufferPointer { droppedBuffer in
            if saved.mask != nil { input = droppedBuffer.baseAddress! }
            // u = x' A^T [T, rank]; y += scaling u B^T.
            saved.down.withUnsafeMutableBufferPointer { u in
                sgemm(transposeA: false, transposeB: true, m: rows, n: rank, k: site.inFeatures,
                      input, lda: site.inFeatures, site.down.value, ldb: site.inFeatures, beta: 0, u.baseAddress!, ldc: rank)
            }
            saved.down.withUnsafeBufferPointer { u in
                sgemm(transposeA: false, transposeB: true, m: rows, n: site.outFeatures, k: rank, alpha: scaling,
                      u.baseAddress!, lda: rank, site.up.value, ldb: rank, beta: 1, y.floats, ldc: site.outFeatures)
            }
        }
        return training ? saved : nil
    }

    func backward(_ state: AnyObject?, site index: Int, x: Tensor, outputGradient: Tensor, inputGradient: Tensor) throws {
        let site = try site(index)
        try checkWidths(site, x: x, other: outputGradient, "d(y)")
        let rows = x.dimension(0)
        let saved: Saved
        if let state {
            guard let state = state as? Saved, state.site == index, state.rows == rows else {
                throw PluginFailure("backward got the saved state of another site or batch (site \(index), \(rows) rows)")
            }
            saved = state
        } else {
            // Without dropout nothing random happened: recompute u from x.
            guard dropout == 0 else { throw PluginFailure("backward needs the state of a training forward pass (dropout is on)") }
            saved = Saved(site: index, rows: rows)
            saved.down = [Float](repeating: 0, count: rows * rank)
            saved.down.withUnsafeMutableBufferPointer { u in
                sgemm(transposeA: false, transposeB: true, m: rows, n: rank, k: site.inFeatures,
                      x.floats, lda: site.inFeatures, site.down.value, ldb: site.inFeatures, beta: 0, u.baseAddress!, ldc: rank)
            }
        }
        let scale = scaling
        let dy = outputGradient.floats
        // du = scaling dy B [T, rank]
        var dDown = [Float](repeating: 0, count: rows * rank)
        dDown.withUnsafeMutableBufferPointer { du in
            sgemm(transposeA: false, transposeB: false, m: rows, n: rank, k: site.outFeatures, alpha: scale,
                  dy, lda: site.outFeatures, site.up.value, ldb: rank, beta: 0, du.baseAddress!, ldc: rank)
        }
        // dB += scaling dy^T u [out, rank]
        if let dUp = site.up.gradients {
            saved.down.withUnsafeBufferPointer { u in
                sgemm(transposeA: true, transposeB: false, m: site.outFeatures, n: rank, k: rows, alpha: scale,
                      dy, lda: site.outFeatures, u.baseAddress!, ldb: rank, beta: 1, dUp, ldc: rank)
            }
        }
        // dA += du^T x' [rank, in], x' = dropout(x) as the forward kept it
        dDown.withUnsafeBufferPointer { du in
            saved.dropped.withUnsafeBufferPointer { droppedBuffer in
                let input: UnsafePointer<Float> = saved.mask == nil ? UnsafePointer(x.floats) : droppedBuffer.baseAddress!
                if let dA = site.down.gradients {
                    sgemm(transposeA: true, transposeB: false, m: rank, n: site.inFeatures, k: rows,
                          du.baseAddress!, lda: rank, input, ldb: site.inFeatures, beta: 1, dA, ldc: site.inFeatures)
                }
            }
            // dx += (du A) * mask
            if let mask = saved.mask {
                var dDropped = [Float](repeating: 0, count: rows * site.inFeatures)
                dDropped.withUnsafeMutableBufferPointer { dxPrime in
                    sgemm(transposeA: false, transposeB: false, m: rows, n: site.inFeatures, k: rank,
                          du.baseAddress!, lda: rank, site.down.value, ldb: site.inFeatures, beta: 0, dxPrime.baseAddress!, ldc: site.inFeatures)
                }
                let dx = inputGradient.floats
                for index in mask.indices { dx[index] += dDropped[index] * mask[index] }
            } else {
                sgemm(transposeA: false, transposeB: false, m: rows, n: site.inFeatures, k: rank,
                      du.baseAddress!, lda: rank, site.down.value, ldb: site.inFeatures, beta: 1, inputGradient.floats, ldc: site.inFeatures)
            }
        }
    }

    /// W [out, in] += scaling B A: the merged layer computes what base plus adapter did
    /// (without dropout, as at evaluation). Unmerging subtracts the same delta: merge into
    /// zeros and subtract (docs/lora-mmoe.md).
    func merge(site index: Int, weight: Tensor) throws {
        let site = try site(index)
        guard weight.shape == [site.outFeatures, site.inFeatures] else {
            throw PluginFailure("site \(site.name) weight must be [\(site.outFeatures), \(site.inFeatures)], got \(weight.shape)")
        }
        sgemm(transposeA: false, transposeB: false, m: site.outFeatures, n: site.inFeatures, k: rank, alpha: scaling,
              site.up.value, lda: rank, site.down.value, ldb: site.inFeatures, beta: 1, weight.floats, ldc: site.inFeatures)
    }
}

let createLowRankAdapter: CreateFunction = { args, out, errors in
    createAdapter(args, out, errors) { try LowRankAdapter(context: $0) }
}

nonisolated(unsafe) let pluginTable = makePluginTable(
    id: "polyhead.adapters.lora", version: "1.0.0", name: "LoRA adapter",
    components: [
        ComponentDefinition(
            kind: .adapter, id: "polyhead.lora", version: "1.0.0", name: "LoRA",
            summary: "Low-rank updates y += (alpha/rank) B A dropout(x) on chosen encoder linear layers; merges into the base weights; PEFT-compatible names",
            exampleConfig: #"{"rank": 8, "alpha": 16, "dropout": 0.05, "targets": ["query", "value"], "layers": "all"}"#,
            create: createLowRankAdapter),
    ],
    extensions: [])

@_cdecl("polyhead_plugin_entry")
public func polyheadPluginEntry(_ host: UnsafePointer<ph_host>?, _ out: UnsafeMutablePointer<UnsafePointer<ph_plugin>?>?,
                                _ errors: UnsafeMutablePointer<ph_error_sink>?) -> ph_status {
    answerEntry(host, out, errors) { pluginTable }
}
