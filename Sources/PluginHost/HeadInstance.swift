import CPolyhead
import Foundation

/// The shapes a head works with (ph_head_layout).
public struct HeadLayout: Equatable, Sendable {
    public enum Granularity: Sendable { case sequence, token }
    public let granularity: Granularity
    /// Output columns (C).
    public let outputWidth: Int
    /// Target columns (W).
    public let targetWidth: Int
    /// True for I64 class-index targets, false for F32 targets.
    public let targetsAreIndices: Bool
}

/// Encoded targets: rows of `width` values, I64 class indices or F32 values.
public struct HeadTargets: Equatable, Sendable {
    public enum Storage: Equatable, Sendable {
        case indices([Int64])
        case values([Float])
    }
    public var storage: Storage
    public var width: Int
    public var rows: Int {
        switch storage {
        case .indices(let values): return width == 0 ? 0 : values.count / width
        case .values(let values): return width == 0 ? 0 : values.count / width
        }
    }

    public init(storage: Storage, width: Int) {
        self.storage = storage
        self.width = width
    }

    /// Stacks the rows of several targets (same width and dtype) in order.
    public static func concatenating(_ parts: [HeadTargets]) throws -> HeadTargets {
        guard let first = parts.first else { throw PluginError(.invalidRequest, "no targets to concatenate") }
        switch first.storage {
        case .indices:
            var all: [Int64] = []
            for part in parts {
                guard part.width == first.width, case .indices(let values) = part.storage else {
                    throw PluginError(.invalidRequest, "targets to concatenate differ in width or dtype")
                }
                all += values
            }
            return HeadTargets(storage: .indices(all), width: first.width)
        case .values:
            var all: [Float] = []
            for part in parts {
                guard part.width == first.width, case .values(let values) = part.storage else {
                    throw PluginError(.invalidRequest, "targets to concatenate differ in width or dtype")
                }
                all += values
            }
            return HeadTargets(storage: .values(all), width: first.width)
        }
    }

    func withView<R>(_ body: (UnsafeMutablePointer<ph_tensor>) throws -> R) rethrows -> R {
        switch storage {
        case .indices(let values):
            return try values.withUnsafeBufferPointer {
                try withTensorView($0.baseAddress, dtype: PH_DTYPE_I64, shape: [rows, width], body)
            }
        case .values(let values):
            return try values.withUnsafeBufferPointer {
                try withTensorView($0.baseAddress, dtype: PH_DTYPE_F32, shape: [rows, width], body)
            }
        }
    }
}

/// A task head instance created from a loaded plugin component.
///
/// Dimension legend: B sequences, T tokens, H input width, C output width. Features are
/// packed [T, H] with sequence offsets [B + 1]; word ids [T] are -1 for special tokens.
public final class HeadInstance: @unchecked Sendable {
    let core: InstanceCore
    private let methods: ph_head_methods
    public let layout: HeadLayout

    public var component: Component { core.component }
    public var name: String { core.name }
    public var inputWidth: Int { core.inputWidth }
    /// Host-owned parameters and gradients, bound to the plugin until this instance goes.
    public var parameters: ParameterBlock { core.parameters }
    /// The instance's random stream (dropout masks): replace its state to replay a mask.
    public var random: RandomStream { core.random }

    /// Creates the instance: the plugin reads `configJSON` and declares its parameters;
    /// the host allocates and initialises them from `seed`, then binds them.
    /// - Throws: PluginError naming the plugin file and component when create fails.
    public init(component: Component, name: String, configJSON: String, inputWidth: Int, seed: UInt64 = 0) throws {
        guard component.kind == .taskHead, let methods = component.head else {
            throw PluginError(.invalidRequest, "\(component.qualifiedName) is a \(component.kind.rawValue), not a task head")
        }
        core = try InstanceCore(component: component, name: name, configJSON: configJSON, inputWidth: inputWidth, seed: seed)
        self.methods = methods.pointee
        var raw = ph_head_layout()
        raw.size = UInt32(MemoryLayout<ph_head_layout>.size)
        let layoutFunction = self.methods.layout!
        let core = self.core
        try ErrorCollector.call("\(core.label) layout") { layoutFunction(core.handle, &raw, $0) }
        guard raw.granularity == PH_GRANULARITY_SEQUENCE || raw.granularity == PH_GRANULARITY_TOKEN,
              raw.output_width >= 1, raw.target_width >= 1,
              raw.target_dtype == PH_DTYPE_I64 || raw.target_dtype == PH_DTYPE_F32 else {
            throw PluginError(.callFailed, "\(core.label) layout is invalid (granularity \(raw.granularity), output width \(raw.output_width), target width \(raw.target_width), target dtype \(raw.target_dtype))")
        }
        layout = HeadLayout(granularity: raw.granularity == PH_GRANULARITY_TOKEN ? .token : .sequence,
                            outputWidth: Int(raw.output_width), targetWidth: Int(raw.target_width),
                            targetsAreIndices: raw.target_dtype == PH_DTYPE_I64)
    }

    /// Rows of output (and of targets) for a batch: B for sequence heads, T for token heads.
    public func outputRows(sequenceOffsets: [Int64]) -> Int {
        layout.granularity == .token ? Int(sequenceOffsets.last ?? 0) : sequenceOffsets.count - 1
    }

    /// Encodes one example's label (as written in the data) into its target rows.
    /// - Parameter wordIds: the example's word ids (token heads), one per token.
    public func encodeTarget(label: JSONValue, wordIds: [Int32]? = nil) throws -> HeadTargets {
        let rows: Int
        if layout.granularity == .token {
            guard let wordIds else {
                throw PluginError(.invalidRequest, "\(core.label) is a token head: encoding a target needs the example's word ids")
            }
            rows = wordIds.count
        } else {
            rows = 1
        }
        let count = rows * layout.targetWidth
        let tree = JSONNode(label)
        let encode = methods.encode_target!
        let core = self.core
        let context = "\(core.label) encode_target"
        func run(_ data: UnsafeMutableRawPointer, dtype: Int32) throws {
            try withTensorView(data, dtype: dtype, shape: [rows, layout.targetWidth]) { target in
                func call(_ words: UnsafeMutablePointer<ph_tensor>?) throws {
                    try core.serialized {
                        try ErrorCollector.call(context) { encode(core.handle, tree.opaque, words, target, $0) }
                    }
                }
                guard let wordIds else { return try call(nil) }
                try wordIds.withUnsafeBufferPointer { buffer in
                    try withTensorView(buffer.baseAddress, dtype: PH_DTYPE_I32, shape: [wordIds.count]) { try call($0) }
                }
            }
        }
        return try withExtendedLifetime(tree) {
            if layout.targetsAreIndices {
                var values = [Int64](repeating: 0, count: count)
                try values.withUnsafeMutableBytes { try run($0.baseAddress!, dtype: PH_DTYPE_I64) }
                return HeadTargets(storage: .indices(values), width: layout.targetWidth)
            } else {
                var values = [Float](repeating: 0, count: count)
                try values.withUnsafeMutableBytes { try run($0.baseAddress!, dtype: PH_DTYPE_F32) }
                return HeadTargets(storage: .values(values), width: layout.targetWidth)
            }
        }
    }

    /// Lets the head fit statistics (standardisation, balanced class weights) on every
    /// training target once, before training. A no-op for heads without `prepare`.
    public func prepare(targets: HeadTargets) throws {
        guard let prepare = methods.prepare else { return }
        try checkTargets(targets, rows: targets.rows)
        let core = self.core
        try targets.withView { view in
            try core.serialized {
                try ErrorCollector.call("\(core.label) prepare") { prepare(core.handle, view, $0) }
            }
        }
    }

    /// Runs the head. With `training`, returns the saved state backward needs.
    /// - Returns: outputs [rows, C] row-major.
    public func forward(features: UnsafeBufferPointer<Float>, sequenceOffsets: [Int64], wordIds: [Int32]? = nil,
                        training: Bool) throws -> (outputs: [Float], saved: SavedState?) {
        let core = self.core
        _ = try validatePacked(features: features, width: core.inputWidth, offsets: sequenceOffsets, wordIds: wordIds, label: "\(core.label) forward")
        let rows = outputRows(sequenceOffsets: sequenceOffsets)
        var outputs = [Float](repeating: .nan, count: rows * layout.outputWidth)
        var saved: OpaquePointer? = nil
        let forward = methods.forward!
        let outputWidth = layout.outputWidth
        try withHeadInput(features: features, width: core.inputWidth, offsets: sequenceOffsets, wordIds: wordIds, training: training) { input in
            try outputs.withUnsafeMutableBytes { outputBytes in
                try withTensorView(outputBytes.baseAddress, dtype: PH_DTYPE_F32, shape: [rows, outputWidth]) { outputView in
                    try core.serialized {
                        try ErrorCollector.call("\(core.label) forward") { sink in
                            if training {
                                return withUnsafeMutablePointer(to: &saved) { forward(core.handle, input, outputView, $0, sink) }
                            }
                            return forward(core.handle, input, outputView, nil, sink)
                        }
                    }
                }
            }
        }
        let state = training ? SavedState(core: core, pointer: saved, release: methods.release_saved!) : nil
        try outputs.withUnsafeBufferPointer { try requireFinite($0, "\(core.label) forward") }
        return (outputs, state)
    }

    /// The head's reduced loss and d(loss)/d(outputs).
    public func loss(outputs: [Float], targets: HeadTargets) throws -> (loss: Double, outputGradient: [Float]) {
        let rows = outputs.count / layout.outputWidth
        guard outputs.count == rows * layout.outputWidth else {
            throw PluginError(.invalidRequest, "\(core.label) loss: \(outputs.count) outputs is not a multiple of width \(layout.outputWidth)")
        }
        try checkTargets(targets, rows: rows)
        var gradient = [Float](repeating: .nan, count: outputs.count)
        var loss = Double.nan
        let lossFunction = methods.loss!
        let core = self.core, width = layout.outputWidth
        try outputs.withUnsafeBufferPointer { outputBuffer in
            try withTensorView(outputBuffer.baseAddress, dtype: PH_DTYPE_F32, shape: [rows, width]) { outputView in
                try gradient.withUnsafeMutableBytes { gradientBytes in
                    try withTensorView(gradientBytes.baseAddress, dtype: PH_DTYPE_F32, shape: [rows, width]) { gradientView in
                        try targets.withView { targetView in
                            try core.serialized {
                                try ErrorCollector.call("\(core.label) loss") { lossFunction(core.handle, outputView, targetView, gradientView, &loss, $0) }
                            }
                        }
                    }
                }
            }
        }
        guard loss.isFinite else {
            throw PluginError(.callFailed, "\(core.label) loss is \(loss); check the targets and lower the learning rate")
        }
        try gradient.withUnsafeBufferPointer { try requireFinite($0, "\(core.label) loss gradient") }
        return (loss, gradient)
    }

    /// Writes d(loss)/d(features) into `featureGradient` ([T, H]) and adds the parameter
    /// gradients into `parameters.gradients`.
    public func backward(_ saved: SavedState?, features: UnsafeBufferPointer<Float>, sequenceOffsets: [Int64],
                         wordIds: [Int32]? = nil, outputGradient: [Float],
                         featureGradient: UnsafeMutableBufferPointer<Float>) throws {
        let core = self.core
        let (tokens, _) = try validatePacked(features: features, width: core.inputWidth, offsets: sequenceOffsets, wordIds: wordIds, label: "\(core.label) backward")
        let rows = outputRows(sequenceOffsets: sequenceOffsets)
        guard outputGradient.count == rows * layout.outputWidth, featureGradient.count == tokens * core.inputWidth else {
            throw PluginError(.invalidRequest, "\(core.label) backward: output gradient holds \(outputGradient.count) values (expected \(rows * layout.outputWidth)), feature gradient \(featureGradient.count) (expected \(tokens * core.inputWidth))")
        }
        let backward = methods.backward!
        let width = layout.outputWidth
        try withHeadInput(features: features, width: core.inputWidth, offsets: sequenceOffsets, wordIds: wordIds, training: true) { input in
            try outputGradient.withUnsafeBufferPointer { gradientBuffer in
                try withTensorView(gradientBuffer.baseAddress, dtype: PH_DTYPE_F32, shape: [rows, width]) { gradientView in
                    try withTensorView(featureGradient.baseAddress, dtype: PH_DTYPE_F32, shape: [tokens, core.inputWidth]) { featureView in
                        try core.serialized {
                            try withExtendedLifetime(saved) {
                                try ErrorCollector.call("\(core.label) backward") { backward(core.handle, saved?.pointer, input, gradientView, featureView, $0) }
                            }
                        }
                    }
                }
            }
        }
        try requireFinite(UnsafeBufferPointer(featureGradient), "\(core.label) backward")
    }

    /// Convenience: backward returning a new [T, H] feature gradient.
    public func backward(_ saved: SavedState?, features: UnsafeBufferPointer<Float>, sequenceOffsets: [Int64],
                         wordIds: [Int32]? = nil, outputGradient: [Float]) throws -> [Float] {
        var result = [Float](repeating: .nan, count: features.count)
        try result.withUnsafeMutableBufferPointer {
            try backward(saved, features: features, sequenceOffsets: sequenceOffsets, wordIds: wordIds,
                         outputGradient: outputGradient, featureGradient: $0)
        }
        return result
    }

    /// One example's prediction as JSON text, with label names.
    /// - Parameter outputs: the example's output rows [R, C].
    public func decode(outputs: [Float], wordIds: [Int32]? = nil) throws -> String {
        let rows = outputs.count / layout.outputWidth
        guard rows >= 1, outputs.count == rows * layout.outputWidth else {
            throw PluginError(.invalidRequest, "\(core.label) decode: \(outputs.count) outputs is not whole rows of width \(layout.outputWidth)")
        }
        if let wordIds, wordIds.count != rows {
            throw PluginError(.invalidRequest, "\(core.label) decode: \(wordIds.count) word ids for \(rows) output rows")
        }
        let decode = methods.decode!
        let core = self.core, width = layout.outputWidth
        let text = TextCollector()
        try withExtendedLifetime(text) {
            try outputs.withUnsafeBufferPointer { outputBuffer in
                try withTensorView(outputBuffer.baseAddress, dtype: PH_DTYPE_F32, shape: [rows, width]) { outputView in
                    func call(_ words: UnsafeMutablePointer<ph_tensor>?) throws {
                        try core.serialized {
                            try ErrorCollector.call("\(core.label) decode") { decode(core.handle, outputView, words, text.sink, $0) }
                        }
                    }
                    guard let wordIds else { return try call(nil) }
                    try wordIds.withUnsafeBufferPointer { buffer in
                        try withTensorView(buffer.baseAddress, dtype: PH_DTYPE_I32, shape: [rows]) { try call($0) }
                    }
                }
            }
        }
        let json = String(decoding: text.bytes, as: UTF8.self)
        guard (try? JSONValue(parsing: json)) != nil else {
            throw PluginError(.callFailed, "\(core.label) decode wrote text that is not JSON: \(json.prefix(80))")
        }
        return json
    }

    private func checkTargets(_ targets: HeadTargets, rows: Int) throws {
        let isIndices: Bool
        switch targets.storage {
        case .indices: isIndices = true
        case .values: isIndices = false
        }
        guard targets.width == layout.targetWidth, isIndices == layout.targetsAreIndices, targets.rows == rows else {
            throw PluginError(.invalidRequest, "\(core.label): targets have \(targets.rows) rows of width \(targets.width) (\(isIndices ? "indices" : "values")) but the head expects \(rows) rows of width \(layout.targetWidth) (\(layout.targetsAreIndices ? "indices" : "values"))")
        }
    }
}

/// Owns a ph_text_sink and the bytes appended to it during one call.
final class TextCollector {
    var bytes: [UInt8] = []
    let sink: UnsafeMutablePointer<ph_text_sink>

    init() {
        sink = .allocate(capacity: 1)
        sink.initialize(to: ph_text_sink(size: UInt32(MemoryLayout<ph_text_sink>.size), context: nil, append: { sink, text, length in
            guard let context = sink?.pointee.context, let text, length > 0 else { return }
            let collector = Unmanaged<TextCollector>.fromOpaque(context).takeUnretainedValue()
            text.withMemoryRebound(to: UInt8.self, capacity: Int(length)) {
                collector.bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: Int(length)))
            }
        }))
        sink.pointee.context = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit { sink.deallocate() }
}
