import Foundation
import XCTest
@testable import SafeTensors

/// One crafted file per failure the reader must refuse, asserting the exact error case.
final class ValidationErrorTests: XCTestCase {
    private let float32Entry = #"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
    private let eightBytes = [UInt8](repeating: 0, count: 8)

    // MARK: Framing

    func testFileShorterThanLengthPrefix() {
        assertLoadFails([], .fileTooSmall(file: nil, byteCount: 0))
        assertLoadFails([1, 2, 3, 4, 5, 6, 7], .fileTooSmall(file: nil, byteCount: 7))
    }

    func testEmptyFileOnDiskNamesThePath() throws {
        let url = try temporaryDirectory(self).appendingPathComponent("empty.safetensors")
        try Data().write(to: url)
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: url)) { error in
            XCTAssertEqual(error as? SafeTensorsError, .fileTooSmall(file: url.path, byteCount: 0))
            XCTAssertTrue("\(error)".contains(url.path))
        }
    }

    func testHeaderLengthOverCap() {
        assertLoadFails(craftedFile("{}", declaredLength: 100_000_001),
                        .headerTooLarge(file: nil, headerLength: 100_000_001, limit: 100_000_000))
        assertLoadFails(craftedFile("{}", declaredLength: UInt64.max),
                        .headerTooLarge(file: nil, headerLength: UInt64.max, limit: 100_000_000))
    }

    func testHeaderLengthBeyondFile() {
        // 100 MB exactly is allowed by the cap but the file is tiny.
        assertLoadFails(craftedFile("{}", declaredLength: 100_000_000),
                        .headerBeyondFile(file: nil, headerLength: 100_000_000, fileSize: 10))
        assertLoadFails(craftedFile("{}", declaredLength: 3),
                        .headerBeyondFile(file: nil, headerLength: 3, fileSize: 10))
    }

    func testHeaderNotUTF8() {
        // A lone continuation byte, then an overlong encoding of "/", then a UTF-16 surrogate in UTF-8.
        assertLoadFails(craftedFile(headerBytes: Array(#"{""#.utf8) + [0x80] + Array(#"":{}}"#.utf8)),
                        .headerNotUTF8(file: nil, byteOffset: 2))
        assertLoadFails(craftedFile(headerBytes: Array(#"{"ab"#.utf8) + [0xC0, 0xAF] + Array(#"":{}}"#.utf8)),
                        .headerNotUTF8(file: nil, byteOffset: 4))
        assertLoadFails(craftedFile(headerBytes: Array(#"{""#.utf8) + [0xED, 0xA0, 0x80] + Array(#"":{}}"#.utf8)),
                        .headerNotUTF8(file: nil, byteOffset: 2))
    }

    func testHeaderNotJSON() {
        func isNotJSON(_ header: String, at expectedOffset: Int, line: UInt = #line) {
            assertLoadFails(craftedFile(header), line: line) { error in
                guard case .headerNotJSON(nil, let offset, _) = error else { return false }
                return offset == expectedOffset
            }
        }
        isNotJSON(#"{"a":1,}"#, at: 7)                  // trailing comma
        isNotJSON(#"{"a" 1}"#, at: 5)                    // missing colon
        isNotJSON(#"{"a":"x"#, at: 7)                    // unterminated string
        isNotJSON("{\"a\u{01}\":{}}", at: 3)             // raw control character
        isNotJSON(#"{"\ud800":{}}"#, at: 8)              // lone leading surrogate
        isNotJSON(#"{"\udc00":{}}"#, at: 8)              // lone trailing surrogate
        isNotJSON(#"{"\q":{}}"#, at: 3)                  // unknown escape
        isNotJSON(#"{"a":01}"#, at: 6)                   // leading zero
        isNotJSON(#"{"a":1.}"#, at: 7)                   // fraction without digits
        isNotJSON(#"{"a":tru}"#, at: 5)                  // bad literal
        isNotJSON(#"{} x"#, at: 3)                       // garbage after the value
        isNotJSON(#"{// comment"#, at: 1)                // comments are not JSON
        isNotJSON("", at: 0)                             // empty header
        isNotJSON(String(repeating: "[", count: 200), at: 128)  // nesting past the limit
    }

    func testHeaderNotObject() {
        assertLoadFails(craftedFile("[]"), .headerNotObject(file: nil, found: "an array"))
        assertLoadFails(craftedFile(#""text""#), .headerNotObject(file: nil, found: "a string"))
        assertLoadFails(craftedFile("null    "), .headerNotObject(file: nil, found: "null"))
    }

    // MARK: Entries

    func testDuplicateTensorName() {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        assertLoadFails(craftedFile(header, data: eightBytes), .duplicateTensorName(file: nil, tensor: "a"))
    }

    func testDuplicateNameSpelledWithEscapes() {
        // "\u0061" is "a": the same name, so still a duplicate.
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"\u0061":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        assertLoadFails(craftedFile(header, data: eightBytes), .duplicateTensorName(file: nil, tensor: "a"))
    }

    func testMalformedTensorEntries() {
        func isMalformed(_ entry: String, mentioning fragment: String, line: UInt = #line) {
            assertLoadFails(craftedFile(#"{"w":"# + entry + "}", data: eightBytes), line: line) { error in
                guard case .malformedTensorEntry(nil, "w", let reason) = error else { return false }
                return reason.contains(fragment)
            }
        }
        isMalformed(#"[1,2]"#, mentioning: "not an object")
        isMalformed(#"{"shape":[2],"data_offsets":[0,8]}"#, mentioning: "missing key 'dtype'")
        isMalformed(#"{"dtype":"F32","data_offsets":[0,8]}"#, mentioning: "missing key 'shape'")
        isMalformed(#"{"dtype":"F32","shape":[2]}"#, mentioning: "missing key 'data_offsets'")
        isMalformed(#"{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}"#, mentioning: "unexpected key 'extra'")
        isMalformed(#"{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, mentioning: "'dtype' appears more than once")
        isMalformed(#"{"dtype":32,"shape":[2],"data_offsets":[0,8]}"#, mentioning: "'dtype' is a number")
        isMalformed(#"{"dtype":"F32","shape":2,"data_offsets":[0,8]}"#, mentioning: "'shape' is a number")
        isMalformed(#"{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}"#, mentioning: "shape dimension 0 is negative")
        isMalformed(#"{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}"#, mentioning: "not an integer")
        isMalformed(#"{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}"#, mentioning: "not an integer")
        isMalformed(#"{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}"#, mentioning: "a string, not an integer")
        isMalformed(#"{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}"#, mentioning: "3 elements, not 2")
        isMalformed(#"{"dtype":"F32","shape":[2],"data_offsets":{"start":0}}"#, mentioning: "'data_offsets' is an object")
        isMalformed(#"{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}"#, mentioning: "data_offsets start is negative")
    }

    func testUnsupportedDType() {
        let valid = craftedFile(#"{"d":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#, data: eightBytes)
        assertLoadFails(valid, .unsupportedDType(file: nil, tensor: "d", dtype: "F64"))
        XCTAssertTrue(SafeTensorsError.unsupportedDType(file: nil, tensor: "d", dtype: "F64").description
            .contains("valid safetensors dtype that Polyhead does not load"))
        let unknown = craftedFile(#"{"d":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}"#, data: eightBytes)
        assertLoadFails(unknown, .unsupportedDType(file: nil, tensor: "d", dtype: "f32"))
        XCTAssertTrue(SafeTensorsError.unsupportedDType(file: nil, tensor: "d", dtype: "f32").description
            .contains("not a safetensors dtype"))
    }

    func testInvalidMetadata() {
        func isInvalid(_ metadata: String, mentioning fragment: String, line: UInt = #line) {
            assertLoadFails(craftedFile(#"{"__metadata__":"# + metadata + "}"), line: line) { error in
                guard case .invalidMetadata(nil, let reason) = error else { return false }
                return reason.contains(fragment)
            }
        }
        isInvalid(#"["pt"]"#, mentioning: "found an array")
        isInvalid(#"null"#, mentioning: "found null")
        isInvalid(#"{"format":1}"#, mentioning: "key 'format' has a number")
        isInvalid(#"{"nested":{"a":"b"}}"#, mentioning: "key 'nested' has an object")
        isInvalid(#"{"format":"pt","format":"np"}"#, mentioning: "key 'format' appears more than once")
        isInvalid(#"{},"__metadata__":{}"#, mentioning: "appears more than once")
    }

    func testShapeProductOverflow() {
        // 2^62 x 4 elements overflows before the byte size is even computed.
        let header = #"{"big":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#
        assertLoadFails(craftedFile(header, data: eightBytes)) { error in
            guard case .arithmeticOverflow(nil, "big", let reason) = error else { return false }
            return reason.contains("element count")
        }
    }

    func testByteSizeOverflow() {
        // 2^61 elements fit; x 4 bytes does not.
        let header = #"{"big":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,8]}}"#
        assertLoadFails(craftedFile(header, data: eightBytes)) { error in
            guard case .arithmeticOverflow(nil, "big", let reason) = error else { return false }
            return reason.contains("byte size")
        }
    }

    func testOffsetLiteralOverflow() {
        let header = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,99999999999999999999]}}"#
        assertLoadFails(craftedFile(header, data: eightBytes)) { error in
            guard case .arithmeticOverflow(nil, "w", let reason) = error else { return false }
            return reason.contains("data_offsets end")
        }
    }

    // MARK: Layout

    func testOffsetsReversed() {
        let header = #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#
        assertLoadFails(craftedFile(header, data: eightBytes), .offsetsReversed(file: nil, tensor: "w", start: 8, end: 4))
    }

    func testGapBeforeFirstTensor() {
        let header = #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        assertLoadFails(craftedFile(header, data: eightBytes), .offsetGap(file: nil, tensor: "w", expectedStart: 0, actualStart: 4))
    }

    func testGapBetweenTensors() {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        assertLoadFails(craftedFile(header, data: [UInt8](repeating: 0, count: 12)),
                        .offsetGap(file: nil, tensor: "b", expectedStart: 4, actualStart: 8))
    }

    func testOverlappingTensors() {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        assertLoadFails(craftedFile(header, data: [UInt8](repeating: 0, count: 12)),
                        .offsetOverlap(file: nil, tensor: "b", expectedStart: 8, actualStart: 4))
    }

    func testByteSizeMismatch() {
        let header = #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#
        assertLoadFails(craftedFile(header, data: eightBytes),
                        .byteSizeMismatch(file: nil, tensor: "w", dtype: .f32, shape: [3], expectedBytes: 12, actualBytes: 8))
    }

    func testDataSectionTooShort() {
        assertLoadFails(craftedFile(#"{"w":"# + float32Entry + "}", data: [0, 0, 0, 0]),
                        .dataSectionTooShort(file: nil, tensor: "w", end: 8, dataBytes: 4))
    }

    func testTrailingBytes() {
        assertLoadFails(craftedFile(#"{"w":"# + float32Entry + "}", data: eightBytes + [0]),
                        .trailingBytes(file: nil, coveredBytes: 8, dataBytes: 9))
        // No tensors at all, yet data follows the header.
        assertLoadFails(craftedFile("{}", data: [1, 2]), .trailingBytes(file: nil, coveredBytes: 0, dataBytes: 2))
    }

    // MARK: Access

    func testAccessErrors() throws {
        var writer = SafeTensorsWriter()
        try writer.add("weights", shape: [2], floats: [1, 2])
        try writer.add("ids", shape: [2], int64s: [3, 4])
        let file = try SafeTensorsFile(bytes: try writer.data())
        XCTAssertThrowsError(try file.info("missing")) {
            XCTAssertEqual($0 as? SafeTensorsError, .unknownTensor(file: nil, tensor: "missing"))
        }
        XCTAssertThrowsError(try file.floats("missing")) {
            XCTAssertEqual($0 as? SafeTensorsError, .unknownTensor(file: nil, tensor: "missing"))
        }
        XCTAssertThrowsError(try file.floats("ids")) {
            XCTAssertEqual($0 as? SafeTensorsError, .dtypeMismatch(file: nil, tensor: "ids", dtype: .i64, requested: "Float"))
        }
        XCTAssertThrowsError(try file.int64s("weights")) {
            XCTAssertEqual($0 as? SafeTensorsError, .dtypeMismatch(file: nil, tensor: "weights", dtype: .f32, requested: "Int64"))
        }
        var destination = [Float](repeating: -1, count: 3)
        try destination.withUnsafeMutableBufferPointer { buffer in
            XCTAssertThrowsError(try file.copyFloats("weights", into: buffer)) {
                XCTAssertEqual($0 as? SafeTensorsError,
                               .elementCountMismatch(file: nil, tensor: "weights", tensorCount: 2, destinationCount: 3))
            }
        }
        XCTAssertEqual(destination, [-1, -1, -1], "a refused copy must not write")
    }

    func testCannotOpen() throws {
        let directory = try temporaryDirectory(self)
        let missing = directory.appendingPathComponent("missing.safetensors")
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: missing)) { error in
            guard case .cannotOpen(missing.path, _) = error as? SafeTensorsError else {
                return XCTFail("wrong error \(error)")
            }
        }
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: directory)) { error in
            XCTAssertEqual(error as? SafeTensorsError, .cannotOpen(file: directory.path, reason: "not a regular file"))
        }
    }

    func testErrorsFromDiskNameFileAndTensor() throws {
        let url = try temporaryDirectory(self).appendingPathComponent("bad.safetensors")
        let header = #"{"encoder.layer.0.weight":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#
        try Data(craftedFile(header, data: eightBytes)).write(to: url)
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: url)) { error in
            XCTAssertEqual(error as? SafeTensorsError, .byteSizeMismatch(
                file: url.path, tensor: "encoder.layer.0.weight", dtype: .f32, shape: [3], expectedBytes: 12, actualBytes: 8))
            let message = "\(error)"
            XCTAssertTrue(message.contains(url.path), message)
            XCTAssertTrue(message.contains("'encoder.layer.0.weight'"), message)
        }
    }

    // MARK: Valid edge cases the checks must not refuse

    func testAcceptsEdgeCases() throws {
        // Keys out of offset order, a scalar, zero-size tensors sharing an offset, escaped
        // names, whitespace around tokens, and an unaligned data section (header of 93 bytes).
        let header = #" { "b" : {"dtype":"F32","shape":[],"data_offsets":[4,8]} , "z":{"dtype":"F16","shape":[0,5],"data_offsets":[0,0]},"#
            + #""a\n":{"data_offsets":[0,4],"shape":[1],"dtype":"F32"},"__metadata__":{}}"#
        var data: [UInt8] = []
        withUnsafeBytes(of: Float(1.5).bitPattern.littleEndian) { data += $0 }
        withUnsafeBytes(of: Float(-2).bitPattern.littleEndian) { data += $0 }
        let file = try SafeTensorsFile(bytes: craftedFile(header, data: data))
        XCTAssertEqual(file.tensorNames, ["z", "a\n", "b"])
        XCTAssertEqual(try file.floats("a\n"), [1.5])
        XCTAssertEqual(try file.floats("b"), [-2])
        XCTAssertEqual(try file.info("b").elementCount, 1)
        XCTAssertEqual(try file.floats("z"), [])
        XCTAssertEqual(try file.info("z").shape, [0, 5])
        XCTAssertEqual(file.metadata, [:])

        let empty = try SafeTensorsFile(bytes: craftedFile("{}      "))
        XCTAssertEqual(empty.tensorNames, [])
    }
}
