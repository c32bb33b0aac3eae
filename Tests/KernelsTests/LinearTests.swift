import XCTest
@testable import Kernels

final class LinearTests: XCTestCase {
    func referenceLinear(_ x: [Double], _ w: [Double], _ b: [Double], rows: Int, inChannels: Int, outChannels: Int) -> [Double] {
        var out = [Double](repeating: 0, count: rows * outChannels)
        for row in 0..<rows {
            for output in 0..<outChannels {
                var total = b[output]
                for input in 0..<inChannels { total += x[row * inChannels + input] * w[output * inChannels + input] }
                out[row * outChannels + output] = total
            }
        }
        return out
    }

    func testForwardMatchesNaiveWithAndWithoutBias() {
        var random = TestRandom(seed: 7)
        // Large enough that parallelGemm splits the work.
        let rows = 300, inChannels = 70, outChannels = 90
        let x = random.floats(rows * inChannels), w = random.floats(outChannels * inChannels), b = random.floats(outChannels)
        var out = [Float](repeating: 9, count: rows * outChannels)
        linearForward(&out, x, weight: w, bias: b, rows: rows, inChannels: inChannels, outChannels: outChannels)
        assertClose(out, referenceLinear(x.doubles, w.doubles, b.doubles, rows: rows, inChannels: inChannels, outChannels: outChannels),
                    absolute: 1e-5, relative: 1e-5, "linear with bias")
        linearForward(&out, x, weight: w, bias: nil, rows: rows, inChannels: inChannels, outChannels: outChannels)
        assertClose(out, referenceLinear(x.doubles, w.doubles, [Double](repeating: 0, count: outChannels), rows: rows, inChannels: inChannels, outChannels: outChannels),
                    absolute: 1e-5, relative: 1e-5, "linear without bias")
    }

    func testBackwardMatchesFiniteDifferencesAndAccumulates() {
        var random = TestRandom(seed: 8)
        let rows = 13, inChannels = 11, outChannels = 17
        let x = random.floats(rows * inChannels), w = random.floats(outChannels * inChannels), b = random.floats(outChannels)
        let upstream = random.floats(rows * outChannels)
        let startX = random.floats(x.count), startW = random.floats(w.count), startB = random.floats(b.count)
        var dx = startX, dw = startW, db = startB
        linearBackward(dinp: &dx, dweight: &dw, dbias: &db, dout: upstream, inp: x, weight: w, rows: rows, inChannels: inChannels, outChannels: outChannels)
        func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
            dot(referenceLinear(x, w, b, rows: rows, inChannels: inChannels, outChannels: outChannels), upstream.doubles)
        }
        assertClose(dx, zip(startX, numericalGradient(x.doubles) { loss($0, w.doubles, b.doubles) }).map { Double($0) + $1 }, absolute: 1e-5, relative: 1e-5, "dinp")
        assertClose(dw, zip(startW, numericalGradient(w.doubles) { loss(x.doubles, $0, b.doubles) }).map { Double($0) + $1 }, absolute: 1e-5, relative: 1e-5, "dweight")
        assertClose(db, zip(startB, numericalGradient(b.doubles) { loss(x.doubles, w.doubles, $0) }).map { Double($0) + $1 }, absolute: 1e-5, relative: 1e-5, "dbias")
    }

    func testColumnSumsHandlesTailColumns() {
        var random = TestRandom(seed: 9)
        let rows = 9, columns = 21
        let matrix = random.floats(rows * columns)
        var sums = [Float](repeating: 1, count: columns)
        columnSums(&sums, matrix, rows: rows, columns: columns)
        let expected = (0..<columns).map { column in 1 + (0..<rows).reduce(0.0) { $0 + Double(matrix[$1 * columns + column]) } }
        assertClose(sums, expected, absolute: 1e-5, "columnSums")
    }
}
