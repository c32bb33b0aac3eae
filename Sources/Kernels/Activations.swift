// Pointwise activations of the feed-forward block, forward and backward.
//
// Dimension legend: count = number of elements (tokens x intermediate channels).

import Foundation

/// The activation functions a BERT checkpoint may name in `hidden_act`.
public enum Activation: String, Sendable, CaseIterable {
    /// Exact GELU: x * Phi(x), Phi the normal CDF through erf (transformers "gelu").
    case gelu
    /// Tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    /// (transformers "gelu_new" and "gelu_pytorch_tanh").
    case geluTanh = "gelu_new"
    case relu
}

/// out[count] = activation(inp[count]). `out` may equal `inp`.
public func activationForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count: Int, activation: Activation) {
    KernelThreads.parallelRanges(count / 8, minimumChunk: 4096) { range in
        for block in range {
            let x = load8(inp + block * 8)
            store8(activation8(x, activation), out + block * 8)
        }
    }
    for index in (count / 8 * 8)..<count {
        out[index] = activation8(Float8(repeating: inp[index]), activation)[0]
    }
}

/// dinp[count] += activation'(inp) * dout, with inp the saved pre-activation values.
public func activationBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ dout: UnsafePointer<Float>,
    count: Int, activation: Activation
) {
    KernelThreads.parallelRanges(count / 8, minimumChunk: 4096) { range in
        for block in range {
            let offset = block * 8
            let derivative = activationDerivative8(load8(inp + offset), activation)
            store8(load8(dinp + offset) + derivative * load8(dout + offset), dinp + offset)
        }
    }
    for index in (count / 8 * 8)..<count {
        dinp[index] += activationDerivative8(Float8(repeating: inp[index]), activation)[0] * dout[index]
    }
}

@inline(__always)
func activation8(_ x: Float8, _ activation: Activation) -> Float8 {
    switch activation {
    case .gelu:
        return x * normalCDF8(x)
    case .geluTanh:
        return 0.5 * x * (1 + tanh8(geluTanhArgument(x)))
    case .relu:
        return x.replacing(with: 0, where: x .< 0)
    }
}

@inline(__always)
func activationDerivative8(_ x: Float8, _ activation: Activation) -> Float8 {
    switch activation {
    case .gelu:
        // d/dx x Phi(x) = Phi(x) + x phi(x), phi the normal density.
        let density = exp8(-0.5 * x * x) * 0.398_942_280_401_432_7
        return normalCDF8(x) + x * density
    case .geluTanh:
        let t = tanh8(geluTanhArgument(x))
        let inner = 0.797_884_560_802_865_4 * (1 + 3 * 0.044715 * x * x)
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * inner
    case .relu:
        return Float8(repeating: 1).replacing(with: 0, where: x .<= 0)
    }
}

@inline(__always)
func geluTanhArgument(_ x: Float8) -> Float8 {
    0.797_884_560_802_865_4 * (x + 0.044715 * x * x * x)
}

/// tanh per lane: 1 - 2 / (e^(2x) + 1), with the sign restored for accuracy near -1.
@inline(__always)
func tanh8(_ x: Float8) -> Float8 {
    let magnitude = abs8(x)
    // For |x| < 0.0625 the subtraction loses bits; x - x^3/3 + 2x^5/15 is exact enough there.
    let squared = x * x
    let series = x * (1 - squared * (1.0 / 3 - squared * (2.0 / 15)))
    let positive = 1 - 2 / (exp8(2 * magnitude) + 1)
    let signed = positive.replacing(with: -positive, where: x .< 0)
    return series.replacing(with: signed, where: magnitude .>= 0.0625)
}
