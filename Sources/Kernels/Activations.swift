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
    // One loop per activation: the switch stays out of the vector loop.
    switch activation {
    case .gelu: activationForwardLoop(out, inp, count: count) { activation8Inline($0, .gelu) }
    case .geluTanh: activationForwardLoop(out, inp, count: count) { activation8Inline($0, .geluTanh) }
    case .relu: activationForwardLoop(out, inp, count: count) { activation8Inline($0, .relu) }
    }
}

@inline(__always)
private func activationForwardLoop(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count: Int, _ f: (Float8) -> Float8) {
    KernelThreads.parallelRanges(count / 8, minimumChunk: 4096) { range in
        for block in range { store8(f(load8(inp + block * 8)), out + block * 8) }
    }
    for index in (count / 8 * 8)..<count { out[index] = f(Float8(repeating: inp[index]))[0] }
}

/// dinp[count] += activation'(inp) * dout, with inp the saved pre-activation values.
public func activationBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ dout: UnsafePointer<Float>,
    count: Int, activation: Activation
) {
    switch activation {
    case .gelu: activationBackwardLoop(dinp, inp, dout, count: count) { activationDerivative8Inline($0, .gelu) }
    case .geluTanh: activationBackwardLoop(dinp, inp, dout, count: count) { activationDerivative8Inline($0, .geluTanh) }
    case .relu: activationBackwardLoop(dinp, inp, dout, count: count) { activationDerivative8Inline($0, .relu) }
    }
}

@inline(__always)
private func activationBackwardLoop(_ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ dout: UnsafePointer<Float>,
                                    count: Int, _ derivative: (Float8) -> Float8) {
    KernelThreads.parallelRanges(count / 8, minimumChunk: 4096) { range in
        for block in range {
            let offset = block * 8
            store8(load8(dinp + offset).addingProduct(derivative(load8(inp + offset)), load8(dout + offset)), dinp + offset)
        }
    }
    for index in (count / 8 * 8)..<count {
        dinp[index] += derivative(Float8(repeating: inp[index]))[0] * dout[index]
    }
}

/// Backward of a linear layer's bias and activation, y = act(x) with x = (inp W^T + bias)
/// saved as `inp` [rows, columns], in one pass:
///   dinp[rows, columns] = act'(inp) * dout     (written, not accumulated)
///   dbias[columns] += column sums of dinp      (nil: frozen bias)
/// This replaces zeroing dinp, an accumulating activation backward and a separate pass of
/// column sums. Columns are split across workers in blocks of 8 and every column is summed
/// in row order, so the result does not depend on the number of workers.
public func activationBiasBackward(
    dinp: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>?, _ inp: UnsafePointer<Float>, _ dout: UnsafePointer<Float>,
    rows: Int, columns: Int, activation: Activation
) {
    switch activation {
    case .gelu: activationBiasBackwardLoop(dinp, dbias, inp, dout, rows: rows, columns: columns) { activationDerivative8Inline($0, .gelu) }
    case .geluTanh: activationBiasBackwardLoop(dinp, dbias, inp, dout, rows: rows, columns: columns) { activationDerivative8Inline($0, .geluTanh) }
    case .relu: activationBiasBackwardLoop(dinp, dbias, inp, dout, rows: rows, columns: columns) { activationDerivative8Inline($0, .relu) }
    }
}

@inline(__always)
private func activationBiasBackwardLoop(_ dinp: UnsafeMutablePointer<Float>, _ dbias: UnsafeMutablePointer<Float>?,
                                        _ inp: UnsafePointer<Float>, _ dout: UnsafePointer<Float>,
                                        rows: Int, columns: Int, _ derivative: (Float8) -> Float8) {
    let blocks = columns / 8
    // Per worker: a contiguous range of column blocks, rows streamed in order.
    KernelThreads.parallelRanges(blocks, minimumChunk: 16) { range in
        ScratchPool.shared.with(range.count * 8) { sums in
            sums.update(repeating: 0, count: range.count * 8)
            for row in 0..<rows {
                let base = row * columns
                for (slot, block) in range.enumerated() {
                    let offset = base + block * 8
                    let value = derivative(load8(inp + offset)) * load8(dout + offset)
                    store8(value, dinp + offset)
                    store8(load8(sums + slot * 8) + value, sums + slot * 8)
                }
            }
            if let dbias {
                for (slot, block) in range.enumerated() {
                    store8(load8(dbias + block * 8) + load8(sums + slot * 8), dbias + block * 8)
                }
            }
        }
    }
    for column in (blocks * 8)..<columns {
        var total: Float = 0
        for row in 0..<rows {
            let index = row * columns + column
            let value = derivative(Float8(repeating: inp[index]))[0] * dout[index]
            dinp[index] = value
            total += value
        }
        dbias?[column] += total
    }
}

/// activation(x) per lane (the public form, for tests and tails).
@inline(__always)
func activation8(_ x: Float8, _ activation: Activation) -> Float8 { activation8Inline(x, activation) }

/// activation'(x) per lane.
@inline(__always)
func activationDerivative8(_ x: Float8, _ activation: Activation) -> Float8 { activationDerivative8Inline(x, activation) }

@_transparent
func activation8Inline(_ x: Float8, _ activation: Activation) -> Float8 {
    switch activation {
    case .gelu:
        return x * normalCDF8Inline(x)
    case .geluTanh:
        return 0.5 * x * (1 + tanh8(geluTanhArgument(x)))
    case .relu:
        return x.replacing(with: 0, where: x .< 0)
    }
}

@_transparent
func activationDerivative8Inline(_ x: Float8, _ activation: Activation) -> Float8 {
    switch activation {
    case .gelu:
        // d/dx x Phi(x) = Phi(x) + x phi(x), phi the normal density.
        let density = exp8Inline(-0.5 * x * x) * 0.398_942_280_401_432_7
        return normalCDF8Inline(x).addingProduct(x, density)
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
@_transparent
func tanh8(_ x: Float8) -> Float8 {
    let magnitude = abs8(x)
    // For |x| < 0.0625 the subtraction loses bits; x - x^3/3 + 2x^5/15 is exact enough there.
    let squared = x * x
    let series = x * (1 - squared * (1.0 / 3 - squared * (2.0 / 15)))
    let positive = 1 - 2 / (exp8Inline(2 * magnitude) + 1)
    let signed = positive.replacing(with: -positive, where: x .< 0)
    return series.replacing(with: signed, where: magnitude .>= 0.0625)
}
