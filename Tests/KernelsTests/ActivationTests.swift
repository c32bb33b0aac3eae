import Foundation
import XCTest
@testable import Kernels

final class ActivationTests: XCTestCase {
    func referenceActivation(_ x: Double, _ activation: Activation) -> Double {
        switch activation {
        case .gelu: return 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot()))
        case .geluTanh: return 0.5 * x * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
        case .relu: return max(0, x)
        }
    }

    func testForwardMatchesDoubleReference() {
        var random = TestRandom(seed: 3)
        let count = 1003  // not a multiple of 8: the tail path runs too
        let input = random.floats(count, -7, 7)
        for activation in Activation.allCases {
            var output = [Float](repeating: 0, count: count)
            activationForward(&output, input, count: count, activation: activation)
            assertClose(output, input.map { referenceActivation(Double($0), activation) }, absolute: 1e-6, relative: 1e-6, "\(activation) forward")
        }
    }

    func testBackwardMatchesFiniteDifferencesAndAccumulates() {
        var random = TestRandom(seed: 4)
        let count = 203
        // Keep relu's inputs away from its kink, where finite differences are meaningless.
        let input = random.floats(count, -4, 4).map { abs($0) < 0.01 ? $0 + 0.05 : $0 }
        let upstream = random.floats(count)
        for activation in Activation.allCases {
            let start = random.floats(count)
            var gradient = start
            activationBackward(&gradient, input, upstream, count: count, activation: activation)
            let numerical = numericalGradient(input.doubles) { x in
                dot(x.map { referenceActivation($0, activation) }, upstream.doubles)
            }
            let expected = zip(start, numerical).map { Double($0) + $1 }
            assertClose(gradient, expected, absolute: 2e-6, relative: 1e-5, "\(activation) backward")
        }
    }
}
