import Foundation
import XCTest
@testable import Kernels

final class LayerNormTests: XCTestCase {
    func referenceLayerNorm(_ x: [Double], weight: [Double], bias: [Double], rows: Int, channels: Int, epsilon: Double) -> [Double] {
        var out = [Double](repeating: 0, count: x.count)
        for row in 0..<rows {
            let values = x[(row * channels)..<((row + 1) * channels)]
            let mean = values.reduce(0, +) / Double(channels)
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(channels)
            for channel in 0..<channels {
                out[row * channels + channel] = (x[row * channels + channel] - mean) / (variance + epsilon).squareRoot() * weight[channel] + bias[channel]
            }
        }
        return out
    }

    func testForwardMatchesDoubleReference() {
        var random = TestRandom(seed: 5)
        let rows = 150, channels = 37
        // An offset mean checks the two-pass variance.
        let input = random.floats(rows * channels, 2, 6), weight = random.floats(channels), bias = random.floats(channels)
        var output = [Float](repeating: 0, count: rows * channels)
        var mean = [Float](repeating: 0, count: rows), rstd = [Float](repeating: 0, count: rows)
        layerNormForward(&output, mean: &mean, rstd: &rstd, input, weight: weight, bias: bias, rows: rows, channels: channels, epsilon: 1e-5)
        let expected = referenceLayerNorm(input.doubles, weight: weight.doubles, bias: bias.doubles, rows: rows, channels: channels, epsilon: 1e-5)
        assertClose(output, expected, absolute: 1e-5, relative: 1e-5, "layerNorm forward")
        XCTAssertEqual(Double(mean[0]), input[0..<channels].map(Double.init).reduce(0, +) / Double(channels), accuracy: 1e-5)
    }

    func testBackwardMatchesFiniteDifferences() {
        var random = TestRandom(seed: 6)
        let rows = 130, channels = 9, epsilon = 1e-5
        let input = random.floats(rows * channels), weight = random.floats(channels), bias = random.floats(channels)
        let upstream = random.floats(rows * channels)
        var output = [Float](repeating: 0, count: rows * channels)
        var mean = [Float](repeating: 0, count: rows), rstd = [Float](repeating: 0, count: rows)
        layerNormForward(&output, mean: &mean, rstd: &rstd, input, weight: weight, bias: bias, rows: rows, channels: channels, epsilon: Float(epsilon))
        let startInput = random.floats(rows * channels), startWeight = random.floats(channels), startBias = random.floats(channels)
        var dinp = startInput, dweight = startWeight, dbias = startBias
        layerNormBackward(dinp: &dinp, dweight: &dweight, dbias: &dbias, dout: upstream, inp: input, weight: weight,
                          mean: mean, rstd: rstd, rows: rows, channels: channels)
        let up = upstream.doubles
        func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
            dot(referenceLayerNorm(x, weight: w, bias: b, rows: rows, channels: channels, epsilon: epsilon), up)
        }
        let numericalInput = numericalGradient(input.doubles) { loss($0, weight.doubles, bias.doubles) }
        let numericalWeight = numericalGradient(weight.doubles) { loss(input.doubles, $0, bias.doubles) }
        let numericalBias = numericalGradient(bias.doubles) { loss(input.doubles, weight.doubles, $0) }
        assertClose(dinp, zip(startInput, numericalInput).map { Double($0) + $1 }, absolute: 2e-5, relative: 1e-4, "dinp")
        assertClose(dweight, zip(startWeight, numericalWeight).map { Double($0) + $1 }, absolute: 2e-5, relative: 1e-4, "dweight")
        assertClose(dbias, zip(startBias, numericalBias).map { Double($0) + $1 }, absolute: 2e-5, relative: 1e-4, "dbias")
    }
}
