import Foundation
import SafeTensors
import XCTest
@testable import Encoder

struct FixtureError: Error, CustomStringConvertible {
    let description: String
}

enum Fixtures {
    /// <repo>/Tests/EncoderTests/Support.swift -> <repo>
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let encoder = repositoryRoot.appendingPathComponent("Tests/Fixtures/encoder")
    static let tinyModel = encoder.appendingPathComponent("tiny-bert")

    static func file(_ name: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(contentsOf: encoder.appendingPathComponent(name))
    }

    /// The default model: POLYHEAD_MODEL_DIR, else <repo>/models/all-MiniLM-L6-v2. Throws (a
    /// test failure, never a skip) when absent.
    static func modelDirectory() throws -> URL {
        let url = ProcessInfo.processInfo.environment["POLYHEAD_MODEL_DIR"].map { URL(fileURLWithPath: $0) }
            ?? repositoryRoot.appendingPathComponent("models/all-MiniLM-L6-v2")
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("model.safetensors").path) else {
            throw FixtureError(description: "no model at \(url.path): run scripts/setup (or set POLYHEAD_MODEL_DIR)")
        }
        return url
    }

    /// A padded batch ([B, T] ids, types, mask) packed without its padding.
    static func packPadded(_ file: SafeTensorsFile) throws -> (PackedBatch, keep: [Bool]) {
        let shape = try file.info("input_ids").shape
        let ids = try file.int64s("input_ids"), types = try file.int64s("token_type_ids"), mask = try file.int64s("attention_mask")
        var sequences: [[Int32]] = [], typeRows: [[Int32]] = []
        for row in 0..<shape[0] {
            let range = (row * shape[1])..<((row + 1) * shape[1])
            let length = mask[range].filter { $0 != 0 }.count
            sequences.append(ids[range].prefix(length).map { Int32($0) })
            typeRows.append(types[range].prefix(length).map { Int32($0) })
        }
        return (try PackedBatch(sequences: sequences, tokenTypes: typeRows), mask.map { $0 != 0 })
    }

    /// A packed batch stored as input_ids, token_type_ids and sequence_offsets.
    static func packed(_ file: SafeTensorsFile) throws -> PackedBatch {
        try PackedBatch(tokenIds: try file.int64s("input_ids").map { Int32($0) },
                        tokenTypeIds: try file.int64s("token_type_ids").map { Int32($0) },
                        sequenceOffsets: try file.int64s("sequence_offsets").map { Int($0) })
    }
}

/// Rows of a padded [B, T, C] tensor whose mask is set, in packed order.
func unpad(_ values: [Float], keep: [Bool], channels: Int) -> [Float] {
    keep.indices.filter { keep[$0] }.flatMap { values[($0 * channels)..<(($0 + 1) * channels)] }
}

struct Difference {
    var maxAbsolute = 0.0
    var maxRelative = 0.0
}

/// Fails when an element differs by more than absolute + relative * |expected|; returns the
/// largest absolute and relative differences (relative counted where |expected| > absolute).
@discardableResult
func compare(_ actual: [Float], _ expected: [Float], absolute: Double, relative: Double, _ what: String,
             file: StaticString = #filePath, line: UInt = #line) -> Difference {
    XCTAssertEqual(actual.count, expected.count, "\(what): sizes differ", file: file, line: line)
    var difference = Difference()
    var failures = 0, firstFailure = ""
    for index in 0..<min(actual.count, expected.count) {
        let a = Double(actual[index]), e = Double(expected[index])
        let delta = abs(a - e)
        difference.maxAbsolute = max(difference.maxAbsolute, delta)
        if abs(e) > absolute { difference.maxRelative = max(difference.maxRelative, delta / abs(e)) }
        if !(delta <= absolute + relative * abs(e)) {
            if failures == 0 { firstFailure = "index \(index): \(a) vs \(e)" }
            failures += 1
        }
    }
    if failures > 0 {
        XCTFail("\(what): \(failures) elements out of tolerance, first \(firstFailure); max abs diff \(difference.maxAbsolute)", file: file, line: line)
    }
    return difference
}
