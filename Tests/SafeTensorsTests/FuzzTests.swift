import Foundation
import XCTest
@testable import SafeTensors

/// Seeded random corruptions of valid files: each must either load (and then read every
/// tensor without trapping) or throw a SafeTensorsError. A crash fails the whole run.
final class FuzzTests: XCTestCase {
    private func seedFiles() throws -> [[UInt8]] {
        var writer = SafeTensorsWriter()
        writer.metadata = ["format": "pt", "producer": "fuzz"]
        try writer.add("a.weight", shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        try writer.add("a.bias", shape: [3], floats: [0.5, -0.5, 0])
        try writer.add("ids", shape: [1, 4], int64s: [0, 1, 2, 3])
        try writer.add("scalar", shape: [], floats: [9])
        let python = try [UInt8](Data(contentsOf: TestPaths.fixtures.appendingPathComponent("python_written.safetensors")))
        return [try writer.data(), python]
    }

    /// Reads every tensor the way a caller would.
    private func readEverything(_ file: SafeTensorsFile) throws {
        for name in file.tensorNames {
            let info = try file.info(name)
            if info.dtype == .i64 {
                XCTAssertEqual(try file.int64s(name).count, info.elementCount)
            } else {
                XCTAssertEqual(try file.floats(name).count, info.elementCount)
                var destination = [Float](repeating: 0, count: info.elementCount)
                try destination.withUnsafeMutableBufferPointer { try file.copyFloats(name, into: $0) }
            }
        }
    }

    func testRandomMutationsNeverCrash() throws {
        var generator = SeededGenerator(seed: 0x5AFE_7E45)
        var loaded = 0
        var refused: [String: Int] = [:]
        for seed in try seedFiles() {
            let headerEnd = 8 + seed[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
            for _ in 0..<2_500 {
                var bytes = seed
                for _ in 0..<Int.random(in: 1...3, using: &generator) {
                    mutate(&bytes, headerEnd: headerEnd, using: &generator)
                }
                do {
                    let file = try SafeTensorsFile(bytes: bytes)
                    try readEverything(file)
                    loaded += 1
                } catch let error as SafeTensorsError {
                    // Name the case without its payload to see which checks the fuzzer reached.
                    refused[Mirror(reflecting: error).children.first?.label ?? "\(error)", default: 0] += 1
                }
            }
        }
        // Both outcomes must occur, or the mutations are not exercising the parser.
        XCTAssertGreaterThan(loaded, 100)
        XCTAssertGreaterThan(refused.values.reduce(0, +), 1_000)
        XCTAssertGreaterThan(refused.count, 8, "few distinct checks reached: \(refused)")
        print("fuzz: \(loaded) loaded, refused by case: \(refused.sorted { $0.key < $1.key })")
    }

    private func mutate(_ bytes: inout [UInt8], headerEnd: Int, using generator: inout SeededGenerator) {
        guard !bytes.isEmpty else {
            bytes.append(UInt8.random(in: 0...255, using: &generator))
            return
        }
        // Aim most mutations at the header, where the parser's decisions are.
        let headerRange = 0..<min(max(headerEnd, 1), bytes.count)
        let position = Int.random(in: 0..<10, using: &generator) < 8
            ? Int.random(in: headerRange, using: &generator)
            : Int.random(in: 0..<bytes.count, using: &generator)
        switch Int.random(in: 0..<7, using: &generator) {
        case 0:
            bytes[position] = UInt8.random(in: 0...255, using: &generator)
        case 1:
            bytes[position] ^= 1 << UInt8.random(in: 0..<8, using: &generator)
        case 2:
            // Swap in a JSON-significant character to reach the structural checks.
            let tokens = Array(#"{}[]:,"-0123456789 \e."#.utf8)
            bytes[position] = tokens[Int.random(in: 0..<tokens.count, using: &generator)]
        case 3:
            bytes.removeSubrange(Int.random(in: 0...bytes.count, using: &generator)...)
        case 4:
            bytes.insert(UInt8.random(in: 0...255, using: &generator), at: position)
        case 5:
            bytes.remove(at: position)
        default:
            // Rewrite the length prefix near its true value.
            let delta = Int.random(in: -16...16, using: &generator)
            let length = UInt64(max(0, headerEnd - 8 + delta))
            for index in 0..<min(8, bytes.count) {
                bytes[index] = UInt8(truncatingIfNeeded: length >> (8 * UInt64(index)))
            }
        }
    }
}
