import Kernels

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

/// Flat parameters held in two Kernels `FloatBuffer`s: a block allocated here (heads,
/// routers, tests) or an existing value/gradient pair, such as the encoder's blocks, wrapped
/// so the optimizer can register ranges of it.
public final class FlatParameterStorage: ParameterStorage {
    public let valueBuffer: FloatBuffer
    public let gradientBuffer: FloatBuffer

    /// A zero-filled block of `count` values and `count` gradients.
    public convenience init(count: Int) {
        self.init(wrapping: FloatBuffer(count: count), gradients: FloatBuffer(count: count))
    }

    /// A block holding a copy of `values`, with zero gradients.
    public convenience init(values: [Float]) {
        self.init(wrapping: FloatBuffer(values), gradients: FloatBuffer(count: values.count))
    }

    /// Wraps an existing pair; the gradient buffer must mirror the value buffer.
    public init(wrapping values: FloatBuffer, gradients: FloatBuffer) {
        precondition(values.count == gradients.count, "a gradient block must mirror its parameter block (\(gradients.count) vs \(values.count) values)")
        valueBuffer = values
        gradientBuffer = gradients
    }

    public var parameterCount: Int { valueBuffer.count }
    public var parameterValues: UnsafeMutablePointer<Float> { valueBuffer.pointer }
    public var parameterGradients: UnsafeMutablePointer<Float> { gradientBuffer.pointer }
    public var values: UnsafeMutableBufferPointer<Float> { valueBuffer.buffer }
    public var gradients: UnsafeMutableBufferPointer<Float> { gradientBuffer.buffer }
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
