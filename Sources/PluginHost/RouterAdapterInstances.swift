import CPolyhead
import Foundation

/// A shared router instance: one instance serves every task named at creation.
public final class RouterInstance: @unchecked Sendable {
    let core: InstanceCore
    private let methods: ph_router_methods
    public let taskNames: [String]
    /// H', the width of the features the router produces.
    public let outputWidth: Int

    public var component: Component { core.component }
    public var name: String { core.name }
    public var parameters: ParameterBlock { core.parameters }

    public init(component: Component, name: String, configJSON: String, inputWidth: Int, taskNames: [String], seed: UInt64 = 0) throws {
        guard component.kind == .router, let methods = component.router else {
            throw PluginError(.invalidRequest, "\(component.qualifiedName) is a \(component.kind.rawValue), not a router")
        }
        guard !taskNames.isEmpty else { throw PluginError(.invalidRequest, "\(component.qualifiedName): a router needs at least one task") }
        core = try InstanceCore(component: component, name: name, configJSON: configJSON, inputWidth: inputWidth, seed: seed, taskNames: taskNames)
        self.methods = methods.pointee
        self.taskNames = taskNames
        var width: Int64 = 0
        let function = self.methods.output_width!, core = self.core
        try ErrorCollector.call("\(core.label) output_width") { function(core.handle, &width, $0) }
        guard width >= 1 else { throw PluginError(.callFailed, "\(core.label) output_width is \(width)") }
        outputWidth = Int(width)
    }

    /// Routes packed features [T, H] for task `taskIndex` to [T, H'].
    public func forward(taskIndex: Int, features: UnsafeBufferPointer<Float>, sequenceOffsets: [Int64],
                        wordIds: [Int32]? = nil, training: Bool) throws -> (outputs: [Float], saved: SavedState?) {
        let core = self.core
        guard taskIndex >= 0, taskIndex < taskNames.count else {
            throw PluginError(.invalidRequest, "\(core.label): task index \(taskIndex) is not below \(taskNames.count)")
        }
        let (tokens, _) = try validatePacked(features: features, width: core.inputWidth, offsets: sequenceOffsets, wordIds: wordIds, label: "\(core.label) forward")
        var outputs = [Float](repeating: .nan, count: tokens * outputWidth)
        var saved: OpaquePointer? = nil
        let forward = methods.forward!, width = outputWidth
        try withHeadInput(features: features, width: core.inputWidth, offsets: sequenceOffsets, wordIds: wordIds, training: training) { input in
            try outputs.withUnsafeMutableBytes { bytes in
                try withTensorView(bytes.baseAddress, dtype: PH_DTYPE_F32, shape: [tokens, width]) { outputView in
                    try core.serialized {
                        try ErrorCollector.call("\(core.label) forward") { sink in
                            if training {
                                return withUnsafeMutablePointer(to: &saved) { forward(core.handle, Int32(taskIndex), input, outputView, $0, sink) }
                            }
                            return forward(core.handle, Int32(taskIndex), input, outputView, nil, sink)
                        }
                    }
                }
            }
        }
        try outputs.withUnsafeBufferPointer { try requireFinite($0, "\(core.label) forward") }
        return (outputs, training ? SavedState(core: core, pointer: saved, release: methods.release_saved!) : nil)
    }

    /// d(features) [T, H] from d(outputs) [T, H']; adds parameter gradients.
    public func backward(_ saved: SavedState?, features: UnsafeBufferPointer<Float>, sequenceOffsets: [Int64],
                         wordIds: [Int32]? = nil, outputGradient: [Float]) throws -> [Float] {
        let core = self.core
        let (tokens, _) = try validatePacked(features: features, width: core.inputWidth, offsets: sequenceOffsets, wordIds: wordIds, label: "\(core.label) backward")
        guard outputGradient.count == tokens * outputWidth else {
            throw PluginError(.invalidRequest, "\(core.label) backward: output gradient holds \(outputGradient.count) values, expected \(tokens * outputWidth)")
        }
        var result = [Float](repeating: .nan, count: features.count)
        let backward = methods.backward!, width = outputWidth
        try withHeadInput(features: features, width: core.inputWidth, offsets: sequenceOffsets, wordIds: wordIds, training: true) { input in
            try outputGradient.withUnsafeBufferPointer { gradient in
                try withTensorView(gradient.baseAddress, dtype: PH_DTYPE_F32, shape: [tokens, width]) { gradientView in
                    try result.withUnsafeMutableBytes { bytes in
                        try withTensorView(bytes.baseAddress, dtype: PH_DTYPE_F32, shape: [tokens, core.inputWidth]) { featureView in
                            try core.serialized {
                                try withExtendedLifetime(saved) {
                                    try ErrorCollector.call("\(core.label) backward") { backward(core.handle, saved?.pointer, input, gradientView, featureView, $0) }
                                }
                            }
                        }
                    }
                }
            }
        }
        try result.withUnsafeBufferPointer { try requireFinite($0, "\(core.label) backward") }
        return result
    }
}

/// An encoder adapter instance, hooking some of the encoder's linear layers.
public final class AdapterInstance: @unchecked Sendable {
    let core: InstanceCore
    private let methods: ph_adapter_methods
    public let sites: [LinearSite]
    /// Indices into `sites` of the layers this adapter hooks.
    public let hookedSites: [Int]

    public var component: Component { core.component }
    public var name: String { core.name }
    public var parameters: ParameterBlock { core.parameters }

    public init(component: Component, name: String, configJSON: String, inputWidth: Int, sites: [LinearSite], seed: UInt64 = 0) throws {
        guard component.kind == .encoderAdapter, let methods = component.adapter else {
            throw PluginError(.invalidRequest, "\(component.qualifiedName) is a \(component.kind.rawValue), not an encoder adapter")
        }
        core = try InstanceCore(component: component, name: name, configJSON: configJSON, inputWidth: inputWidth, seed: seed, sites: sites)
        self.methods = methods.pointee
        self.sites = sites
        let hooks = self.methods.hooks_site!, core = self.core
        hookedSites = sites.indices.filter { hooks(core.handle, Int64($0)) != 0 }
    }

    private func checkSite(_ site: Int, rows: Int, _ arrays: [(String, Int, Int)]) throws {
        guard hookedSites.contains(site) else {
            throw PluginError(.invalidRequest, "\(core.label): site \(site) is not hooked by this adapter")
        }
        for (what, count, width) in arrays where count != rows * width {
            throw PluginError(.invalidRequest, "\(core.label): \(what) holds \(count) values, expected \(rows) x \(width)")
        }
    }

    /// Adds the adapter's term for `site` into `y` [T, out], given the layer input `x` [T, in].
    /// Works on the caller's memory (the encoder's activations): nothing is copied.
    public func forward(site: Int, x: UnsafeBufferPointer<Float>, y: UnsafeMutableBufferPointer<Float>, training: Bool) throws -> SavedState? {
        guard site >= 0, site < sites.count else { throw PluginError(.invalidRequest, "\(core.label): no site \(site)") }
        let shape = sites[site], rows = x.count / max(shape.inFeatures, 1)
        try checkSite(site, rows: rows, [("x", x.count, shape.inFeatures), ("y", y.count, shape.outFeatures)])
        var saved: OpaquePointer? = nil
        let forward = methods.forward!, core = self.core
        try withTensorView(x.baseAddress, dtype: PH_DTYPE_F32, shape: [rows, shape.inFeatures]) { xView in
            try withTensorView(y.baseAddress, dtype: PH_DTYPE_F32, shape: [rows, shape.outFeatures]) { yView in
                try core.serialized {
                    try ErrorCollector.call("\(core.label) forward (site \(shape.name))") { sink in
                        if training {
                            return withUnsafeMutablePointer(to: &saved) { forward(core.handle, Int64(site), 1, xView, yView, $0, sink) }
                        }
                        return forward(core.handle, Int64(site), 0, xView, yView, nil, sink)
                    }
                }
            }
        }
        return training ? SavedState(core: core, pointer: saved, release: methods.release_saved!) : nil
    }

    /// `forward` on arrays.
    public func forward(site: Int, x: [Float], y: inout [Float], training: Bool) throws -> SavedState? {
        try x.withUnsafeBufferPointer { x in
            try y.withUnsafeMutableBufferPointer { y in try forward(site: site, x: x, y: y, training: training) }
        }
    }

    /// Adds the adapter's contribution to d(x) [T, in] and its parameter gradients, in the
    /// caller's memory.
    public func backward(_ saved: SavedState?, site: Int, x: UnsafeBufferPointer<Float>, outputGradient: UnsafeBufferPointer<Float>,
                         inputGradient: UnsafeMutableBufferPointer<Float>) throws {
        guard site >= 0, site < sites.count else { throw PluginError(.invalidRequest, "\(core.label): no site \(site)") }
        let shape = sites[site], rows = x.count / max(shape.inFeatures, 1)
        try checkSite(site, rows: rows, [("x", x.count, shape.inFeatures), ("d(y)", outputGradient.count, shape.outFeatures),
                                         ("d(x)", inputGradient.count, shape.inFeatures)])
        let backward = methods.backward!, core = self.core
        try withTensorView(x.baseAddress, dtype: PH_DTYPE_F32, shape: [rows, shape.inFeatures]) { xView in
            try withTensorView(outputGradient.baseAddress, dtype: PH_DTYPE_F32, shape: [rows, shape.outFeatures]) { dyView in
                try withTensorView(inputGradient.baseAddress, dtype: PH_DTYPE_F32, shape: [rows, shape.inFeatures]) { dxView in
                    try core.serialized {
                        try withExtendedLifetime(saved) {
                            try ErrorCollector.call("\(core.label) backward (site \(shape.name))") {
                                backward(core.handle, saved?.pointer, Int64(site), xView, dyView, dxView, $0)
                            }
                        }
                    }
                }
            }
        }
    }

    /// `backward` on arrays.
    public func backward(_ saved: SavedState?, site: Int, x: [Float], outputGradient: [Float], inputGradient: inout [Float]) throws {
        try x.withUnsafeBufferPointer { x in
            try outputGradient.withUnsafeBufferPointer { dy in
                try inputGradient.withUnsafeMutableBufferPointer { dx in
                    try backward(saved, site: site, x: x, outputGradient: dy, inputGradient: dx)
                }
            }
        }
    }

    /// Adds the adapter's weight delta for `site` into `weight` [out, in].
    /// - Throws: PluginError(.invalidRequest) when the adapter cannot be merged.
    public func merge(site: Int, weight: inout [Float]) throws {
        guard let merge = methods.merge else {
            throw PluginError(.invalidRequest, "\(core.label) cannot be merged into the encoder (it has no merge function)")
        }
        guard site >= 0, site < sites.count else { throw PluginError(.invalidRequest, "\(core.label): no site \(site)") }
        let shape = sites[site]
        try checkSite(site, rows: shape.outFeatures, [("weight", weight.count, shape.inFeatures)])
        let core = self.core
        try weight.withUnsafeMutableBytes { bytes in
            try withTensorView(bytes.baseAddress, dtype: PH_DTYPE_F32, shape: [shape.outFeatures, shape.inFeatures]) { view in
                try core.serialized {
                    try ErrorCollector.call("\(core.label) merge (site \(shape.name))") { merge(core.handle, Int64(site), view, $0) }
                }
            }
        }
    }
}
