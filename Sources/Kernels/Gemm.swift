// Matrix multiply: every GEMM in Polyhead goes through here (OpenBLAS cblas_sgemm).
//
// Dimension legend: M rows of the result, N columns of the result, K the shared dimension.
// All matrices are row-major; `ld*` is the distance in floats between consecutive rows, so a
// column block of a wider matrix (one attention head inside [tokens, 3 * hidden]) is passed
// as a pointer to its first element plus the wide row length.

import COpenBLAS

/// C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C[M,N], on the calling thread's BLAS.
///
/// op(A) is A[M,K] (leading dimension lda), or A[K,M] read transposed when `transposeA`;
/// likewise op(B) is B[K,N] or B[N,K] read transposed.
@inline(__always)
public func gemm(
    _ c: UnsafeMutablePointer<Float>, ldc: Int,
    _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
    _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0
) {
    guard m > 0, n > 0 else { return }
    guard k > 0 else {
        // OpenBLAS would still scale C by beta; keep the same meaning without calling it.
        if beta != 1 {
            for row in 0..<m { for column in 0..<n { c[row * ldc + column] *= beta } }
        }
        return
    }
    KernelThreads.ensureConfigured()
    cblas_sgemm(
        CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Same contract as `gemm`, split across Polyhead's workers by rows or by columns of C. Each
/// piece is an independent single-threaded BLAS call, and each call packs its own copy of the
/// operand it shares with the other pieces: a row split repacks op(B) (k x n) per worker, a
/// column split repacks op(A) (m x k). So C is split along its longer side, which duplicates
/// the smaller operand: for a short batch (m = 448 tokens, n = 1,536 features) the weight is
/// no longer packed twice.
public func parallelGemm(
    _ c: UnsafeMutablePointer<Float>, ldc: Int,
    _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
    _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0
) {
    let workers = KernelThreads.splitCount
    // Below ~2 MFLOP a split costs more in wake-ups than it saves.
    if workers <= 1 || m * n * k < 1 << 20 {
        gemm(c, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
             m: m, n: n, k: k, alpha: alpha, beta: beta)
        return
    }
    if m >= n {
        // Rows of C come from rows of op(A): row r of op(A) starts at a + r*lda, or at
        // column r (a + r) when A is stored transposed.
        KernelThreads.forEachWorker(workers) { worker in
            let start = alignedSplit(m, worker, workers), end = alignedSplit(m, worker + 1, workers)
            guard start < end else { return }
            let aStart = transposeA ? a + start : a + start * lda
            gemm(c + start * ldc, ldc: ldc, aStart, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                 m: end - start, n: n, k: k, alpha: alpha, beta: beta)
        }
    } else {
        KernelThreads.forEachWorker(workers) { worker in
            let start = alignedSplit(n, worker, workers), end = alignedSplit(n, worker + 1, workers)
            guard start < end else { return }
            let bStart = transposeB ? b + start * ldb : b + start
            gemm(c + start, ldc: ldc, a, lda: lda, transposeA: transposeA, bStart, ldb: ldb, transposeB: transposeB,
                 m: m, n: end - start, k: k, alpha: alpha, beta: beta)
        }
    }
}

/// Boundary `index` of `count` split into `parts`, rounded to a multiple of 16 so each piece
/// keeps whole BLAS micro-panels.
@inline(__always)
func alignedSplit(_ count: Int, _ index: Int, _ parts: Int) -> Int {
    if index >= parts { return count }
    let raw = count * index / parts
    return min(count, (raw + 8) / 16 * 16)
}
