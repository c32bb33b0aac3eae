import Foundation
import XCTest
@testable import SafeTensors

/// Locations of committed fixtures and the real checkpoint, found from this file's path.
enum TestPaths {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = repositoryRoot.appendingPathComponent("Tests/Fixtures/safetensors")

    /// POLYHEAD_MODEL_DIR, else models/all-MiniLM-L6-v2 under the repository root.
    static func modelDirectory() throws -> URL {
        let directory = ProcessInfo.processInfo.environment["POLYHEAD_MODEL_DIR"].map { URL(fileURLWithPath: $0) }
            ?? repositoryRoot.appendingPathComponent("models/all-MiniLM-L6-v2")
        let weights = directory.appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: weights.path) else {
            throw MissingModel(path: weights.path)
        }
        return directory
    }
}

/// Thrown (failing the test, never skipping it) when the checkpoint is absent.
struct MissingModel: Error, CustomStringConvertible {
    let path: String
    var description: String {
        "\(path) not found: run scripts/setup, or set POLYHEAD_MODEL_DIR to a directory holding all-MiniLM-L6-v2"
    }
}

/// Builds a file from a header string: little-endian length prefix, header bytes, data.
/// `declaredLength` overrides the prefix to craft framing errors.
func craftedFile(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    craftedFile(headerBytes: Array(header.utf8), data: data, declaredLength: declaredLength)
}

func craftedFile(headerBytes: [UInt8], data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let length = declaredLength ?? UInt64(headerBytes.count)
    return withUnsafeBytes(of: length.littleEndian) { [UInt8]($0) } + headerBytes + data
}

/// Asserts that loading `bytes` throws exactly `expected`.
func assertLoadFails(_ bytes: [UInt8], _ expected: SafeTensorsError, file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try SafeTensorsFile(bytes: bytes)
        XCTFail("loaded, expected \(expected)", file: file, line: line)
    } catch let error as SafeTensorsError {
        XCTAssertEqual(error, expected, file: file, line: line)
    } catch {
        XCTFail("unexpected error type \(error)", file: file, line: line)
    }
}

/// Asserts that loading `bytes` throws the case `matches` accepts (for cases whose associated
/// values are incidental, such as the byte offset of a JSON syntax error).
func assertLoadFails(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line, matches: (SafeTensorsError) -> Bool) {
    do {
        _ = try SafeTensorsFile(bytes: bytes)
        XCTFail("loaded, expected an error", file: file, line: line)
    } catch let error as SafeTensorsError {
        XCTAssertTrue(matches(error), "wrong error: \(error)", file: file, line: line)
    } catch {
        XCTFail("unexpected error type \(error)", file: file, line: line)
    }
}

/// SplitMix64: a tiny seeded generator so fuzz runs are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}

/// A temporary directory removed when the test ends.
func temporaryDirectory(_ testCase: XCTestCase) throws -> URL {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("polyhead-safetensors-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
    return directory
}
