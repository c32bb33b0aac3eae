import Foundation
import XCTest
@testable import Kernels

final class AttentionTests: XCTestCase {
    /// Naive attention in Double over packed sequences; `mask` in the probabilities' layout.
    func referenceAttention(_ qkv: [Double], offsets: [Int], channels: Int, heads: Int, mask: [UInt8]?, dropoutScale: Double) -> (out: [Double], probabilities: [Double]) {
        let c = channels, d = channels / heads
        let tokens = offsets.last ?? 0
        var out = [Double](repeating: 0, count: tokens * c)
        var probabilities: [Double] = []
        for sequence in 0..<(offsets.count - 1) {
            let start = offsets[sequence], length = offsets[sequence + 1] - start
            for head in 0..<heads {
                let base = probabilities.count
                for query in 0..<length {
                    var scores = (0..<length).map { key in
                        (0..<d).reduce(0.0) { total, index in
                            total + qkv[(start + query) * 3 * c + head * d + index] * qkv[(start + key) * 3 * c + c + head * d + index]
                        } / Double(d).squareRoot()
                    }
                    let maximum = scores.max() ?? 0
                    scores = scores.map { Foundation.exp($0 - maximum) }
                    let total = scores.reduce(0, +)
                    probabilities += scores.map { $0 / total }
                }
                for query in 0..<length {
                    for index in 0..<d {
                        var total = 0.0
                        for key in 0..<length {
                            var weight = probabilities[base + query * length + key]
                            if let mask { weight = mask[base + query * length + key] != 0 ? weight * dropoutScale : 0 }
                            total += weight * qkv[(start + key) * 3 * c + 2 * c + head * d + index]
                        }
                        out[(start + query) * c + head * d + index] = total
                    }
                }
            }
        }
        return (out, probabilities)
    }

    let offsets = [0, 3, 8, 9, 16]
    let channels = 16, heads = 4

    func testForwardMatchesNaiveInTrainingAndEvalMode() {
        var random = TestRandom(seed: 10)
        let tokens = offsets.last!
        let qkv = random.floats(tokens * 3 * channels, -2, 2)
        let probabilityCount = attentionProbabilityOffsets(sequenceOffsets: offsets, heads: heads).last!
        XCTAssertEqual(probabilityCount, heads * (9 + 25 + 1 + 49))
        var saved = [Float](repeating: 0, count: probabilityCount)
        var trainingOut = [Float](repeating: 0, count: tokens * channels)
        attentionForward(&trainingOut, probabilities: &saved, dropoutMask: nil, dropoutScale: 1, qkv: qkv, sequenceOffsets: offsets, channels: channels, heads: heads)
        let reference = referenceAttention(qkv.doubles, offsets: offsets, channels: channels, heads: heads, mask: nil, dropoutScale: 1)
        assertClose(trainingOut, reference.out, absolute: 1e-5, relative: 1e-5, "attention output")
        assertClose(saved, reference.probabilities, absolute: 1e-6, relative: 1e-5, "saved probabilities")
        var evalOut = [Float](repeating: 0, count: tokens * channels)
        attentionForward(&evalOut, probabilities: nil, dropoutMask: nil, dropoutScale: 1, qkv: qkv, sequenceOffsets: offsets, channels: channels, heads: heads)
        XCTAssertEqual(evalOut, trainingOut, "eval mode computes the same thing")
    }

    func testBackwardMatchesFiniteDifferencesWithAndWithoutDropout() {
        var random = TestRandom(seed: 11)
        let tokens = offsets.last!
        let qkv = random.floats(tokens * 3 * channels, -2, 2)
        let upstream = random.floats(tokens * channels)
        let probabilityCount = attentionProbabilityOffsets(sequenceOffsets: offsets, heads: heads).last!
        var mask = [UInt8](repeating: 0, count: probabilityCount)
        dropoutMask(&mask, count: probabilityCount, probability: 0.3, seed: 5, stream: 1)
        for useDropout in [false, true] {
            let scale: Float = useDropout ? 1 / 0.7 : 1
            var saved = [Float](repeating: 0, count: probabilityCount)
            var out = [Float](repeating: 0, count: tokens * channels)
            let maskArgument: [UInt8]? = useDropout ? mask : nil
            attentionForward(&out, probabilities: &saved, dropoutMask: maskArgument, dropoutScale: scale, qkv: qkv, sequenceOffsets: offsets, channels: channels, heads: heads)
            let reference = referenceAttention(qkv.doubles, offsets: offsets, channels: channels, heads: heads, mask: maskArgument, dropoutScale: Double(scale))
            assertClose(out, reference.out, absolute: 1e-5, relative: 1e-5, "forward, dropout \(useDropout)")
            let start = random.floats(qkv.count)
            var dqkv = start
            attentionBackward(&dqkv, dout: upstream, qkv: qkv, probabilities: saved, dropoutMask: maskArgument, dropoutScale: scale,
                              sequenceOffsets: offsets, channels: channels, heads: heads)
            let numerical = numericalGradient(qkv.doubles) { x in
                dot(self.referenceAttention(x, offsets: self.offsets, channels: self.channels, heads: self.heads, mask: maskArgument, dropoutScale: Double(scale)).out, upstream.doubles)
            }
            assertClose(dqkv, zip(start, numerical).map { Double($0) + $1 }, absolute: 2e-5, relative: 1e-4, "dqkv, dropout \(useDropout)")
        }
    }

    func testSoftmaxBackwardIsTheJacobianProduct() {
        var random = TestRandom(seed: 12)
        let rows = 3, columns = 11
        let scores = random.floats(rows * columns, -3, 3), upstream = random.floats(rows * columns)
        var probabilities = [Float](repeating: 0, count: rows * columns)
        softmaxRowsForward(&probabilities, scores, rows: rows, columns: columns)
        var gradient = [Float](repeating: 0, count: rows * columns)
        softmaxRowsBackward(&gradient, probabilities, upstream, rows: rows, columns: columns)
        let numerical = numericalGradient(scores.doubles) { s in
            var loss = 0.0
            for row in 0..<rows {
                let slice = s[(row * columns)..<((row + 1) * columns)]
                let maximum = slice.max() ?? 0
                let total = slice.reduce(0) { $0 + Foundation.exp($1 - maximum) }
                for column in 0..<columns { loss += Foundation.exp(s[row * columns + column] - maximum) / total * Double(upstream[row * columns + column]) }
            }
            return loss
        }
        assertClose(gradient, numerical, absolute: 1e-6, relative: 1e-4, "softmax backward")
    }

    /// Splitting (sequence, head) pairs over workers must not change any result.
    func testWorkerSplitGivesIdenticalResults() {
        var random = TestRandom(seed: 13)
        let tokens = offsets.last!
        let qkv = random.floats(tokens * 3 * channels)
        let upstream = random.floats(tokens * channels)
        let probabilityCount = attentionProbabilityOffsets(sequenceOffsets: offsets, heads: heads).last!
        func run(workers: Int) -> ([Float], [Float]) {
            KernelThreads.configure(policy: .ownSplit, workers: workers)
            defer { KernelThreads.configure() }
            var saved = [Float](repeating: 0, count: probabilityCount)
            var out = [Float](repeating: 0, count: tokens * channels)
            attentionForward(&out, probabilities: &saved, dropoutMask: nil, dropoutScale: 1, qkv: qkv, sequenceOffsets: offsets, channels: channels, heads: heads)
            var dqkv = [Float](repeating: 0, count: qkv.count)
            attentionBackward(&dqkv, dout: upstream, qkv: qkv, probabilities: saved, dropoutMask: nil, dropoutScale: 1, sequenceOffsets: offsets, channels: channels, heads: heads)
            return (out, dqkv)
        }
        let serial = run(workers: 1), split = run(workers: 3)
        XCTAssertEqual(serial.0, split.0)
        XCTAssertEqual(serial.1, split.1)
    }
}
