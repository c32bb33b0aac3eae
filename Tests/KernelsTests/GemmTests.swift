import XCTest
@testable import Kernels

final class GemmTests: XCTestCase {
    /// Naive reference: C = alpha op(A) op(B) + beta C, row-major with leading dimensions.
    func referenceGemm(_ c: inout [Double], ldc: Int, _ a: [Double], lda: Int, transposeA: Bool, _ b: [Double], ldb: Int, transposeB: Bool,
                       m: Int, n: Int, k: Int, alpha: Double, beta: Double) {
        for row in 0..<m {
            for column in 0..<n {
                var total = 0.0
                for inner in 0..<k {
                    let left = transposeA ? a[inner * lda + row] : a[row * lda + inner]
                    let right = transposeB ? b[column * ldb + inner] : b[inner * ldb + column]
                    total += left * right
                }
                c[row * ldc + column] = alpha * total + beta * c[row * ldc + column]
            }
        }
    }

    func testAllTransposesWithStridesMatchNaive() {
        var random = TestRandom(seed: 1)
        for (transposeA, transposeB) in [(false, false), (false, true), (true, false), (true, true)] {
            let m = 37, n = 29, k = 19
            let lda = (transposeA ? m : k) + 3, ldb = (transposeB ? k : n) + 5, ldc = n + 2
            let a = random.floats((transposeA ? k : m) * lda), b = random.floats((transposeB ? n : k) * ldb)
            var c = random.floats(m * ldc)
            var expected = c.doubles
            referenceGemm(&expected, ldc: ldc, a.doubles, lda: lda, transposeA: transposeA, b.doubles, ldb: ldb, transposeB: transposeB,
                          m: m, n: n, k: k, alpha: 0.5, beta: 2)
            gemm(&c, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.5, beta: 2)
            assertClose(c, expected, absolute: 1e-5, relative: 1e-5, "gemm transposeA=\(transposeA) transposeB=\(transposeB)")
        }
    }

    /// The split across workers (by rows, or by columns when C is wide) gives the same result
    /// as one call, for sizes that are not multiples of the split alignment.
    func testParallelSplitMatchesSingleCall() {
        var random = TestRandom(seed: 2)
        for (m, n, k, transposeA, transposeB) in [(300, 70, 90, false, true), (40, 900, 80, true, false), (130, 130, 100, true, true)] {
            let a = random.floats(m * k), b = random.floats(k * n)
            let lda = transposeA ? m : k, ldb = transposeB ? k : n
            let start = random.floats(m * n)
            var single = start, split = start
            gemm(&single, ldc: n, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB, m: m, n: n, k: k, beta: 1)
            KernelThreads.configure(policy: .ownSplit, workers: 3)
            parallelGemm(&split, ldc: n, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB, m: m, n: n, k: k, beta: 1)
            KernelThreads.configure()
            assertClose(split, single, absolute: 1e-5, relative: 1e-6, "parallelGemm \(m)x\(n)x\(k)")
        }
    }
}
