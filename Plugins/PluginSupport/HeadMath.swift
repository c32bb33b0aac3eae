// Forward and backward building blocks shared by the Swift heads, over flat Float buffers.
// Dimension legend: B sequences, T tokens, H input width, K hidden width, C output width.
// GEMMs go through the host's OpenBLAS (services->sgemm); loops are plain and checked.
import CPolyhead

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Row-major C[m,n] = alpha * op(A) * op(B) + beta * C through the host.
@inline(__always)
public func sgemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                  _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
    hostServices!.pointee.sgemm(transposeA ? PH_TRANSPOSE : PH_NO_TRANSPOSE, transposeB ? PH_TRANSPOSE : PH_NO_TRANSPOSE,
                                Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
}

/// A dense layer y = x W^T + b over host-bound parameters W [out, in], b [out].
public struct Linear {
    public let weight: BoundParameter
    public let bias: BoundParameter
    public let inputWidth: Int
    public let outputWidth: Int

    public init(_ prefix: String, inputWidth: Int, outputWidth: Int, standardDeviation: Double,
                context: CreateContext, into set: ParameterSet) throws {
        self.inputWidth = inputWidth
        self.outputWidth = outputWidth
        weight = try context.declare("\(prefix).weight", shape: [outputWidth, inputWidth], initializer: PH_INIT_NORMAL,
                                     a: 0, b: standardDeviation, into: set)
        bias = try context.declare("\(prefix).bias", shape: [outputWidth], initializer: PH_INIT_ZEROS, noDecay: true, into: set)
    }

    /// y [rows, out] = x [rows, in] W^T + b
    public func forward(_ x: UnsafePointer<Float>, rows: Int, _ y: UnsafeMutablePointer<Float>) {
        sgemm(transposeA: false, transposeB: true, m: rows, n: outputWidth, k: inputWidth,
              x, lda: inputWidth, weight.value, ldb: inputWidth, beta: 0, y, ldc: outputWidth)
        let b = bias.value
        for row in 0..<rows {
            let line = y + row * outputWidth
            for column in 0..<outputWidth { line[column] += b[column] }
        }
    }

    /// dx [rows, in] = dy W (overwritten); dW += dy^T x; db += column sums of dy.
    public func backward(_ x: UnsafePointer<Float>, rows: Int, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>?) {
        if let dx {
            sgemm(transposeA: false, transposeB: false, m: rows, n: inputWidth, k: outputWidth,
                  dy, lda: outputWidth, weight.value, ldb: inputWidth, beta: 0, dx, ldc: inputWidth)
        }
        if let dWeight = weight.gradients {
            sgemm(transposeA: true, transposeB: false, m: outputWidth, n: inputWidth, k: rows,
                  dy, lda: outputWidth, x, ldb: inputWidth, beta: 1, dWeight, ldc: inputWidth)
        }
        if let dBias = bias.gradients {
            for row in 0..<rows {
                let line = dy + row * outputWidth
                for column in 0..<outputWidth { dBias[column] += line[column] }
            }
        }
    }
}

public enum Pooling: String, CaseIterable {
    case cls, mean, max
}

/// pooled [B, H] from packed features [T, H]. For max pooling, argmax [B, H] records the
/// token each maximum came from (the first one on ties).
public func pool(_ input: HeadInput, _ pooling: Pooling, pooled: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>?) {
    let width = input.width
    for sequence in 0..<input.sequences {
        let start = input.start(sequence), end = input.end(sequence)
        let out = pooled + sequence * width
        switch pooling {
        case .cls:
            out.update(from: input.features + start * width, count: width)
        case .mean:
            out.update(repeating: 0, count: width)
            for token in start..<end {
                let row = input.features + token * width
                for column in 0..<width { out[column] += row[column] }
            }
            let scale = 1 / Float(end - start)
            for column in 0..<width { out[column] *= scale }
        case .max:
            let indices = argmax! + sequence * width
            out.update(from: input.features + start * width, count: width)
            indices.update(repeating: Int32(start), count: width)
            for token in (start + 1)..<max(end, start + 1) {
                let row = input.features + token * width
                for column in 0..<width where row[column] > out[column] {
                    out[column] = row[column]
                    indices[column] = Int32(token)
                }
            }
        }
    }
}

/// d(features) [T, H] (every element written) from d(pooled) [B, H].
public func unpool(_ input: HeadInput, _ pooling: Pooling, dPooled: UnsafePointer<Float>, argmax: UnsafePointer<Int32>?,
                   dFeatures: UnsafeMutablePointer<Float>) {
    let width = input.width
    dFeatures.update(repeating: 0, count: input.tokens * width)
    for sequence in 0..<input.sequences {
        let start = input.start(sequence), end = input.end(sequence)
        let gradient = dPooled + sequence * width
        switch pooling {
        case .cls:
            (dFeatures + start * width).update(from: gradient, count: width)
        case .mean:
            let scale = 1 / Float(end - start)
            for token in start..<end {
                let row = dFeatures + token * width
                for column in 0..<width { row[column] = gradient[column] * scale }
            }
        case .max:
            let indices = argmax! + sequence * width
            for column in 0..<width { dFeatures[Int(indices[column]) * width + column] += gradient[column] }
        }
    }
}

/// Inverted dropout mask: each element kept with probability 1 - p and scaled by 1/(1 - p).
/// Drawn from the instance's host random stream, so a run is reproducible.
public func dropoutMask(count: Int, probability: Float, random: OpaquePointer?) -> [Float] {
    var mask = [Float](repeating: 0, count: count)
    mask.withUnsafeMutableBufferPointer { hostServices!.pointee.rng_uniform(random, $0.baseAddress, Int64(count)) }
    let scale = 1 / (1 - probability)
    for index in 0..<count { mask[index] = mask[index] >= probability ? scale : 0 }
    return mask
}

public enum Activation: String, CaseIterable {
    case tanh, relu, gelu

    public func apply(_ x: Float) -> Float {
        switch self {
        case .tanh: return tanhf(x)
        case .relu: return x > 0 ? x : 0
        case .gelu: return 0.5 * x * (1 + erff(x * 0.70710678118654752))
        }
    }

    /// d(activation)/dx at pre-activation x.
    public func derivative(_ x: Float) -> Float {
        switch self {
        case .tanh: let y = tanhf(x); return 1 - y * y
        case .relu: return x > 0 ? 1 : 0
        case .gelu:
            let cdf = 0.5 * (1 + erff(x * 0.70710678118654752))
            return cdf + x * expf(-0.5 * x * x) * 0.39894228040143268
        }
    }
}

/// Log-softmax of one row, in Double for a stable loss.
@inline(__always)
func logSoftmax(_ row: UnsafePointer<Float>, _ width: Int, _ out: inout [Double]) {
    var maximum = -Double.infinity
    for column in 0..<width { maximum = max(maximum, Double(row[column])) }
    var sum = 0.0
    for column in 0..<width { sum += exp(Double(row[column]) - maximum) }
    let logSum = maximum + log(sum)
    for column in 0..<width { out[column] = Double(row[column]) - logSum }
}

/// Softmax cross-entropy with PyTorch's semantics (F.cross_entropy with weight,
/// label_smoothing, ignore_index, reduction "mean"):
///   loss = sum over kept rows i of [(1-e) w[y_i] (-log p_i[y_i]) + (e/C) sum_c w_c (-log p_i[c])] / sum_i w[y_i]
/// Rows whose target is PH_TARGET_IGNORED count for nothing; when every row is ignored the
/// loss and gradient are 0 (PyTorch would give NaN).
/// - Returns: the loss; writes d(loss)/d(logits) into `gradient` [N, C].
public func crossEntropy(logits: UnsafePointer<Float>, targets: UnsafePointer<Int64>, rows: Int, classes: Int,
                         classWeights: UnsafePointer<Float>?, smoothing: Double, gradient: UnsafeMutablePointer<Float>) throws -> Double {
    var logProbabilities = [Double](repeating: 0, count: classes)
    var weightSum = 0.0
    var allWeights = 0.0
    for column in 0..<classes { allWeights += Double(classWeights?[column] ?? 1) }
    for row in 0..<rows {
        let target = targets[row]
        if target == Int64(PH_TARGET_IGNORED) { continue }
        guard target >= 0, target < Int64(classes) else {
            throw PluginFailure("target class \(target) in row \(row) is outside 0 ..< \(classes)")
        }
        weightSum += Double(classWeights?[Int(target)] ?? 1)
    }
    gradient.update(repeating: 0, count: rows * classes)
    guard weightSum > 0 else { return 0 }
    var total = 0.0
    for row in 0..<rows {
        let target = targets[row]
        if target == Int64(PH_TARGET_IGNORED) { continue }
        let line = logits + row * classes
        logSoftmax(line, classes, &logProbabilities)
        let targetWeight = Double(classWeights?[Int(target)] ?? 1)
        var smoothTerm = 0.0
        for column in 0..<classes { smoothTerm -= Double(classWeights?[column] ?? 1) * logProbabilities[column] }
        total += (1 - smoothing) * targetWeight * -logProbabilities[Int(target)] + smoothing / Double(classes) * smoothTerm
        let out = gradient + row * classes
        for column in 0..<classes {
            let probability = exp(logProbabilities[column])
            let weight = Double(classWeights?[column] ?? 1)
            var value = (1 - smoothing) * targetWeight * probability + smoothing / Double(classes) * (allWeights * probability - weight)
            if column == Int(target) { value -= (1 - smoothing) * targetWeight }
            out[column] = Float(value / weightSum)
        }
    }
    return total / weightSum
}

/// Sigmoid binary cross-entropy on logits with per-class weights and label smoothing
/// (targets t become t(1-e) + e/2), averaged over every element (PyTorch's
/// BCEWithLogitsLoss(weight=w), reduction "mean").
public func binaryCrossEntropy(logits: UnsafePointer<Float>, targets: UnsafePointer<Float>, rows: Int, classes: Int,
                               classWeights: UnsafePointer<Float>?, smoothing: Double, gradient: UnsafeMutablePointer<Float>) -> Double {
    let count = Double(rows * classes)
    var total = 0.0
    for index in 0..<(rows * classes) {
        let z = Double(logits[index])
        let target = Double(targets[index]) * (1 - smoothing) + smoothing / 2
        let weight = Double(classWeights?[index % classes] ?? 1)
        // softplus(z) - t z, computed without overflow.
        let softplus = max(z, 0) + log1p(exp(-abs(z)))
        total += weight * (softplus - target * z)
        let sigmoid = 1 / (1 + exp(-z))
        gradient[index] = Float(weight * (sigmoid - target) / count)
    }
    return total / count
}

public func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }

/// Class indices from a metric's targets: I64 or F32 (the CLI builds F32), shape [N] or
/// [N, 1], `rows` values; PH_TARGET_IGNORED (-1) passes through.
public func classIndices(_ targets: Tensor, rows: Int) throws -> [Int64] {
    guard (targets.rank == 1 && targets.dimension(0) == rows) || (targets.rank == 2 && targets.shape == [rows, 1]) else {
        throw PluginFailure("targets must be [\(rows)] or [\(rows), 1] class indices, got shape \(targets.shape)")
    }
    switch targets.dtype {
    case PH_DTYPE_I64: return (0..<rows).map { targets.int64s[$0] }
    case PH_DTYPE_F32:
        return try (0..<rows).map { index in
            let value = targets.floats[index]
            guard value == value.rounded(), abs(value) < 1e9 else { throw PluginFailure("target \(value) in row \(index) is not a class index") }
            return Int64(value)
        }
    default: throw PluginFailure("targets must be I64 or F32 class indices")
    }
}

/// Index of the largest value in a row (the first on ties).
public func argmax(_ row: UnsafePointer<Float>, _ width: Int) -> Int {
    var best = 0
    for column in 1..<max(width, 1) where row[column] > row[best] { best = column }
    return best
}

/// Logits as a metric receives them: F32 [N, C].
public func metricOutputs(_ raw: UnsafePointer<ph_tensor>?) throws -> Tensor {
    let outputs = try Tensor(raw, "outputs")
    guard outputs.rank == 2 else { throw PluginFailure("outputs must be [N, C] logits, got shape \(outputs.shape)") }
    return try outputs.require(PH_DTYPE_F32, [nil, nil], "outputs")
}

/// Fraction of rows whose arg-max output is the target class (ignored rows skipped).
public func accuracyMetric(_ outputs: UnsafePointer<ph_tensor>?, _ targets: UnsafePointer<ph_tensor>?) throws -> Double {
    let logits = try metricOutputs(outputs)
    let rows = logits.dimension(0), classes = logits.dimension(1)
    let indices = try classIndices(try Tensor(targets, "targets"), rows: rows)
    var correct = 0, counted = 0
    for row in 0..<rows where indices[row] != Int64(PH_TARGET_IGNORED) {
        counted += 1
        if argmax(logits.floats + row * classes, classes) == Int(indices[row]) { correct += 1 }
    }
    guard counted > 0 else { throw PluginFailure("accuracy needs at least one target that is not ignored") }
    return Double(correct) / Double(counted)
}
