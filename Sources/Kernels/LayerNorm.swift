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

/// The residual connection, dropout and LayerNorm that end each post-LN sublayer, in one pass
/// over each row while it is in cache:
///   s = residual + dropout(branch)          (mask nil: no dropout; scale = 1 / (1 - p))
///   out = (s - mean) * rstd * weight + bias
/// `sum`, when given, keeps s for the backward pass (with mean and rstd); without it, `out`
/// holds s until the row is normalised (eval mode). `out` must not alias the inputs.
public func residualLayerNormForward(
    _ out: UnsafeMutablePointer<Float>, sum: UnsafeMutablePointer<Float>?,
    mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?,
    branch: UnsafePointer<Float>, mask: UnsafePointer<UInt8>?, scale: Float, residual: UnsafePointer<Float>,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, rows: Int, channels: Int, epsilon: Float
) {
    let c = channels
    let vectorEnd = c / 8 * 8
    KernelThreads.parallelRanges(rows, minimumChunk: 32) { range in
        for row in range {
            let x = branch + row * c, r = residual + row * c
            let s = (sum ?? out) + row * c
            // s, and its mean.
            var totals = Float8()
            var index = 0
            if let mask {
                let m = mask + row * c
                while index < c {
                    s[index] = r[index] + (m[index] != 0 ? x[index] * scale : 0)
                    index += 1
                }
                index = 0
                while index < vectorEnd { totals += load8(s + index); index += 8 }
            } else {
                while index < vectorEnd {
                    let value = load8(r + index) + load8(x + index)
                    store8(value, s + index)
                    totals += value
                    index += 8
                }
                while index < c { s[index] = r[index] + x[index]; index += 1 }
                index = vectorEnd
            }
            var total = totals.sum()
            while index < c { total += s[index]; index += 1 }
            let rowMean = total / Float(c)
            // Centred variance (two passes, as layerNormForward).
            var squares = Float8()
            index = 0
            while index < vectorEnd {
                let centred = load8(s + index) - rowMean
                squares = squares.addingProduct(centred, centred)
                index += 8
            }
            var variance = squares.sum()
            while index < c { let centred = s[index] - rowMean; variance += centred * centred; index += 1 }
            variance /= Float(c)
            let rowRstd = 1 / (variance + epsilon).squareRoot()
            let y = out + row * c
            index = 0
            while index < vectorEnd {
                let normalized = (load8(s + index) - rowMean) * rowRstd
                store8(load8(bias + index).addingProduct(normalized, load8(weight + index)), y + index)
                index += 8
            }
            while index < c { y[index] = (s[index] - rowMean) * rowRstd * weight[index] + bias[index]; index += 1 }
            mean?[row] = rowMean
            rstd?[row] = rowRstd
        }
    }
}

/// Backward of `residualLayerNormForward`, given its saved s (`sum`), mean and rstd:
///   ds = LayerNorm backward of dout          -> dresidual (written, not accumulated; nil: unused)
///   dbranch = ds * mask * scale              -> written (mask nil: ds)
///   dweight[C] += sum over rows of dout * norm,  dbias[C] += sum over rows of dout (nil: frozen)
/// One pass per row in place of zeroing, accumulating, copying and a dropout pass.
public func residualLayerNormBackward(
    dresidual: UnsafeMutablePointer<Float>?, dbranch: UnsafeMutablePointer<Float>,
    dweight: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?,
    dout: UnsafePointer<Float>, sum: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, mask: UnsafePointer<UInt8>?, scale: Float,
    rows: Int, channels: Int
) {
    let c = channels
    let vectorEnd = c / 8 * 8
    let workers = max(1, min(KernelThreads.splitCount, rows / 64))
    let wantParameters = dweight != nil || dbias != nil
    // Per-worker partial sums of dweight and dbias, added in worker order.
    ScratchPool.shared.with(max(1, workers * 2 * c)) { partials in
        if wantParameters { partials.update(repeating: 0, count: workers * 2 * c) }
        KernelThreads.forEachWorker(workers) { worker in
            let start = rows * worker / workers, end = rows * (worker + 1) / workers
            let partialWeight = partials + worker * 2 * c, partialBias = partialWeight + c
            for row in start..<end {
                let x = sum + row * c, dy = dout + row * c
                let rowMean = mean[row], rowRstd = rstd[row]
                var dnormSums = Float8(), dnormNormSums = Float8()
                var index = 0
                while index < vectorEnd {
                    let norm = (load8(x + index) - rowMean) * rowRstd
                    let g = load8(dy + index)
                    let dnorm = g * load8(weight + index)
                    dnormSums += dnorm
                    dnormNormSums = dnormNormSums.addingProduct(dnorm, norm)
                    if wantParameters {
                        store8(load8(partialWeight + index).addingProduct(g, norm), partialWeight + index)
                        store8(load8(partialBias + index) + g, partialBias + index)
                    }
                    index += 8
                }
                var dnormSum = dnormSums.sum(), dnormNormSum = dnormNormSums.sum()
                while index < c {
                    let norm = (x[index] - rowMean) * rowRstd
                    let dnorm = dy[index] * weight[index]
                    dnormSum += dnorm
                    dnormNormSum += dnorm * norm
                    if wantParameters {
                        partialWeight[index] += dy[index] * norm
                        partialBias[index] += dy[index]
                    }
                    index += 1
                }
                let dnormMean = dnormSum / Float(c), dnormNormMean = dnormNormSum / Float(c)
                let dr = dresidual.map { $0 + row * c }, db = dbranch + row * c
                index = 0
                while index < vectorEnd {
                    let norm = (load8(x + index) - rowMean) * rowRstd
                    let dnorm = load8(dy + index) * load8(weight + index)
                    let ds = (dnorm - dnormMean - norm * dnormNormMean) * rowRstd
                    if let dr { store8(ds, dr + index) }
                    if mask == nil { store8(ds, db + index) }
                    index += 8
                }
                while index < c {
                    let norm = (x[index] - rowMean) * rowRstd
                    let ds = (dy[index] * weight[index] - dnormMean - norm * dnormNormMean) * rowRstd
                    dr?[index] = ds
                    if mask == nil { db[index] = ds }
                    index += 1
                }
                if let mask {
                    // The dropout mask is bytes: a scalar loop over the row just written
                    // (or recomputed when dresidual is not kept).
                    let m = mask + row * c
                    for index in 0..<c {
                        let ds: Float
                        if let dr { ds = dr[index] } else {
                            let norm = (x[index] - rowMean) * rowRstd
                            ds = (dy[index] * weight[index] - dnormMean - norm * dnormNormMean) * rowRstd
                        }
                        db[index] = m[index] != 0 ? ds * scale : 0
                    }
                }
            }
        }
        guard wantParameters else { return }
        for worker in 0..<workers {
            let partialWeight = partials + worker * 2 * c
            for index in 0..<c {
                dweight?[index] += partialWeight[index]
                dbias?[index] += partialWeight[c + index]
            }
        }
    }
}
