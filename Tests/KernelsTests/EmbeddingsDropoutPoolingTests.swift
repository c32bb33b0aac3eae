import XCTest
@testable import Kernels

final class EmbeddingsTests: XCTestCase {
    func testForwardAndBackwardMatchReference() {
        var random = TestRandom(seed: 14)
        let channels = 6, vocabulary = 10, positionsCount = 7, types = 2, tokens = 9
        let word = random.floats(vocabulary * channels), position = random.floats(positionsCount * channels), type = random.floats(types * channels)
        // Token 4 repeats, so the backward must add both rows into the same table row.
        let ids: [Int32] = [1, 4, 4, 9, 0, 2, 4, 7, 3]
        let positions: [Int32] = [0, 1, 2, 3, 0, 1, 2, 3, 4]
        let typeIds: [Int32] = [0, 0, 0, 1, 0, 0, 1, 1, 1]
        var out = [Float](repeating: 0, count: tokens * channels)
        embeddingsForward(&out, tokenIds: ids, positions: positions, tokenTypes: typeIds, wordTable: word, positionTable: position,
                          tokenTypeTable: type, tokens: tokens, channels: channels)
        var expected = [Double]()
        for token in 0..<tokens {
            for channel in 0..<channels {
                expected.append(Double(word[Int(ids[token]) * channels + channel]) + Double(position[Int(positions[token]) * channels + channel])
                                + Double(type[Int(typeIds[token]) * channels + channel]))
            }
        }
        assertClose(out, expected, absolute: 1e-6, "embeddings forward")

        let upstream = random.floats(tokens * channels)
        var dword = [Float](repeating: 0, count: word.count), dposition = [Float](repeating: 0, count: position.count)
        var dtype = [Float](repeating: 0, count: type.count)
        embeddingsBackward(dwordTable: &dword, dpositionTable: &dposition, dtokenTypeTable: &dtype, dout: upstream,
                           tokenIds: ids, positions: positions, tokenTypes: typeIds, tokens: tokens, channels: channels)
        func forward(_ w: [Double], _ p: [Double], _ t: [Double]) -> Double {
            var loss = 0.0
            for token in 0..<tokens {
                for channel in 0..<channels {
                    let value = w[Int(ids[token]) * channels + channel] + p[Int(positions[token]) * channels + channel] + t[Int(typeIds[token]) * channels + channel]
                    loss += value * Double(upstream[token * channels + channel])
                }
            }
            return loss
        }
        assertClose(dword, numericalGradient(word.doubles) { forward($0, position.doubles, type.doubles) }, absolute: 1e-5, "dword")
        assertClose(dposition, numericalGradient(position.doubles) { forward(word.doubles, $0, type.doubles) }, absolute: 1e-5, "dposition")
        assertClose(dtype, numericalGradient(type.doubles) { forward(word.doubles, position.doubles, $0) }, absolute: 1e-5, "dtype")
        XCTAssertEqual(dword[5 * channels..<6 * channels].allSatisfy { $0 == 0 }, true, "unused rows get no gradient")
    }
}

final class DropoutTests: XCTestCase {
    func testMaskIsSeededRateIsRightAndStreamsDiffer() {
        let count = 200_001
        var first = [UInt8](repeating: 0, count: count), again = first, otherSeed = first, otherStream = first
        dropoutMask(&first, count: count, probability: 0.1, seed: 42, stream: 3)
        dropoutMask(&again, count: count, probability: 0.1, seed: 42, stream: 3)
        dropoutMask(&otherSeed, count: count, probability: 0.1, seed: 43, stream: 3)
        dropoutMask(&otherStream, count: count, probability: 0.1, seed: 42, stream: 4)
        XCTAssertEqual(first, again, "same seed and stream give the same mask")
        XCTAssertNotEqual(first, otherSeed)
        XCTAssertNotEqual(first, otherStream)
        let dropped = Double(first.filter { $0 == 0 }.count) / Double(count)
        // 0.1 +- 5 standard deviations of a binomial with n = 200001.
        XCTAssertEqual(dropped, 0.1, accuracy: 5 * (0.09 / Double(count)).squareRoot())
        var none = [UInt8](repeating: 0, count: 1000)
        dropoutMask(&none, count: 1000, probability: 0, seed: 1, stream: 1)
        XCTAssertTrue(none.allSatisfy { $0 == 1 }, "p = 0 keeps everything")
    }

    func testForwardAndBackwardUseTheMask() {
        var random = TestRandom(seed: 15)
        let count = 1000
        let input = random.floats(count), residual = random.floats(count), upstream = random.floats(count)
        var mask = [UInt8](repeating: 0, count: count)
        dropoutMask(&mask, count: count, probability: 0.25, seed: 7, stream: 0)
        let scale: Float = 1 / 0.75
        var out = [Float](repeating: 0, count: count)
        dropoutResidualForward(&out, input, mask: mask, scale: scale, residual: residual, count: count)
        let expected = (0..<count).map { Double(mask[$0] != 0 ? input[$0] * scale : 0) + Double(residual[$0]) }
        assertClose(out, expected, absolute: 1e-6, "dropout + residual forward")
        let start = random.floats(count)
        var gradient = start
        dropoutBackward(&gradient, upstream, mask: mask, scale: scale, count: count)
        let expectedGradient = (0..<count).map { Double(start[$0]) + Double(mask[$0] != 0 ? upstream[$0] * scale : 0) }
        assertClose(gradient, expectedGradient, absolute: 1e-6, "dropout backward")
    }
}

final class PoolingTests: XCTestCase {
    func testMeanAndClsPoolingForwardBackward() {
        var random = TestRandom(seed: 16)
        let offsets = [0, 2, 7, 8], channels = 5
        let hidden = random.floats(8 * channels), upstream = random.floats(3 * channels)
        var mean = [Float](repeating: 0, count: 3 * channels), cls = mean
        meanPoolForward(&mean, hidden, sequenceOffsets: offsets, channels: channels)
        clsPoolForward(&cls, hidden, sequenceOffsets: offsets, channels: channels)
        func referenceMean(_ h: [Double]) -> [Double] {
            (0..<3).flatMap { sequence in
                (0..<channels).map { channel in
                    (offsets[sequence]..<offsets[sequence + 1]).reduce(0.0) { $0 + h[$1 * channels + channel] } / Double(offsets[sequence + 1] - offsets[sequence])
                }
            }
        }
        func referenceCls(_ h: [Double]) -> [Double] {
            (0..<3).flatMap { sequence in (0..<channels).map { h[offsets[sequence] * channels + $0] } }
        }
        assertClose(mean, referenceMean(hidden.doubles), absolute: 1e-6, "mean pool")
        assertClose(cls, referenceCls(hidden.doubles), absolute: 0, "cls pool")
        var dMean = [Float](repeating: 0, count: hidden.count), dCls = dMean
        meanPoolBackward(&dMean, upstream, sequenceOffsets: offsets, channels: channels)
        clsPoolBackward(&dCls, upstream, sequenceOffsets: offsets, channels: channels)
        assertClose(dMean, numericalGradient(hidden.doubles) { dot(referenceMean($0), upstream.doubles) }, absolute: 1e-6, "mean pool backward")
        assertClose(dCls, numericalGradient(hidden.doubles) { dot(referenceCls($0), upstream.doubles) }, absolute: 1e-6, "cls pool backward")
    }

    func testNormalizeRows() {
        var rows: [Float] = [3, 4, 0, 0, 0, 0]
        normalizeRows(&rows, rows: 2, channels: 3)
        XCTAssertEqual(rows, [0.6, 0.8, 0, 0, 0, 0])
    }
}
