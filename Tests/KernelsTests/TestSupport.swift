import Foundation
import XCTest

/// A seeded generator for test data (SplitMix64), so failures reproduce.
struct TestRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [low, high).
    mutating func uniform(_ low: Double = -1, _ high: Double = 1) -> Double {
        low + (high - low) * Double(next() >> 11) / Double(1 << 53)
    }

    mutating func floats(_ count: Int, _ low: Double = -1, _ high: Double = 1) -> [Float] {
        (0..<count).map { _ in Float(uniform(low, high)) }
    }

    mutating func integer(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

/// Central-difference gradient of `loss` at `x`, in Double.
func numericalGradient(_ x: [Double], step: Double = 1e-6, _ loss: ([Double]) -> Double) -> [Double] {
    var point = x
    var gradient = [Double](repeating: 0, count: x.count)
    for index in x.indices {
        let saved = point[index]
        point[index] = saved + step
        let plus = loss(point)
        point[index] = saved - step
        let minus = loss(point)
        point[index] = saved
        gradient[index] = (plus - minus) / (2 * step)
    }
    return gradient
}

/// Fails when any |actual - expected| > absolute + relative * |expected|; reports the worst.
func assertClose<A: BinaryFloatingPoint, B: BinaryFloatingPoint>(
    _ actual: [A], _ expected: [B], absolute: Double, relative: Double = 0, _ what: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(actual.count, expected.count, "\(what): element count", file: file, line: line)
    var worst = 0.0, worstIndex = -1, maxDifference = 0.0
    for index in 0..<min(actual.count, expected.count) {
        let difference = abs(Double(actual[index]) - Double(expected[index]))
        maxDifference = max(maxDifference, difference)
        let excess = difference - (absolute + relative * abs(Double(expected[index])))
        if excess > worst { worst = excess; worstIndex = index }
    }
    if worstIndex >= 0 {
        XCTFail("\(what): index \(worstIndex) got \(actual[worstIndex]) expected \(expected[worstIndex]) (max abs diff \(maxDifference))", file: file, line: line)
    }
}

extension Array where Element == Float {
    var doubles: [Double] { map(Double.init) }
}

extension Array where Element == Double {
    var floats: [Float] { map(Float.init) }
}

func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
