// Multi-head self-attention over packed sequences, forward and backward.
//
// Dimension legend: N total tokens of the packed batch, B sequences, T tokens of one
// sequence, C channels, H heads, D = C / H head size.
// Layouts:
//   qkv [N, 3C]: query in columns [0, C), key in [C, 2C), value in [2C, 3C); head h owns
//       columns [h D, (h + 1) D) of each.
//   out [N, C]: the attention context, head h in columns [h D, (h + 1) D).
//   probabilities: for sequence b, H blocks of [T_b, T_b] (query row, key column) starting
//       at H * sum of T^2 over earlier sequences (`attentionProbabilityOffsets`).
// Sequences never see each other and there is no padding, so no mask is needed.

/// Offsets of each sequence's probability blocks; the last entry is the total size.
/// - Parameter sequenceOffsets: B + 1 token offsets, first 0, last N.
public func attentionProbabilityOffsets(sequenceOffsets: [Int], heads: Int) -> [Int] {
    var offsets = [0]
    offsets.reserveCapacity(sequenceOffsets.count)
    for index in 1..<max(1, sequenceOffsets.count) {
        let length = sequenceOffsets[index] - sequenceOffsets[index - 1]
        offsets.append(offsets[index - 1] + heads * length * length)
    }
    return offsets
}

/// p[rows, columns] = softmax of each row of s (in place allowed), exp vectorised.
public func softmaxRowsForward(_ p: UnsafeMutablePointer<Float>, _ s: UnsafePointer<Float>, rows: Int, columns: Int) {
    softmaxRows(p, ldp: columns, s, lds: columns, rows: rows, columns: columns)
}

/// ds[rows, columns] += p * (dp - sum over the row of p * dp): softmax backward in O(columns)
/// per row, given the saved probabilities p.
public func softmaxRowsBackward(_ ds: UnsafeMutablePointer<Float>, _ p: UnsafePointer<Float>, _ dp: UnsafePointer<Float>, rows: Int, columns: Int) {
    for row in 0..<rows {
        let probabilities = p + row * columns, gradient = dp + row * columns, output = ds + row * columns
        var dot: Float = 0
        for column in 0..<columns { dot += probabilities[column] * gradient[column] }
        for column in 0..<columns { output[column] += probabilities[column] * (gradient[column] - dot) }
    }
}

/// One unit of attention work: a (sequence, head) pair.
private struct AttentionItem {
    let start: Int, length: Int, probabilityOffset: Int, head: Int
}

/// The (sequence, head) pairs, longest sequences first (so the last items a worker picks up
/// are short ones and the workers finish together), and the longest length.
private func attentionItems(sequenceOffsets: [Int], heads: Int) -> (items: [AttentionItem], maxLength: Int) {
    let probabilityOffsets = attentionProbabilityOffsets(sequenceOffsets: sequenceOffsets, heads: heads)
    var items: [AttentionItem] = []
    items.reserveCapacity((sequenceOffsets.count - 1) * heads)
    var maxLength = 0
    for sequence in 0..<(sequenceOffsets.count - 1) {
        let start = sequenceOffsets[sequence], length = sequenceOffsets[sequence + 1] - start
        maxLength = max(maxLength, length)
        for head in 0..<heads {
            items.append(AttentionItem(start: start, length: length, probabilityOffset: probabilityOffsets[sequence] + head * length * length, head: head))
        }
    }
    // Stable: equal lengths keep their order. Results do not depend on the order (each item
    // writes its own rows and head columns).
    items.sort { $0.length > $1.length }
    return (items, maxLength)
}

/// Per-worker scratch of the attention kernels for sequences up to `maxLength` tokens and
/// head size `d`: a transposed [d, T8] block and three [T, T8] blocks (T8 = T rounded up to 8).
private struct AttentionScratch {
    static func floats(maxLength: Int, d: Int) -> Int {
        let t8 = (maxLength + 7) / 8 * 8
        return (d * t8 + 3 * maxLength * t8 + 64) / 16 * 16
    }
    let transposed: UnsafeMutablePointer<Float>   // (d, T8)
    let square: UnsafeMutablePointer<Float>       // (T, T8)
    let second: UnsafeMutablePointer<Float>       // (T, T8)
    let third: UnsafeMutablePointer<Float>        // (T, T8)

    init(_ base: UnsafeMutablePointer<Float>, maxLength: Int, d: Int) {
        let t8 = (maxLength + 7) / 8 * 8
        transposed = base
        square = base + (d * t8 + 15) / 16 * 16
        second = square + maxLength * t8
        third = second + maxLength * t8
    }
}

/// Forward: for each sequence and head, P = softmax(Q K^T / sqrt(D)), then
/// out = dropout(P) V, fused per (sequence, head) while its blocks are in cache.
/// - Parameters:
///   - out: [N, C] context, written (not accumulated).
///   - probabilities: where to save P for backward (layout above), or nil in eval mode.
///   - dropoutMask: keep flags in the probabilities' layout, or nil for no dropout;
///     kept values are scaled by `dropoutScale` = 1 / (1 - p).
///   - qkv: [N, 3C].
///   - sequenceOffsets: B + 1 token offsets.
public func attentionForward(
    _ out: UnsafeMutablePointer<Float>, probabilities: UnsafeMutablePointer<Float>?,
    dropoutMask: UnsafePointer<UInt8>?, dropoutScale: Float,
    qkv: UnsafePointer<Float>, sequenceOffsets: [Int], channels: Int, heads: Int
) {
    let c = channels, d = channels / heads
    let scale = 1 / Float(d).squareRoot()
    let (items, maxLength) = attentionItems(sequenceOffsets: sequenceOffsets, heads: heads)
    guard !items.isEmpty else { return }
    let scratchFloats = AttentionScratch.floats(maxLength: maxLength, d: d)
    let workers = min(KernelThreads.splitCount, items.count)
    ScratchPool.shared.with(workers * scratchFloats) { base in
        KernelThreads.dynamicItems(items.count) { index, worker in
            let item = items[index]
            let scratch = AttentionScratch(base + worker * scratchFloats, maxLength: maxLength, d: d)
            let t = item.length, t8 = (t + 7) / 8 * 8
            let q = qkv + item.start * 3 * c + item.head * d, k = q + c, v = q + 2 * c
            // K^T [d, T8], zero past T: the scores kernel reads whole 8-wide column blocks.
            transposeRows(scratch.transposed, ld: t8, k, lds: 3 * c, rows: t, columns: d, paddedRows: t8)
            // S = scale Q K^T into [T, T8].
            scoresKernel(scratch.square, ldo: t8, q, lda: 3 * c, scratch.transposed, ldb: t8, rows: t, columns8: t8, depth: d, scale: scale)
            let p = probabilities.map { $0 + item.probabilityOffset } ?? scratch.second
            softmaxRows(p, ldp: t, scratch.square, lds: t8, rows: t, columns: t)
            var weights = UnsafePointer(p)
            if let dropoutMask {
                let mask = dropoutMask + item.probabilityOffset, dropped = scratch.third
                for index in 0..<(t * t) { dropped[index] = mask[index] != 0 ? p[index] * dropoutScale : 0 }
                weights = UnsafePointer(dropped)
            }
            weightedRowsKernel(out + item.start * c + item.head * d, ldo: c, weights, rowStride: t, innerStride: 1, v, ldv: 3 * c,
                               rows: t, inner: t, width: d, accumulate: false)
        }
    }
}

/// Backward of `attentionForward`: dqkv[N, 3C] += gradients for query, key and value, given
/// dout [N, C], the forward's qkv, its saved probabilities and the same dropout mask. With
/// `overwrite`, dqkv is written instead (every element belongs to exactly one (sequence,
/// head) block, so no zeroing pass is needed).
/// Per (sequence, head): dW = dO V^T; dV += dropout(P)^T dO; dP = dropout'(dW);
/// dS = P * (dP - rowsum(P * dP)) / sqrt(D) (O(T) per row); dQ += dS K; dK += dS^T Q.
public func attentionBackward(
    _ dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
    qkv: UnsafePointer<Float>, probabilities: UnsafePointer<Float>,
    dropoutMask: UnsafePointer<UInt8>?, dropoutScale: Float,
    sequenceOffsets: [Int], channels: Int, heads: Int, overwrite: Bool = false
) {
    let c = channels, d = channels / heads
    let scale = 1 / Float(d).squareRoot()
    let (items, maxLength) = attentionItems(sequenceOffsets: sequenceOffsets, heads: heads)
    guard !items.isEmpty else { return }
    let scratchFloats = AttentionScratch.floats(maxLength: maxLength, d: d)
    let workers = min(KernelThreads.splitCount, items.count)
    let accumulate = !overwrite
    ScratchPool.shared.with(workers * scratchFloats) { base in
        KernelThreads.dynamicItems(items.count) { index, worker in
            let item = items[index]
            let scratch = AttentionScratch(base + worker * scratchFloats, maxLength: maxLength, d: d)
            let t = item.length, t8 = (t + 7) / 8 * 8
            let q = qkv + item.start * 3 * c + item.head * d, k = q + c, v = q + 2 * c
            let dq = dqkv + item.start * 3 * c + item.head * d, dk = dq + c, dv = dq + 2 * c
            let dO = dout + item.start * c + item.head * d
            let p = probabilities + item.probabilityOffset
            // dW = dO V^T into [T, T8] (scratch.square).
            transposeRows(scratch.transposed, ld: t8, v, lds: 3 * c, rows: t, columns: d, paddedRows: t8)
            let dW = scratch.square
            scoresKernel(dW, ldo: t8, dO, lda: c, scratch.transposed, ldb: t8, rows: t, columns8: t8, depth: d, scale: 1)
            // weights = dropout(P) [T, T] (scratch.third, or P itself); dW becomes dP.
            var weights = p
            if let dropoutMask {
                let mask = dropoutMask + item.probabilityOffset, dropped = scratch.third
                for row in 0..<t {
                    for column in 0..<t {
                        let keep = mask[row * t + column] != 0
                        dropped[row * t + column] = keep ? p[row * t + column] * dropoutScale : 0
                        dW[row * t8 + column] = keep ? dW[row * t8 + column] * dropoutScale : 0
                    }
                }
                weights = UnsafePointer(dropped)
            }
            // dV += weights^T dO (weights read transposed in place).
            weightedRowsKernel(dv, ldo: 3 * c, weights, rowStride: 1, innerStride: t, dO, ldv: c, rows: t, inner: t, width: d, accumulate: accumulate)
            // dS = P * (dP - rowsum(P * dP)), in place over dP; the scores' 1/sqrt(D) is applied
            // to the sums below.
            softmaxRowsBackwardInPlace(dW, ld: t8, p, ldp: t, rows: t, columns: t, scale: 1)
            // dQ += scale dS K.
            weightedRowsKernel(dq, ldo: 3 * c, dW, rowStride: t8, innerStride: 1, k, ldv: 3 * c, rows: t, inner: t, width: d,
                               alpha: scale, accumulate: accumulate)
            // dK += scale dS^T Q.
            weightedRowsKernel(dk, ldo: 3 * c, dW, rowStride: 1, innerStride: t8, q, ldv: 3 * c, rows: t, inner: t, width: d,
                               alpha: scale, accumulate: accumulate)
        }
    }
}

// MARK: - Blocks of one (sequence, head)

/// dst[column, row] = src[row, column] for row < rows, column < columns; dst rows are `ld`
/// apart and columns rows..<paddedRows of dst are set to 0. Column by column: strided loads
/// and sequential stores (strided stores were the slowest part of the first version).
@inline(__always)
private func transposeRows(_ dst: UnsafeMutablePointer<Float>, ld: Int, _ src: UnsafePointer<Float>, lds: Int,
                           rows: Int, columns: Int, paddedRows: Int) {
    for column in 0..<columns {
        let destination = dst + column * ld
        var source = src + column
        for row in 0..<rows {
            destination[row] = source.pointee
            source += lds
        }
        if paddedRows > rows { (destination + rows).update(repeating: 0, count: paddedRows - rows) }
    }
}

/// out[i, j] = scale * sum over e < depth of a[i, e] * bt[e, j], for i < rows and j < columns8
/// (a multiple of 8). bt is [depth, ldb]. Register blocks of six rows by sixteen columns:
/// twelve accumulators (an FMA's latency times its throughput is eight, so twelve chains
/// keep both FMA units busy), two loads of bt and six broadcasts of a per step of e; then
/// blocks of one row.
@inline(__always)
private func scoresKernel(_ out: UnsafeMutablePointer<Float>, ldo: Int, _ a: UnsafePointer<Float>, lda: Int,
                          _ bt: UnsafePointer<Float>, ldb: Int, rows: Int, columns8: Int, depth: Int, scale: Float) {
    var i = 0
    while i + 6 <= rows {
        let a0 = a + i * lda, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda, a4 = a3 + lda, a5 = a4 + lda
        let o0 = out + i * ldo, o1 = o0 + ldo, o2 = o1 + ldo, o3 = o2 + ldo, o4 = o3 + ldo, o5 = o4 + ldo
        var j = 0
        while j + 16 <= columns8 {
            var c00 = Float8(), c01 = Float8(), c10 = Float8(), c11 = Float8(), c20 = Float8(), c21 = Float8()
            var c30 = Float8(), c31 = Float8(), c40 = Float8(), c41 = Float8(), c50 = Float8(), c51 = Float8()
            var b = bt + j
            for e in 0..<depth {
                let b0 = load8(b), b1 = load8(b + 8)
                var x = Float8(repeating: a0[e]); c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
                x = Float8(repeating: a1[e]); c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
                x = Float8(repeating: a2[e]); c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
                x = Float8(repeating: a3[e]); c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
                x = Float8(repeating: a4[e]); c40 = c40.addingProduct(x, b0); c41 = c41.addingProduct(x, b1)
                x = Float8(repeating: a5[e]); c50 = c50.addingProduct(x, b0); c51 = c51.addingProduct(x, b1)
                b += ldb
            }
            store8(c00 * scale, o0 + j); store8(c01 * scale, o0 + j + 8)
            store8(c10 * scale, o1 + j); store8(c11 * scale, o1 + j + 8)
            store8(c20 * scale, o2 + j); store8(c21 * scale, o2 + j + 8)
            store8(c30 * scale, o3 + j); store8(c31 * scale, o3 + j + 8)
            store8(c40 * scale, o4 + j); store8(c41 * scale, o4 + j + 8)
            store8(c50 * scale, o5 + j); store8(c51 * scale, o5 + j + 8)
            j += 16
        }
        if j < columns8 {
            var c0 = Float8(), c1 = Float8(), c2 = Float8(), c3 = Float8(), c4 = Float8(), c5 = Float8()
            var b = bt + j
            for e in 0..<depth {
                let b0 = load8(b)
                c0 = c0.addingProduct(Float8(repeating: a0[e]), b0)
                c1 = c1.addingProduct(Float8(repeating: a1[e]), b0)
                c2 = c2.addingProduct(Float8(repeating: a2[e]), b0)
                c3 = c3.addingProduct(Float8(repeating: a3[e]), b0)
                c4 = c4.addingProduct(Float8(repeating: a4[e]), b0)
                c5 = c5.addingProduct(Float8(repeating: a5[e]), b0)
                b += ldb
            }
            store8(c0 * scale, o0 + j); store8(c1 * scale, o1 + j); store8(c2 * scale, o2 + j)
            store8(c3 * scale, o3 + j); store8(c4 * scale, o4 + j); store8(c5 * scale, o5 + j)
        }
        i += 6
    }
    while i < rows {
        let a0 = a + i * lda, o0 = out + i * ldo
        var j = 0
        while j + 16 <= columns8 {
            var c0 = Float8(), c1 = Float8()
            var b = bt + j
            for e in 0..<depth {
                let x = Float8(repeating: a0[e])
                c0 = c0.addingProduct(x, load8(b))
                c1 = c1.addingProduct(x, load8(b + 8))
                b += ldb
            }
            store8(c0 * scale, o0 + j); store8(c1 * scale, o0 + j + 8)
            j += 16
        }
        if j < columns8 {
            var c0 = Float8()
            var b = bt + j
            for e in 0..<depth {
                c0 = c0.addingProduct(Float8(repeating: a0[e]), load8(b))
                b += ldb
            }
            store8(c0 * scale, o0 + j)
        }
        i += 1
    }
}

/// out[i, 0..<width] = (or +=) alpha * sum over j < inner of p(i, j) * v[j, 0..<width], for
/// i < rows, where p(i, j) = p[i * rowStride + j * innerStride]: a row-major block
/// (innerStride 1) or the transpose of one (rowStride 1), read in place. `rowScale`, when
/// given, multiplies row i by rowScale[i] as well (eval-mode softmax normalisation).
/// Columns in blocks of 16 with six rows at a time (twelve accumulators, two loads of v and
/// six broadcasts per step), then blocks of 8, then single columns.
private func weightedRowsKernel(_ out: UnsafeMutablePointer<Float>, ldo: Int, _ p: UnsafePointer<Float>, rowStride: Int, innerStride: Int,
                                _ v: UnsafePointer<Float>, ldv: Int, rows: Int, inner: Int, width: Int, alpha: Float = 1,
                                rowScale: UnsafePointer<Float>? = nil, accumulate: Bool) {
    @inline(__always) func put(_ value: Float8, _ row: Int, _ destination: UnsafeMutablePointer<Float>) {
        var scaled = alpha == 1 ? value : value * alpha
        if let rowScale { scaled *= rowScale[row] }
        store8(accumulate ? load8(destination) + scaled : scaled, destination)
    }
    var w = 0
    while w + 16 <= width {
        var i = 0
        while i + 6 <= rows {
            var p0 = p + i * rowStride
            let step = rowStride
            var c00 = Float8(), c01 = Float8(), c10 = Float8(), c11 = Float8(), c20 = Float8(), c21 = Float8()
            var c30 = Float8(), c31 = Float8(), c40 = Float8(), c41 = Float8(), c50 = Float8(), c51 = Float8()
            var row = v + w
            for _ in 0..<inner {
                let v0 = load8(row), v1 = load8(row + 8)
                var x = Float8(repeating: p0[0]); c00 = c00.addingProduct(x, v0); c01 = c01.addingProduct(x, v1)
                x = Float8(repeating: p0[step]); c10 = c10.addingProduct(x, v0); c11 = c11.addingProduct(x, v1)
                x = Float8(repeating: p0[2 * step]); c20 = c20.addingProduct(x, v0); c21 = c21.addingProduct(x, v1)
                x = Float8(repeating: p0[3 * step]); c30 = c30.addingProduct(x, v0); c31 = c31.addingProduct(x, v1)
                x = Float8(repeating: p0[4 * step]); c40 = c40.addingProduct(x, v0); c41 = c41.addingProduct(x, v1)
                x = Float8(repeating: p0[5 * step]); c50 = c50.addingProduct(x, v0); c51 = c51.addingProduct(x, v1)
                row += ldv
                p0 += innerStride
            }
            let o0 = out + i * ldo + w
            put(c00, i, o0); put(c01, i, o0 + 8)
            put(c10, i + 1, o0 + ldo); put(c11, i + 1, o0 + ldo + 8)
            put(c20, i + 2, o0 + 2 * ldo); put(c21, i + 2, o0 + 2 * ldo + 8)
            put(c30, i + 3, o0 + 3 * ldo); put(c31, i + 3, o0 + 3 * ldo + 8)
            put(c40, i + 4, o0 + 4 * ldo); put(c41, i + 4, o0 + 4 * ldo + 8)
            put(c50, i + 5, o0 + 5 * ldo); put(c51, i + 5, o0 + 5 * ldo + 8)
            i += 6
        }
        while i < rows {
            var p0 = p + i * rowStride
            var c0 = Float8(), c1 = Float8()
            var row = v + w
            for _ in 0..<inner {
                let x = Float8(repeating: p0.pointee)
                c0 = c0.addingProduct(x, load8(row))
                c1 = c1.addingProduct(x, load8(row + 8))
                row += ldv
                p0 += innerStride
            }
            let o0 = out + i * ldo + w
            put(c0, i, o0); put(c1, i, o0 + 8)
            i += 1
        }
        w += 16
    }
    while w + 8 <= width {
        for i in 0..<rows {
            var p0 = p + i * rowStride
            var c0 = Float8()
            var row = v + w
            for _ in 0..<inner {
                c0 = c0.addingProduct(Float8(repeating: p0.pointee), load8(row))
                row += ldv
                p0 += innerStride
            }
            put(c0, i, out + i * ldo + w)
        }
        w += 8
    }
    while w < width {
        for i in 0..<rows {
            let p0 = p + i * rowStride
            var total: Float = 0
            for j in 0..<inner { total = total.addingProduct(p0[j * innerStride], v[j * ldv + w]) }
            total *= alpha
            if let rowScale { total *= rowScale[i] }
            out[i * ldo + w] = accumulate ? out[i * ldo + w] + total : total
        }
        w += 1
    }
}

/// p[i, 0..<columns] = softmax of s[i, 0..<columns], rows `lds` and `ldp` apart.
@inline(__always)
private func softmaxRows(_ p: UnsafeMutablePointer<Float>, ldp: Int, _ s: UnsafePointer<Float>, lds: Int, rows: Int, columns: Int) {
    let vectorEnd = columns / 8 * 8
    for row in 0..<rows {
        let input = s + row * lds, output = p + row * ldp
        var maxima = Float8(repeating: -.infinity)
        var column = 0
        while column < vectorEnd {
            let x = load8(input + column)
            maxima = maxima.replacing(with: x, where: x .> maxima)
            column += 8
        }
        var maximum = maxima.max()
        while column < columns { maximum = max(maximum, input[column]); column += 1 }
        var sum = Float8()
        column = 0
        while column < vectorEnd {
            let value = exp8Inline(load8(input + column) - maximum)
            store8(value, output + column)
            sum += value
            column += 8
        }
        var total = sum.sum()
        while column < columns {
            let value = expScalar(input[column] - maximum)
            output[column] = value
            total += value
            column += 1
        }
        let inverse = 1 / total
        column = 0
        while column < vectorEnd { store8(load8(output + column) * inverse, output + column); column += 8 }
        while column < columns { output[column] *= inverse; column += 1 }
    }
}

/// dp[i, j] = scale * p[i, j] * (dp[i, j] - sum over the row of p * dp), in place: softmax
/// backward in O(columns) per row. The row sum is divided by the row's sum of p (1 up to
/// rounding), which makes every row of the result sum to 0 up to rounding, as the exact
/// gradient does: a key bias then gets (almost exactly) the zero gradient it should.
@inline(__always)
private func softmaxRowsBackwardInPlace(_ dp: UnsafeMutablePointer<Float>, ld: Int, _ p: UnsafePointer<Float>, ldp: Int,
                                        rows: Int, columns: Int, scale: Float) {
    let vectorEnd = columns / 8 * 8
    for row in 0..<rows {
        let gradient = dp + row * ld, probability = p + row * ldp
        var dots = Float8(), masses = Float8()
        var column = 0
        while column < vectorEnd {
            let weight = load8(probability + column)
            dots = dots.addingProduct(weight, load8(gradient + column))
            masses += weight
            column += 8
        }
        var dot = dots.sum(), mass = masses.sum()
        while column < columns { dot += probability[column] * gradient[column]; mass += probability[column]; column += 1 }
        dot /= mass
        column = 0
        while column < vectorEnd {
            store8(load8(probability + column) * (load8(gradient + column) - dot) * scale, gradient + column)
            column += 8
        }
        while column < columns { gradient[column] = probability[column] * (gradient[column] - dot) * scale; column += 1 }
    }
}
