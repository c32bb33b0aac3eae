import Foundation
import XCTest
@testable import SafeTensors

final class WriterTests: XCTestCase {
    func testRoundTripThroughDisk() throws {
        var generator = SeededGenerator(seed: 7)
        let weights = (0..<(3 * 5)).map { _ in Float.random(in: -4...4, using: &generator) }
        let bias: [Float] = [0, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 0.1]
        let ids: [Int64] = [.min, -1, 0, 1, .max]
        var writer = SafeTensorsWriter()
        writer.metadata = ["format": "pt", "note": "quote \" backslash \\ newline \n é"]
        try writer.add("layer.weight", shape: [3, 5], floats: weights)
        try bias.withUnsafeBufferPointer { try writer.add("layer.bias", shape: [7], float32Buffer: $0) }
        try writer.add("ids", shape: [5], int64s: ids)
        try writer.add("scalar", shape: [], floats: [42])
        try writer.add("empty", shape: [2, 0], floats: [])

        let url = try temporaryDirectory(self).appendingPathComponent("round.safetensors")
        try writer.write(to: url)
        let file = try SafeTensorsFile(contentsOf: url)

        XCTAssertEqual(file.path, url.path)
        XCTAssertEqual(file.metadata, writer.metadata)
        XCTAssertEqual(try file.floats("layer.weight").map(\.bitPattern), weights.map(\.bitPattern))
        XCTAssertEqual(try file.floats("layer.bias").map(\.bitPattern), bias.map(\.bitPattern))
        XCTAssertEqual(try file.int64s("ids"), ids)
        XCTAssertEqual(try file.floats("scalar"), [42])
        XCTAssertEqual(try file.floats("empty"), [])
        XCTAssertEqual(try file.info("layer.weight").shape, [3, 5])
        XCTAssertEqual(try file.info("layer.weight").dtype, .f32)
        XCTAssertEqual(try file.info("scalar").shape, [])
        // I64 first (largest element size), then F32 by name bytes; offsets follow that order.
        XCTAssertEqual(file.tensorNames, ["ids", "empty", "layer.bias", "layer.weight", "scalar"])
        XCTAssertEqual(try file.info("ids").byteRange, 0..<40)
        XCTAssertEqual(try file.info("layer.bias").byteRange, 40..<68)

        // copyFloats into the middle of a larger allocation, as the encoder loads parameters.
        var block = [Float](repeating: .nan, count: 20)
        try block.withUnsafeMutableBufferPointer { buffer in
            try file.copyFloats("layer.weight", into: UnsafeMutableBufferPointer(rebasing: buffer[2..<17]))
        }
        XCTAssertEqual(Array(block[2..<17]), weights)
        XCTAssertTrue(block[1].isNaN && block[17].isNaN, "copyFloats wrote outside its destination")

        XCTAssertEqual(try Data(contentsOf: url), Data(try writer.data()), "write(to:) and data() disagree")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path)
        XCTAssertEqual(leftovers, ["round.safetensors"], "the temporary file was left behind")
    }

    func testHeaderIsPaddedWithSpacesAndDeterministic() throws {
        var first = SafeTensorsWriter()
        first.metadata = ["b": "2", "a": "1"]
        try first.add("x", shape: [1], floats: [1])
        try first.add("a", shape: [2], int64s: [1, 2])
        var second = SafeTensorsWriter()
        try second.add("a", shape: [2], int64s: [1, 2])
        try second.add("x", shape: [1], floats: [1])
        second.metadata = ["a": "1", "b": "2"]
        let bytes = try first.data()
        XCTAssertEqual(bytes, try second.data(), "insertion order changed the output")

        let headerLength = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        XCTAssertEqual(headerLength % 8, 0)
        let header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
        let json = #"{"__metadata__":{"a":"1","b":"2"},"a":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"x":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}"#
        XCTAssertEqual(header, json + String(repeating: " ", count: headerLength - json.utf8.count))
        XCTAssertLessThan(headerLength - json.utf8.count, 8)
    }

    func testWriterRefusesBadInput() throws {
        var writer = SafeTensorsWriter()
        try writer.add("w", shape: [2], floats: [1, 2])
        XCTAssertThrowsError(try writer.add("w", shape: [1], int64s: [1])) {
            XCTAssertEqual($0 as? SafeTensorsError, .writerDuplicateName(tensor: "w"))
        }
        XCTAssertThrowsError(try writer.add("__metadata__", shape: [1], floats: [1])) {
            XCTAssertEqual($0 as? SafeTensorsError, .writerReservedName(tensor: "__metadata__"))
        }
        XCTAssertThrowsError(try writer.add("v", shape: [2, -1], floats: [])) {
            XCTAssertEqual($0 as? SafeTensorsError, .writerInvalidShape(tensor: "v", shape: [2, -1]))
        }
        XCTAssertThrowsError(try writer.add("v", shape: [Int.max, 2], floats: [])) {
            XCTAssertEqual($0 as? SafeTensorsError, .writerInvalidShape(tensor: "v", shape: [Int.max, 2]))
        }
        XCTAssertThrowsError(try writer.add("v", shape: [2, 2], floats: [1, 2, 3])) {
            XCTAssertEqual($0 as? SafeTensorsError, .writerShapeMismatch(tensor: "v", shape: [2, 2], valueCount: 3))
        }
        let missingDirectory = try temporaryDirectory(self).appendingPathComponent("absent/out.safetensors")
        XCTAssertThrowsError(try writer.write(to: missingDirectory)) { error in
            guard case .writeFailed(missingDirectory.path, _) = error as? SafeTensorsError else {
                return XCTFail("wrong error \(error)")
            }
        }
        // The refused tensors left no trace.
        XCTAssertEqual(try SafeTensorsFile(bytes: try writer.data()).tensorNames, ["w"])
    }

    func testWriteReplacesExistingFile() throws {
        let url = try temporaryDirectory(self).appendingPathComponent("head.safetensors")
        try Data("old contents".utf8).write(to: url)
        var writer = SafeTensorsWriter()
        try writer.add("w", shape: [1], floats: [5])
        try writer.write(to: url)
        XCTAssertEqual(try SafeTensorsFile(contentsOf: url).floats("w"), [5])
    }
}
