import Foundation
import XCTest
@testable import Kernels

final class VectorMathTests: XCTestCase {
    func testExpMatchesDoubleAcrossRange() {
        var worstRelative = 0.0
        var x = -87.0
        while x < 88 {
            let value = Double(expScalar(Float(x)))
            let expected = Foundation.exp(Double(Float(x)))
            worstRelative = max(worstRelative, abs(value - expected) / expected)
            x += 0.013
        }
        XCTAssertLessThan(worstRelative, 4e-7, "exp8 relative error")
        XCTAssertEqual(expScalar(-100), 0)
        XCTAssertEqual(expScalar(0), 1)
        XCTAssertTrue(expScalar(200).isFinite, "exp8 clamps instead of overflowing")
    }

    func testErfAndNormalCDFMatchDouble() {
        var worstErf = 0.0, worstCDF = 0.0
        var x = -6.0
        while x < 6 {
            let input = Double(Float(x))
            worstErf = max(worstErf, abs(Double(erfScalar(Float(x))) - Foundation.erf(input)))
            worstCDF = max(worstCDF, abs(Double(normalCDFScalar(Float(x))) - 0.5 * Foundation.erfc(-input / 2.0.squareRoot())))
            x += 0.0037
        }
        XCTAssertLessThan(worstErf, 4.5e-7, "erf8 absolute error")
        XCTAssertLessThan(worstCDF, 2.5e-7, "normalCDF8 absolute error")
        XCTAssertEqual(erfScalar(0), 0)
        XCTAssertEqual(erfScalar(-10), -1, accuracy: 1e-7)
    }

    func testTanhMatchesDouble() {
        var worst = 0.0
        var x = -10.0
        while x < 10 {
            worst = max(worst, abs(Double(tanh8(Float8(repeating: Float(x)))[0]) - Foundation.tanh(Double(Float(x)))))
            x += 0.0031
        }
        XCTAssertLessThan(worst, 3e-7, "tanh8 absolute error")
    }
}
