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
    let vectorEnd = columns / 8 * 8
    for row in 0..<rows {
        let input = s + row * columns, output = p + row * columns
        var maximum = -Float.infinity
        for column in 0..<columns { maximum = max(maximum, input[column]) }
        var sum = Float8()
        var column = 0
        while column < vectorEnd {
            let value = exp8(load8(input + column) - maximum)
            store8(value, output + column)
            sum += value
            column += 8
        }
        var total = sum8(sum)
        while column < columns {
            let value = expScalar(input[column] - maximum)
            output[column] = value
            total += value
            column += 1
        }
        let inverse = 1 / total
        for column in 0..<columns { output[column] *= inverse }
    }
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

/// Splits the (sequence, head) pairs into at most `workers` contiguous groups of similar
/// cost (T^2 each).
private func attentionGroups(sequenceOffsets: [Int], heads: Int, workers: Int) -> ([AttentionItem], [Range<Int>], maxLength: Int) {
    let probabilityOffsets = attentionProbabilityOffsets(sequenceOffsets: sequenceOffsets, heads: heads)
    var items: [AttentionItem] = []
    var maxLength = 0
    var totalCost = 0
    for sequence in 0..<(sequenceOffsets.count - 1) {
        let start = sequenceOffsets[sequence], length = sequenceOffsets[sequence + 1] - start
        maxLength = max(maxLength, length)
        for head in 0..<heads {
            items.append(AttentionItem(start: start, length: length, probabilityOffset: probabilityOffsets[sequence] + head * length * length, head: head))
            totalCost += length * length
        }
    }
    var groups: [Range<Int>] = []
    var groupStart = 0, accumulated = 0
    for (index, item) in items.enumerated() {
        accumulated += item.length * item.length
        let target = totalCost * (groups.count + 1) / max(1, workers)
        if accumulated >= target && groups.count < workers - 1 {
            groups.append(groupStart..<(index + 1))
            groupStart = index + 1
        }
    }
    if groupStart < items.count { groups.append(groupStart..<items.count) }
    return (items, groups, maxLength)
}

/// Forward: for each sequence and head, P = softmax(Q K^T / sqrt(D)), then
/// out = dropout(P) V.
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
    let (items, groups, maxLength) = attentionGroups(sequenceOffsets: sequenceOffsets, heads: heads, workers: KernelThreads.splitCount)
    let scratchSize = maxLength * maxLength
    let scratch = FloatBuffer(count: groups.count * 2 * scratchSize)
    KernelThreads.forEachWorker(groups.count) { group in
        let scores = scratch.pointer + group * 2 * scratchSize
        let dropped = scores + scratchSize
        for item in items[groups[group]] {
            let t = item.length
            let q = qkv + item.start * 3 * c + item.head * d, k = q + c, v = q + 2 * c
            let p = probabilities.map { $0 + item.probabilityOffset } ?? scores
            gemm(p, ldc: t, q, lda: 3 * c, transposeA: false, k, ldb: 3 * c, transposeB: true, m: t, n: t, k: d, alpha: scale)
            softmaxRowsForward(p, p, rows: t, columns: t)
            var weights = UnsafePointer(p)
            if let dropoutMask {
                let mask = dropoutMask + item.probabilityOffset
                for index in 0..<(t * t) { dropped[index] = mask[index] != 0 ? p[index] * dropoutScale : 0 }
                weights = UnsafePointer(dropped)
            }
            gemm(out + item.start * c + item.head * d, ldc: c, weights, lda: t, transposeA: false, v, ldb: 3 * c, transposeB: false,
                 m: t, n: d, k: t)
        }
    }
}

/// Backward of `attentionForward`: dqkv[N, 3C] += gradients for query, key and value, given
/// dout [N, C], the forward's qkv, its saved probabilities and the same dropout mask.
public func attentionBackward(
    _ dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
    qkv: UnsafePointer<Float>, probabilities: UnsafePointer<Float>,
    dropoutMask: UnsafePointer<UInt8>?, dropoutScale: Float,
    sequenceOffsets: [Int], channels: Int, heads: Int
) {
    let c = channels, d = channels / heads
    let scale = 1 / Float(d).squareRoot()
    let (items, groups, maxLength) = attentionGroups(sequenceOffsets: sequenceOffsets, heads: heads, workers: KernelThreads.splitCount)
    let scratchSize = maxLength * maxLength
    let scratch = FloatBuffer(count: groups.count * 3 * scratchSize)
    KernelThreads.forEachWorker(groups.count) { group in
        let dWeights = scratch.pointer + group * 3 * scratchSize
        let dScores = dWeights + scratchSize
        let dropped = dScores + scratchSize
        for item in items[groups[group]] {
            let t = item.length, square = t * t
            let q = qkv + item.start * 3 * c + item.head * d, k = q + c, v = q + 2 * c
            let dq = dqkv + item.start * 3 * c + item.head * d, dk = dq + c, dv = dq + 2 * c
            let dO = dout + item.start * c + item.head * d
            let p = probabilities + item.probabilityOffset
            // d(weights) = dO V^T, weights = dropout(P).
            gemm(dWeights, ldc: t, dO, lda: c, transposeA: false, v, ldb: 3 * c, transposeB: true, m: t, n: t, k: d)
            var weights = p
            if let dropoutMask {
                let mask = dropoutMask + item.probabilityOffset
                for index in 0..<square {
                    let keep = mask[index] != 0
                    dropped[index] = keep ? p[index] * dropoutScale : 0
                    dWeights[index] = keep ? dWeights[index] * dropoutScale : 0
                }
                weights = UnsafePointer(dropped)
            }
            // dV += weights^T dO.
            gemm(dv, ldc: 3 * c, weights, lda: t, transposeA: true, dO, ldb: c, transposeB: false, m: t, n: d, k: t, beta: 1)
            // dS = P * (dP - rowsum(P * dP)); the 1/sqrt(D) of the scores is applied below.
            dScores.update(repeating: 0, count: square)
            softmaxRowsBackward(dScores, p, dWeights, rows: t, columns: t)
            // dQ += scale dS K, dK += scale dS^T Q.
            gemm(dq, ldc: 3 * c, dScores, lda: t, transposeA: false, k, ldb: 3 * c, transposeB: false, m: t, n: d, k: t, alpha: scale, beta: 1)
            gemm(dk, ldc: 3 * c, dScores, lda: t, transposeA: true, q, ldb: 3 * c, transposeB: false, m: t, n: d, k: t, alpha: scale, beta: 1)
        }
    }
}
