// Fully connected layer in PyTorch's layout (weight [out, in]), forward and backward.
//
// Dimension legend: N rows (tokens), C input channels, OC output channels.

/// out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC] (bias may be nil).
public func linearForward(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, rows: Int, inChannels: Int, outChannels: Int
) {
    if let bias {
        // Seed every row with the bias and let the GEMM accumulate onto it (beta = 1).
        KernelThreads.parallelRanges(rows, minimumChunk: 256) { range in
            for row in range { (out + row * outChannels).update(from: bias, count: outChannels) }
        }
    }
    parallelGemm(out, ldc: outChannels, inp, lda: inChannels, transposeA: false, weight, ldb: inChannels, transposeB: true,
                 m: rows, n: outChannels, k: inChannels, beta: bias == nil ? 0 : 1)
}

/// Backward of `linearForward`, each output optional (nil: not wanted):
///   dinp[N,C] += dout[N,OC] @ weight[OC,C]   (= when `overwriteInput`: no zeroing pass first)
///   dweight[OC,C] += dout^T @ inp
///   dbias[OC] += column sums of dout
public func linearBackward(
    dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?,
    dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    rows: Int, inChannels: Int, outChannels: Int, overwriteInput: Bool = false
) {
    if let dinp {
        // beta 0: each worker's BLAS call clears its own part of dinp, in parallel, instead of
        // the caller zeroing all of it on one thread.
        parallelGemm(dinp, ldc: inChannels, dout, lda: outChannels, transposeA: false, weight, ldb: inChannels, transposeB: false,
                     m: rows, n: inChannels, k: outChannels, beta: overwriteInput ? 0 : 1)
    }
    if let dweight {
        parallelGemm(dweight, ldc: inChannels, dout, lda: outChannels, transposeA: true, inp, ldb: inChannels, transposeB: false,
                     m: outChannels, n: inChannels, k: rows, beta: 1)
    }
    if let dbias { columnSums(dbias, dout, rows: rows, columns: outChannels) }
}

/// sums[columns] += sum over rows of matrix[rows, columns]; columns split across workers.
///
/// Accumulated in Double: a bias gradient sums thousands of rows whose values often cancel
/// (a key bias's gradient is exactly zero in exact arithmetic), and float partial sums leave
/// rounding noise of the size of the terms times sqrt(rows). The cost is a few percent of
/// one pass over the matrix.
public func columnSums(_ sums: UnsafeMutablePointer<Float>, _ matrix: UnsafePointer<Float>, rows: Int, columns: Int) {
    let blocks = columns / 8
    KernelThreads.parallelRanges(blocks, minimumChunk: 16) { range in
        for block in range {
            var low = SIMD4<Double>(), high = SIMD4<Double>()
            for row in 0..<rows {
                let values = load8(matrix + row * columns + block * 8)
                low += SIMD4<Double>(Double(values[0]), Double(values[1]), Double(values[2]), Double(values[3]))
                high += SIMD4<Double>(Double(values[4]), Double(values[5]), Double(values[6]), Double(values[7]))
            }
            let destination = sums + block * 8
            for lane in 0..<4 {
                destination[lane] = Float(Double(destination[lane]) + low[lane])
                destination[lane + 4] = Float(Double(destination[lane + 4]) + high[lane])
            }
        }
    }
    for column in (blocks * 8)..<columns {
        var total: Double = 0
        for row in 0..<rows { total += Double(matrix[row * columns + column]) }
        sums[column] = Float(Double(sums[column]) + total)
    }
}
