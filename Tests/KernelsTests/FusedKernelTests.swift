import Foundation
import XCTest
@testable import Kernels

/// The fused kernels of the speed work against plain references: attention's register-blocked
/// paths (head sizes 32, 24 and 12 take the 16-wide, 8-wide and scalar column paths; lengths
/// that are not multiples of 6 or 8 take the row and column tails), residual + dropout +
/// LayerNorm, activation + bias backward, dropout masks and the worker pool.
final class FusedKernelTests: XCTestCase {
    override func tearDown() {
        KernelThreads.configure()
        super.tearDown()
    }

    /// Attention in Double: out and the probabilities, per sequence and head.
    func naiveAttention(_ qkv: [Double], offsets: [Int], channels c: Int, heads: Int, mask: [UInt8]?, scale dropoutScale: Double) -> [Double] {
        let d = c / heads
        var out = [Double](repeating: 0, count: (offsets.last ?? 0) * c)
        var base = 0
        for sequence in 0..<(offsets.count - 1) {
            let start = offsets[sequence], t = offsets[sequence + 1] - start
            for head in 0..<heads {
                for query in 0..<t {
                    var scores = [Double](repeating: 0, count: t)
                    for key in 0..<t {
                        var total = 0.0
                        for e in 0..<d { total += qkv[(start + query) * 3 * c + head * d + e] * qkv[(start + key) * 3 * c + c + head * d + e] }
                        scores[key] = total / Double(d).squareRoot()
                    }
                    let maximum = scores.max() ?? 0
                    let exps = scores.map { Foundation.exp($0 - maximum) }
                    let sum = exps.reduce(0, +)
                    for e in 0..<d {
                        var total = 0.0
                        for key in 0..<t {
                            var weight = exps[key] / sum
                            if let mask { weight = mask[base + query * t + key] != 0 ? weight * dropoutScale : 0 }
                            total += weight * qkv[(start + key) * 3 * c + 2 * c + head * d + e]
                        }
                        out[(start + query) * c + head * d + e] = total
                    }
                }
                base += t * t
            }
        }
        return out
    }

    func testAttentionMatchesNaiveForHeadSizesAndLengthsThatTakeEveryPath() {
        var random = TestRandom(seed: 21)
        for (channels, heads) in [(64, 2), (48, 2), (24, 2)] {
            let offsets = [0, 13, 40, 41, 70]
            let tokens = offsets.last!
            let qkv = random.floats(tokens * 3 * channels, -1.5, 1.5)
            let count = attentionProbabilityOffsets(sequenceOffsets: offsets, heads: heads).last!
            var mask = [UInt8](repeating: 0, count: count)
            dropoutMask(&mask, count: count, probability: 0.2, seed: 3, stream: 9)
            for useDropout in [false, true] {
                let scale: Float = useDropout ? 1 / 0.8 : 1
                var saved = [Float](repeating: 0, count: count), out = [Float](repeating: 0, count: tokens * channels)
                attentionForward(&out, probabilities: &saved, dropoutMask: useDropout ? mask : nil, dropoutScale: scale,
                                 qkv: qkv, sequenceOffsets: offsets, channels: channels, heads: heads)
                let expected = naiveAttention(qkv.doubles, offsets: offsets, channels: channels, heads: heads,
                                              mask: useDropout ? mask : nil, scale: Double(scale))
                assertClose(out, expected, absolute: 2e-5, relative: 1e-4, "attention D=\(channels / heads) dropout \(useDropout)")
            }
        }
    }

    func testAttentionBackwardMatchesFiniteDifferencesOnTheFastPaths() {
        var random = TestRandom(seed: 22)
        for (channels, heads) in [(32, 1), (24, 2)] {
            let offsets = [0, 7, 16]
            let tokens = offsets.last!
            let qkv = random.floats(tokens * 3 * channels, -1, 1), upstream = random.floats(tokens * channels)
            let count = attentionProbabilityOffsets(sequenceOffsets: offsets, heads: heads).last!
            var mask = [UInt8](repeating: 0, count: count)
            dropoutMask(&mask, count: count, probability: 0.25, seed: 4, stream: 2)
            for useDropout in [false, true] {
                let scale: Float = useDropout ? 1 / 0.75 : 1
                let maskArgument: [UInt8]? = useDropout ? mask : nil
                var saved = [Float](repeating: 0, count: count), out = [Float](repeating: 0, count: tokens * channels)
                attentionForward(&out, probabilities: &saved, dropoutMask: maskArgument, dropoutScale: scale,
                                 qkv: qkv, sequenceOffsets: offsets, channels: channels, heads: heads)
                let start = random.floats(qkv.count)
                var dqkv = start
                attentionBackward(&dqkv, dout: upstream, qkv: qkv, probabilities: saved, dropoutMask: maskArgument, dropoutScale: scale,
                                  sequenceOffsets: offsets, channels: channels, heads: heads)
                let numerical = numericalGradient(qkv.doubles) { x in
                    dot(self.naiveAttention(x, offsets: offsets, channels: channels, heads: heads, mask: maskArgument, scale: Double(scale)),
                        upstream.doubles)
                }
                assertClose(dqkv, zip(start, numerical).map { Double($0) + $1 }, absolute: 3e-5, relative: 1e-4,
                            "attention backward D=\(channels / heads) dropout \(useDropout)")
            }
        }
    }

    func testResidualLayerNormMatchesTheUnfusedKernels() {
        var random = TestRandom(seed: 23)
        let rows = 70, channels = 44  // a tail after five 8-wide blocks
        let branch = random.floats(rows * channels, -2, 2), residual = random.floats(rows * channels, 1, 3)
        let weight = random.floats(channels), bias = random.floats(channels)
        var mask = [UInt8](repeating: 0, count: rows * channels)
        dropoutMask(&mask, count: rows * channels, probability: 0.1, seed: 1, stream: 1)
        for useMask in [false, true] {
            let maskArgument: [UInt8]? = useMask ? mask : nil
            let scale: Float = useMask ? 1 / 0.9 : 1
            // Reference: dropout + residual, then LayerNorm.
            var sum = [Float](repeating: 0, count: rows * channels), expected = sum
            var mean = [Float](repeating: 0, count: rows), rstd = mean
            dropoutResidualForward(&sum, branch, mask: maskArgument, scale: scale, residual: residual, count: rows * channels)
            layerNormForward(&expected, mean: &mean, rstd: &rstd, sum, weight: weight, bias: bias, rows: rows, channels: channels, epsilon: 1e-12)
            var fusedSum = [Float](repeating: 0, count: rows * channels), out = fusedSum, evalOut = fusedSum
            var fusedMean = [Float](repeating: 0, count: rows), fusedRstd = fusedMean
            residualLayerNormForward(&out, sum: &fusedSum, mean: &fusedMean, rstd: &fusedRstd, branch: branch, mask: maskArgument, scale: scale,
                                     residual: residual, weight: weight, bias: bias, rows: rows, channels: channels, epsilon: 1e-12)
            XCTAssertEqual(fusedSum, sum, "the kept sum is the unfused one exactly")
            assertClose(out, expected.doubles, absolute: 2e-6, relative: 1e-5, "fused forward, mask \(useMask)")
            assertClose(fusedMean, mean.doubles, absolute: 1e-6, relative: 1e-6, "mean")
            assertClose(fusedRstd, rstd.doubles, absolute: 1e-6, relative: 1e-5, "rstd")
            residualLayerNormForward(&evalOut, sum: nil, mean: nil, rstd: nil, branch: branch, mask: maskArgument, scale: scale,
                                     residual: residual, weight: weight, bias: bias, rows: rows, channels: channels, epsilon: 1e-12)
            XCTAssertEqual(evalOut, out, "without a kept sum the output is the same")

            // Backward against layerNormBackward + dropoutBackward.
            let upstream = random.floats(rows * channels)
            var dsum = [Float](repeating: 0, count: rows * channels), dbranchExpected = dsum
            var dweightExpected = random.floats(channels), dbiasExpected = random.floats(channels)
            var dweight = dweightExpected, dbias = dbiasExpected
            layerNormBackward(dinp: &dsum, dweight: &dweightExpected, dbias: &dbiasExpected, dout: upstream, inp: sum, weight: weight,
                              mean: mean, rstd: rstd, rows: rows, channels: channels)
            dropoutBackward(&dbranchExpected, dsum, mask: maskArgument, scale: scale, count: rows * channels)
            var dresidual = random.floats(rows * channels), dbranch = random.floats(rows * channels)  // overwritten
            residualLayerNormBackward(dresidual: &dresidual, dbranch: &dbranch, dweight: &dweight, dbias: &dbias, dout: upstream, sum: fusedSum,
                                      weight: weight, mean: fusedMean, rstd: fusedRstd, mask: maskArgument, scale: scale, rows: rows, channels: channels)
            assertClose(dresidual, dsum.doubles, absolute: 2e-5, relative: 1e-4, "d residual, mask \(useMask)")
            assertClose(dbranch, dbranchExpected.doubles, absolute: 2e-5, relative: 1e-4, "d branch, mask \(useMask)")
            assertClose(dweight, dweightExpected.doubles, absolute: 2e-5, relative: 1e-4, "d weight")
            assertClose(dbias, dbiasExpected.doubles, absolute: 2e-5, relative: 1e-4, "d bias")
            var dbranchOnly = [Float](repeating: 0, count: rows * channels)
            residualLayerNormBackward(dresidual: nil, dbranch: &dbranchOnly, dweight: nil, dbias: nil, dout: upstream, sum: fusedSum,
                                      weight: weight, mean: fusedMean, rstd: fusedRstd, mask: maskArgument, scale: scale, rows: rows, channels: channels)
            XCTAssertEqual(dbranchOnly, dbranch, "without d residual the branch gradient is the same")
        }
    }

    func testActivationBiasBackwardMatchesTheUnfusedKernelsForAnyWorkerCount() {
        var random = TestRandom(seed: 24)
        let rows = 37, columns = 203  // 25 blocks of 8 and a tail of 3
        let input = random.floats(rows * columns, -4, 4), upstream = random.floats(rows * columns)
        for activation in Activation.allCases {
            var expected = [Float](repeating: 0, count: rows * columns)
            activationBackward(&expected, input, upstream, count: rows * columns, activation: activation)
            let startBias = random.floats(columns)
            var expectedBias = startBias
            columnSums(&expectedBias, expected, rows: rows, columns: columns)
            var results: [[Float]] = []
            for workers in [1, 3] {
                KernelThreads.configure(policy: .ownSplit, workers: workers)
                var gradient = random.floats(rows * columns), bias = startBias
                activationBiasBackward(dinp: &gradient, dbias: &bias, input, upstream, rows: rows, columns: columns, activation: activation)
                assertClose(gradient, expected.doubles, absolute: 1e-6, relative: 1e-6, "\(activation) d input")
                assertClose(bias, expectedBias.doubles, absolute: 2e-5, relative: 1e-5, "\(activation) d bias")
                results.append(bias)
            }
            XCTAssertEqual(results[0], results[1], "\(activation): the bias gradient does not depend on the worker count")
        }
    }

    func testDropoutMaskIsTheSameForAnyWorkerCountAndTail() {
        let count = 100_003
        var masks: [[UInt8]] = []
        for workers in [1, 2, 5] {
            KernelThreads.configure(policy: .ownSplit, workers: workers)
            var mask = [UInt8](repeating: 7, count: count)
            dropoutMask(&mask, count: count, probability: 0.3, seed: 11, stream: 2)
            XCTAssertTrue(mask.allSatisfy { $0 <= 1 })
            masks.append(mask)
        }
        XCTAssertEqual(masks[0], masks[1])
        XCTAssertEqual(masks[0], masks[2])
        let kept = Double(masks[0].reduce(0) { $0 + Int($1) }) / Double(count)
        XCTAssertEqual(kept, 0.7, accuracy: 5 * (0.21 / Double(count)).squareRoot())
        // Neighbouring seeds and streams are unrelated.
        var other = [UInt8](repeating: 0, count: count)
        dropoutMask(&other, count: count, probability: 0.3, seed: 12, stream: 2)
        let agreement = Double(zip(masks[0], other).filter { $0 == $1 }.count) / Double(count)
        XCTAssertEqual(agreement, 0.7 * 0.7 + 0.3 * 0.3, accuracy: 0.01)
    }

    func testWorkerPoolRunsEveryWorkerOnceAndNestedJobsSerially() {
        KernelThreads.configure(policy: .ownSplit, workers: 3)
        for _ in 0..<200 {
            var seen = [Int](repeating: 0, count: 3)
            seen.withUnsafeMutableBufferPointer { counts in
                let base = counts.baseAddress!
                KernelThreads.forEachWorker(3) { worker in
                    base[worker] += 1
                    // A job inside a job runs on the calling worker, all of it.
                    var inner = 0
                    KernelThreads.forEachWorker(2) { _ in inner += 1 }
                    if inner != 2 { base[worker] += 100 }
                }
            }
            XCTAssertEqual(seen, [1, 1, 1])
        }
        var items = [Int](repeating: 0, count: 50)
        items.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            KernelThreads.dynamicItems(50) { item, worker in
                XCTAssertLessThan(worker, 3)
                base[item] += 1
            }
        }
        XCTAssertEqual(items, [Int](repeating: 1, count: 50))
    }

    /// The write-instead-of-accumulate forms equal accumulating into zeros.
    func testOverwritingBackwardsEqualAccumulatingIntoZeros() {
        var random = TestRandom(seed: 25)
        let offsets = [0, 9, 30], channels = 64, heads = 2, tokens = 30
        let qkv = random.floats(tokens * 3 * channels), upstream = random.floats(tokens * channels)
        let count = attentionProbabilityOffsets(sequenceOffsets: offsets, heads: heads).last!
        var saved = [Float](repeating: 0, count: count), out = [Float](repeating: 0, count: tokens * channels)
        attentionForward(&out, probabilities: &saved, dropoutMask: nil, dropoutScale: 1, qkv: qkv, sequenceOffsets: offsets, channels: channels, heads: heads)
        var accumulated = [Float](repeating: 0, count: qkv.count), written = random.floats(qkv.count)
        attentionBackward(&accumulated, dout: upstream, qkv: qkv, probabilities: saved, dropoutMask: nil, dropoutScale: 1,
                          sequenceOffsets: offsets, channels: channels, heads: heads)
        attentionBackward(&written, dout: upstream, qkv: qkv, probabilities: saved, dropoutMask: nil, dropoutScale: 1,
                          sequenceOffsets: offsets, channels: channels, heads: heads, overwrite: true)
        XCTAssertEqual(written, accumulated)

        let rows = 50, inChannels = 24, outChannels = 40
        let input = random.floats(rows * inChannels), weight = random.floats(outChannels * inChannels), dout = random.floats(rows * outChannels)
        var dinpAccumulated = [Float](repeating: 0, count: rows * inChannels), dinpWritten = random.floats(rows * inChannels)
        linearBackward(dinp: &dinpAccumulated, dweight: nil, dbias: nil, dout: dout, inp: input, weight: weight,
                       rows: rows, inChannels: inChannels, outChannels: outChannels)
        linearBackward(dinp: &dinpWritten, dweight: nil, dbias: nil, dout: dout, inp: input, weight: weight,
                       rows: rows, inChannels: inChannels, outChannels: outChannels, overwriteInput: true)
        assertClose(dinpWritten, dinpAccumulated.doubles, absolute: 1e-6, relative: 1e-6, "linear d input overwritten")
    }

    /// Embedding gradients split by channels (many tokens) equal the serial sums.
    func testEmbeddingBackwardSplitByChannels() {
        var random = TestRandom(seed: 26)
        let tokens = 600, channels = 20, vocabulary = 7
        let ids = (0..<tokens).map { _ in Int32(random.integer(below: vocabulary)) }
        let positions = (0..<tokens).map { Int32($0 % 11) }, types = (0..<tokens).map { Int32($0 % 2) }
        let dout = random.floats(tokens * channels)
        var expectedWord = [Double](repeating: 0, count: vocabulary * channels)
        for token in 0..<tokens { for channel in 0..<channels { expectedWord[Int(ids[token]) * channels + channel] += Double(dout[token * channels + channel]) } }
        for workers in [1, 3] {
            KernelThreads.configure(policy: .ownSplit, workers: workers)
            var word = [Float](repeating: 0, count: vocabulary * channels)
            var position = [Float](repeating: 0, count: 11 * channels), type = [Float](repeating: 0, count: 2 * channels)
            embeddingsBackward(dwordTable: &word, dpositionTable: &position, dtokenTypeTable: &type, dout: dout,
                               tokenIds: ids, positions: positions, tokenTypes: types, tokens: tokens, channels: channels)
            assertClose(word, expectedWord, absolute: 1e-4, relative: 1e-5, "word table gradient, \(workers) workers")
            XCTAssertEqual(type.reduce(0, +), dout.reduce(0, +), accuracy: 1e-2)
        }
    }
}
