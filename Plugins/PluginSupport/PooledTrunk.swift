// The sequence-level trunk shared by the classification and regression heads:
//   pooled = pool(features)            [B, H]   (cls, mean or max over each sequence)
//   x1 = dropout(pooled)               [B, H]
//   optional: x2 = dropout(act(x1 W1^T + b1))   [B, K]   ("dense")
//   outputs = x W2^T + b2              [B, C]   ("output"), x = x2 or x1
import CPolyhead

/// Config keys the trunk reads (heads add their own).
public let trunkConfigKeys = ["pooling", "hidden_size", "activation", "dropout", "initializer_range"]

public final class PooledTrunk {
    public let pooling: Pooling
    public let activation: Activation
    public let dropout: Float
    public let inputWidth: Int
    public let dense: Linear?
    public let output: Linear
    private let random: OpaquePointer?

    /// What forward keeps for backward.
    final class Saved {
        var argmax: [Int32] = []   // [B, H] (max pooling)
        var x1: [Float] = []       // [B, H] dropped pooled features
        var mask1: [Float]? = nil  // [B, H]
        var pre: [Float] = []      // [B, K] hidden pre-activation
        var x2: [Float] = []       // [B, K] dropped hidden activation
        var mask2: [Float]? = nil  // [B, K]
    }

    public init(context: CreateContext, outputWidth: Int, defaultPooling: Pooling, into set: ParameterSet) throws {
        let config = context.config
        pooling = Pooling(rawValue: try config.string("pooling", default: defaultPooling.rawValue, allowed: Pooling.allCases.map(\.rawValue)))!
        let hidden = try config.integer("hidden_size", default: 0, range: 0...65536)
        activation = Activation(rawValue: try config.string("activation", default: "tanh", allowed: Activation.allCases.map(\.rawValue)))!
        dropout = Float(try config.number("dropout", default: 0, range: 0...0.95))
        let deviation = try config.number("initializer_range", default: 0.02, range: 0...10)
        inputWidth = context.inputWidth
        random = context.random
        dense = hidden > 0 ? try Linear("dense", inputWidth: inputWidth, outputWidth: hidden, standardDeviation: deviation, context: context, into: set) : nil
        output = try Linear("output", inputWidth: hidden > 0 ? hidden : inputWidth, outputWidth: outputWidth,
                            standardDeviation: deviation, context: context, into: set)
    }

    /// Writes outputs [B, C]; returns the saved state when training.
    public func forward(_ input: HeadInput, outputs: UnsafeMutablePointer<Float>) -> AnyObject? {
        let rows = input.sequences, width = inputWidth
        let saved = Saved()
        saved.x1 = [Float](repeating: 0, count: rows * width)
        if pooling == .max { saved.argmax = [Int32](repeating: 0, count: rows * width) }
        saved.x1.withUnsafeMutableBufferPointer { x1 in
            saved.argmax.withUnsafeMutableBufferPointer { pool(input, pooling, pooled: x1.baseAddress!, argmax: $0.baseAddress) }
        }
        if input.training && dropout > 0 {
            let mask = dropoutMask(count: rows * width, probability: dropout, random: random)
            for index in 0..<(rows * width) { saved.x1[index] *= mask[index] }
            saved.mask1 = mask
        }
        var last = saved.x1
        if let dense {
            let hidden = dense.outputWidth
            saved.pre = [Float](repeating: 0, count: rows * hidden)
            saved.x1.withUnsafeBufferPointer { x1 in
                saved.pre.withUnsafeMutableBufferPointer { dense.forward(x1.baseAddress!, rows: rows, $0.baseAddress!) }
            }
            saved.x2 = saved.pre.map(activation.apply)
            if input.training && dropout > 0 {
                let mask = dropoutMask(count: rows * hidden, probability: dropout, random: random)
                for index in 0..<(rows * hidden) { saved.x2[index] *= mask[index] }
                saved.mask2 = mask
            }
            last = saved.x2
        }
        last.withUnsafeBufferPointer { output.forward($0.baseAddress!, rows: rows, outputs) }
        return input.training ? saved : nil
    }

    /// Writes d(features) [T, H] and adds parameter gradients.
    public func backward(_ state: AnyObject?, _ input: HeadInput, outputGradient: UnsafePointer<Float>,
                         featureGradient: UnsafeMutablePointer<Float>) throws {
        guard let saved = state as? Saved else { throw PluginFailure("backward needs the state of a training forward pass") }
        let rows = input.sequences, width = inputWidth
        var dX1 = [Float](repeating: 0, count: rows * width)
        if let dense {
            let hidden = dense.outputWidth
            var dX2 = [Float](repeating: 0, count: rows * hidden)
            saved.x2.withUnsafeBufferPointer { x2 in
                dX2.withUnsafeMutableBufferPointer { output.backward(x2.baseAddress!, rows: rows, outputGradient, $0.baseAddress!) }
            }
            for index in 0..<(rows * hidden) {
                dX2[index] *= (saved.mask2?[index] ?? 1) * activation.derivative(saved.pre[index])
            }
            saved.x1.withUnsafeBufferPointer { x1 in
                dX2.withUnsafeBufferPointer { dPre in
                    dX1.withUnsafeMutableBufferPointer { dense.backward(x1.baseAddress!, rows: rows, dPre.baseAddress!, $0.baseAddress!) }
                }
            }
        } else {
            saved.x1.withUnsafeBufferPointer { x1 in
                dX1.withUnsafeMutableBufferPointer { output.backward(x1.baseAddress!, rows: rows, outputGradient, $0.baseAddress!) }
            }
        }
        if let mask = saved.mask1 { for index in 0..<(rows * width) { dX1[index] *= mask[index] } }
        dX1.withUnsafeBufferPointer { dPooled in
            saved.argmax.withUnsafeBufferPointer {
                unpool(input, pooling, dPooled: dPooled.baseAddress!, argmax: $0.baseAddress, dFeatures: featureGradient)
            }
        }
    }
}
