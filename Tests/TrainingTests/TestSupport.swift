import Foundation
import XCTest

/// Tests/Fixtures/training, found from this file's path so tests run from any directory.
let trainingFixtures: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures").appendingPathComponent("training")

/// The repository root (two levels above Tests/TrainingTests).
let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A fixture file's bytes, failing with a hint to regenerate when it is missing.
func fixtureData(_ relativePath: String, file: StaticString = #filePath, line: UInt = #line) throws -> Data {
    let url = trainingFixtures.appendingPathComponent(relativePath)
    guard FileManager.default.fileExists(atPath: url.path) else {
        XCTFail("missing fixture \(url.path); run python scripts/reference/training_fixtures.py", file: file, line: line)
        throw CocoaError(.fileNoSuchFile)
    }
    return try Data(contentsOf: url)
}

func decodeFixture<Value: Decodable>(_ type: Value.Type, _ relativePath: String) throws -> Value {
    try JSONDecoder().decode(type, from: fixtureData(relativePath))
}

/// SplitMix64: a tiny seeded generator so random test inputs are the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Asserts |actual - expected| <= absolute + relative * |expected| element by element and
/// reports the worst element, as torch.allclose would judge it.
func assertClose<Scalar: BinaryFloatingPoint>(
    _ actual: [Scalar], _ expected: [Scalar], relative: Double, absolute: Double, _ what: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    guard actual.count == expected.count else {
        XCTFail("\(what): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        return
    }
    var worstIndex = -1
    var worstExcess = 0.0
    for index in actual.indices {
        let a = Double(actual[index]), e = Double(expected[index])
        let excess = abs(a - e) - (absolute + relative * abs(e))
        if !(excess <= worstExcess) || a.isNaN {
            worstExcess = a.isNaN ? .infinity : excess
            worstIndex = index
        }
    }
    if worstIndex >= 0 {
        XCTFail("\(what): element \(worstIndex) is \(actual[worstIndex]), expected \(expected[worstIndex]) (tolerance \(absolute) + \(relative) relative)", file: file, line: line)
    }
}

/// The largest |a - b| / (absolute + relative |b|) over two arrays: the fraction of the
/// tolerance used (above 1 fails), for printing measured agreement.
func toleranceUsed<Scalar: BinaryFloatingPoint>(_ actual: [Scalar], _ expected: [Scalar], relative: Double, absolute: Double) -> Double {
    zip(actual, expected).map { abs(Double($0) - Double($1)) / (absolute + relative * abs(Double($1))) }.max() ?? 0
}

/// The default model: POLYHEAD_MODEL_DIR, else <repository root>/models/all-MiniLM-L6-v2.
/// Fails (never skips) when it is absent: CI runs scripts/setup first.
func defaultModelDirectory(file: StaticString = #filePath, line: UInt = #line) throws -> URL {
    let url = ProcessInfo.processInfo.environment["POLYHEAD_MODEL_DIR"].map { URL(fileURLWithPath: $0) }
        ?? repositoryRoot.appendingPathComponent("models").appendingPathComponent("all-MiniLM-L6-v2")
    guard FileManager.default.fileExists(atPath: url.appendingPathComponent("model.safetensors").path) else {
        XCTFail("no model at \(url.path): run scripts/setup (or set POLYHEAD_MODEL_DIR)", file: file, line: line)
        throw CocoaError(.fileNoSuchFile)
    }
    return url
}
