// LayerNorm over the channel dimension, forward and single-pass backward.
//
// Dimension legend: N rows (tokens), C channels.

/// out[N,C] = (inp - mean) * rstd * weight[C] + bias[C], saving mean[N] and rstd[N]
/// (rstd = 1 / sqrt(biased variance + eps)) for the backward pass. `out` may equal `inp`.
public func layerNormForward(
    _ out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?,
    _ inp: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
    rows: Int, channels: Int, epsilon: Float
) {
    let c = channels
    let vectorEnd = c / 8 * 8
    KernelThreads.parallelRanges(rows, minimumChunk: 64) { range in
        for row in range {
            let x = inp + row * c
            // Two passes over the row (mean, then centred variance) match PyTorch's
            // numerics better than E[x^2] - E[x]^2 when |mean| >> std.
            var sum = Float8()
            var index = 0
            while index < vectorEnd { sum += load8(x + index); index += 8 }
            var total = sum8(sum)
            while index < c { total += x[index]; index += 1 }
            let rowMean = total / Float(c)
            var squares = Float8()
            index = 0
            while index < vectorEnd {
                let centred = load8(x + index) - rowMean
                squares += centred * centred
                index += 8
            }
            var variance = sum8(squares)
            while index < c { let centred = x[index] - rowMean; variance += centred * centred; index += 1 }
            variance /= Float(c)
            let rowRstd = 1 / (variance + epsilon).squareRoot()
            let y = out + row * c
            index = 0
            while index < vectorEnd {
                let normalized = (load8(x + index) - rowMean) * rowRstd
                store8(normalized * load8(weight + index) + load8(bias + index), y + index)
                index += 8
            }
            while index < c { y[index] = (x[index] - rowMean) * rowRstd * weight[index] + bias[index]; index += 1 }
            mean?[row] = rowMean
            rstd?[row] = rowRstd
        }
    }
}

/// Backward of `layerNormForward` given the saved mean and rstd:
///   dinp[N,C] += (dnorm - mean(dnorm) - norm * mean(dnorm * norm)) * rstd,
///   dweight[C] += sum over rows of dout * norm,  dbias[C] += sum over rows of dout,
/// where norm = (inp - mean) * rstd and dnorm = dout * weight. Each of dinp, dweight, dbias
/// may be nil when that gradient is not wanted (frozen LayerNorm, or nothing trainable below).
public func layerNormBackward(
    dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?,
    dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows: Int, channels: Int
) {
    let c = channels
    let workers = max(1, min(KernelThreads.splitCount, rows / 64))
    let wantParameters = dweight != nil || dbias != nil
    // Per-worker partial sums of dweight and dbias, added in worker order: deterministic.
    let partials = FloatBuffer(count: wantParameters ? workers * 2 * c : 0)
    KernelThreads.forEachWorker(workers) { worker in
        let start = rows * worker / workers, end = rows * (worker + 1) / workers
        let partialWeight = partials.pointer + worker * 2 * c
        let partialBias = partialWeight + c
        for row in start..<end {
            let x = inp + row * c, dy = dout + row * c
            let rowMean = mean[row], rowRstd = rstd[row]
            var dnormSum: Float = 0, dnormNormSum: Float = 0
            for index in 0..<c {
                let norm = (x[index] - rowMean) * rowRstd
                let dnorm = dy[index] * weight[index]
                dnormSum += dnorm
                dnormNormSum += dnorm * norm
                if wantParameters {
                    partialWeight[index] += dy[index] * norm
                    partialBias[index] += dy[index]
                }
            }
            guard let dinp else { continue }
            let dnormMean = dnormSum / Float(c), dnormNormMean = dnormNormSum / Float(c)
            let dx = dinp + row * c
            for index in 0..<c {
                let norm = (x[index] - rowMean) * rowRstd
                let dnorm = dy[index] * weight[index]
                dx[index] += (dnorm - dnormMean - norm * dnormNormMean) * rowRstd
            }
        }
    }
    guard wantParameters else { return }
    for worker in 0..<workers {
        let partialWeight = partials.pointer + worker * 2 * c
        for index in 0..<c {
            dweight?[index] += partialWeight[index]
            dbias?[index] += partialWeight[c + index]
        }
    }
}
