import Foundation
import XCTest
@testable import Tokenizers

/// Every Unicode scalar, compared through digests the fixture script computed from the
/// reference itself: the normalizer under five option sets, the pre-tokenizer's split
/// classes, and the full tokenizer on all scalars as single-character words.
final class UnicodeCoverageTests: XCTestCase {
    private static let fnvOffset: UInt64 = 0xCBF2_9CE4_8422_2325
    private static let fnvPrime: UInt64 = 0x100_0000_01B3

    /// FNV-1a over 32-bit values, little-endian bytes (as in the fixture script).
    private static func fnv(_ values: [UInt32], _ state: UInt64 = fnvOffset) -> UInt64 {
        var state = state
        for value in values { mix(value, into: &state) }
        return state
    }

    private static func mix(_ value: UInt32, into state: inout UInt64) {
        state = (state ^ UInt64(value & 0xFF)) &* fnvPrime
        state = (state ^ UInt64(value >> 8 & 0xFF)) &* fnvPrime
        state = (state ^ UInt64(value >> 16 & 0xFF)) &* fnvPrime
        state = (state ^ UInt64(value >> 24)) &* fnvPrime
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    private static let everyScalar: [UInt32] = (0..<UInt32(0x110000)).filter { !(0xD800...0xDFFF).contains($0) }

    func testNormalizerMatchesReferenceForEveryScalar() throws {
        let digests = try Fixtures.json("unicode_digests.json")
        let combinations = try XCTUnwrap(digests["normalizer"] as? [[String: Any]])
        XCTAssertEqual(combinations.count, 5)
        for combination in combinations {
            let options = NormalizerOptions(
                cleanText: combination["clean_text"] as? Bool ?? true,
                handleChineseChars: combination["handle_chinese_chars"] as? Bool ?? true,
                stripAccents: combination["strip_accents"] as? Bool,
                lowercase: combination["lowercase"] as? Bool ?? true)
            let normalizer = CompiledNormalizer.shared(for: options)
            var state = Self.fnvOffset
            var buffer = NormalizedBuffer()
            Self.everyScalar.withUnsafeBufferPointer { scalars in
                for index in scalars.indices {
                    buffer.removeAll()
                    normalizer.normalize(scalars, index..<index + 1, into: &buffer)
                    for scalar in buffer.scalars { Self.mix(scalar, into: &state) }
                    Self.mix(0xFFFF_FFFF, into: &state)
                }
            }
            XCTAssertEqual(Self.hex(state), combination["digest"] as? String, "normalizer \(options)")
        }
    }

    func testPreTokenizerClassesMatchReferenceForEveryScalar() throws {
        let digests = try Fixtures.json("unicode_digests.json")
        let tables = UnicodeTables.shared
        var state = Self.fnvOffset
        for scalar in Self.everyScalar {
            let flags = tables.flags(of: scalar)
            // What BertPreTokenizer makes of "a" + scalar + "a": 2 pieces (whitespace), 3 (punctuation), 1.
            let pieces: UInt32 = flags.contains(.whitespace) ? 2 : flags.contains(.punctuation) ? 3 : 1
            Self.mix(pieces, into: &state)
        }
        XCTAssertEqual(Self.hex(state), digests["pre_tokenizer"] as? String)
    }

    /// Each text holds 256 consecutive scalars separated by spaces; its ids and offsets are
    /// hashed, so a difference names the 256-scalar block it is in.
    func testEveryScalarAsAWordMatchesReference() throws {
        let tokenizer = try Fixtures.modelTokenizer()
        let chunks = try XCTUnwrap(Fixtures.json("unicode_digests.json")["chunks"] as? [String])
        XCTAssertEqual(chunks.count, (Self.everyScalar.count + 255) / 256)
        var workspace = TokenizerWorkspace()
        var failures = 0
        for (index, expected) in chunks.enumerated() {
            let block = Self.everyScalar[(index * 256)..<min(index * 256 + 256, Self.everyScalar.count)]
            var text = String.UnicodeScalarView()
            for (position, value) in block.enumerated() {
                if position > 0 { text.append(" ") }
                text.append(Unicode.Scalar(value)!)
            }
            let encoding = try tokenizer.encode(String(text), pair: nil, maxLength: nil, truncation: .longestFirst,
                                                addSpecialTokens: true, workspace: &workspace)
            let values = encoding.ids.map { UInt32($0) } + [0xFFFF_FFFF]
                + encoding.offsets.flatMap { [UInt32($0.lowerBound), UInt32($0.upperBound)] }
            if Self.hex(Self.fnv(values)) != expected {
                failures += 1
                if failures <= 5 {
                    XCTFail("scalars U+\(String(block.first!, radix: 16))...U+\(String(block.last!, radix: 16)) differ from the reference")
                }
            }
        }
        XCTAssertEqual(failures, 0, "\(failures) of \(chunks.count) blocks of 256 scalars differ")
    }
}
