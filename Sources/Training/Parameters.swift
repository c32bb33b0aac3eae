/// Flat parameter values with a gradient buffer that mirrors them element for element.
///
/// The optimizer never owns parameters: the encoder's block, a head's host-allocated block or
/// an adapter's block conform to this protocol and are registered by range. The storage must
/// outlive nothing more than the optimizer, which holds a strong reference to it.
public protocol ParameterStorage: AnyObject {
    /// Number of Float values (and of gradients).
    var parameterCount: Int { get }
    /// (parameterCount) values, updated in place by the optimizer.
    var parameterValues: UnsafeMutablePointer<Float> { get }
    /// (parameterCount) gradients, accumulated by backward passes and zeroed by the optimizer.
    var parameterGradients: UnsafeMutablePointer<Float> { get }
}

/// A parameter block allocated here: one aligned allocation for values and one for gradients,
/// both zero-filled. Heads, routers and tests use it; the encoder brings its own.
public final class FlatParameterStorage: ParameterStorage {
    public let parameterCount: Int
    public let parameterValues: UnsafeMutablePointer<Float>
    public let parameterGradients: UnsafeMutablePointer<Float>

    /// Cache-line alignment keeps SIMD loads on one line.
    static let alignment = 64

    public init(count: Int) {
        precondition(count >= 0, "a parameter block cannot have a negative size")
        parameterCount = count
        parameterValues = FlatParameterStorage.allocateZeroed(count)
        parameterGradients = FlatParameterStorage.allocateZeroed(count)
    }

    /// A block holding a copy of `values`, with zero gradients.
    public convenience init(values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { parameterValues.update(from: base, count: values.count) }
        }
    }

    deinit {
        UnsafeMutableRawPointer(parameterValues).deallocate()
        UnsafeMutableRawPointer(parameterGradients).deallocate()
    }

    public var values: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: parameterValues, count: parameterCount) }
    public var gradients: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: parameterGradients, count: parameterCount) }

    private static func allocateZeroed(_ count: Int) -> UnsafeMutablePointer<Float> {
        // One element minimum so an empty block still has a valid, freeable pointer.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: alignment)
        return raw.initializeMemory(as: Float.self, repeating: 0, count: max(count, 1))
    }
}

/// One named tensor inside a storage, as the optimizer sees it.
public struct ParameterRange {
    /// Unique across the optimizer; keys this tensor's moments in saved optimizer state.
    public var name: String
    public var storage: any ParameterStorage
    /// Element range inside `storage`.
    public var range: Range<Int>
    /// Whether decoupled weight decay applies; by default not for biases and LayerNorm.
    public var appliesWeightDecay: Bool
    /// Frozen ranges get no optimizer state and are never touched by clipping or updates.
    public var trainable: Bool

    public init(name: String, storage: any ParameterStorage, range: Range<Int>, appliesWeightDecay: Bool? = nil, trainable: Bool = true) {
        self.name = name
        self.storage = storage
        self.range = range
        self.appliesWeightDecay = appliesWeightDecay ?? ParameterRange.decaysByDefault(name: name)
        self.trainable = trainable
    }

    /// The usual BERT fine-tuning rule (as in Hugging Face's Trainer): no weight decay on
    /// biases or on any LayerNorm parameter, decay on everything else.
    public static func decaysByDefault(name: String) -> Bool {
        let lowered = name.lowercased()
        if lowered.contains("layernorm") || lowered.contains("layer_norm") { return false }
        let lastComponent = lowered.split(separator: ".").last.map(String.init) ?? lowered
        return lastComponent != "bias"
    }
}

/// Parameters that share a learning rate and a weight decay, for example "encoder", "heads",
/// "routers" or "adapters". The schedule scales every group's learning rate by one factor.
public struct ParameterGroup {
    public var name: String
    public var learningRate: Double
    public var weightDecay: Double
    /// A frozen group (false) contributes nothing to the optimizer, whatever its ranges say.
    public var trainable: Bool
    public var parameters: [ParameterRange]

    public init(name: String, learningRate: Double, weightDecay: Double = 0, trainable: Bool = true, parameters: [ParameterRange]) {
        self.name = name
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        self.trainable = trainable
        self.parameters = parameters
    }
}
