import Foundation
import XCTest
@testable import Tokenizers

/// Pairs and truncation, other normalizer settings and added tokens, and decoding, against
/// the reference outputs in the fixtures.
final class ReferenceCaseTests: XCTestCase {
    /// 1,560 cases: random pairs (and single texts) truncated to 3...32 tokens with
    /// longest_first, only_first and only_second; where the reference refuses, so must we.
    func testTruncatedPairsMatchReference() throws {
        let tokenizer = try Fixtures.modelTokenizer()
        let texts = try Fixtures.corpus()
        let cases = try Fixtures.jsonLines("pairs.jsonl")
        XCTAssertGreaterThan(cases.count, 1000)
        var failures = 0
        var refusals = 0
        var strategiesSeen = Set<String>()
        for (index, item) in cases.enumerated() {
            let first = texts[Fixtures.ints([item["first"] as Any])[0]]
            let second = (item["second"] as? NSNumber).map { texts[$0.intValue] }
            let maxLength = (item["max_length"] as? NSNumber)?.intValue
            let strategyName = item["strategy"] as? String ?? ""
            guard let strategy = TruncationStrategy(rawValue: strategyName) else {
                XCTFail("pairs.jsonl:\(index + 1): unknown strategy \(strategyName)")
                continue
            }
            strategiesSeen.insert(strategyName)
            let context = "pairs.jsonl:\(index + 1) \(strategyName) max \(maxLength.map(String.init) ?? "none"): \(describe(first)) | \(describe(second ?? "<none>"))"
            if item["error"] != nil {
                refusals += 1
                XCTAssertThrowsError(try tokenizer.encode(first, pair: second, maxLength: maxLength, truncation: strategy), context)
                continue
            }
            let encoding: Encoding
            do {
                encoding = try tokenizer.encode(first, pair: second, maxLength: maxLength, truncation: strategy)
            } catch {
                failures += 1
                XCTFail("\(context): threw \(error)")
                continue
            }
            let expectedIds = Fixtures.ints(item["ids"])
            let expectedTypes = Fixtures.ints(item["type_ids"])
            let expectedOffsets = Fixtures.ranges(item["offsets"])
            if encoding.ids != expectedIds || encoding.typeIds != expectedTypes || encoding.offsets != expectedOffsets {
                failures += 1
                if failures <= 5 {
                    XCTFail("\(context)\n  ids   \(encoding.ids)\n  want  \(expectedIds)\n  types \(encoding.typeIds)\n  want  \(expectedTypes)")
                }
            }
            if let maxLength { XCTAssertLessThanOrEqual(encoding.count, maxLength, context) }
        }
        XCTAssertEqual(failures, 0, "\(failures) of \(cases.count) pair cases differ")
        XCTAssertEqual(strategiesSeen, Set(TruncationStrategy.allCases.map(\.rawValue)))
        XCTAssertGreaterThan(refusals, 0, "the fixture should hold cases the reference refuses")
    }

    /// The model's tokenizer.json with other BertNormalizer settings or extra added tokens,
    /// patched here exactly as the fixture script patched it.
    func testNormalizerVariantsAndAddedTokensMatchReference() throws {
        let model = try Fixtures.modelDirectory()
        let texts = try Fixtures.corpus()
        let variants = try XCTUnwrap(Fixtures.json("variants.json")["variants"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(variants.count, 6)
        let modelData = try Data(contentsOf: model.appendingPathComponent("tokenizer.json"))
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("polyhead-variants-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }

        for variant in variants {
            let name = try XCTUnwrap(variant["name"] as? String)
            var patched = try XCTUnwrap(JSONSerialization.jsonObject(with: modelData) as? [String: Any])
            patched["normalizer"] = variant["normalizer"] ?? NSNull()
            let added = try XCTUnwrap(variant["added_tokens"] as? [Any])
            patched["added_tokens"] = (patched["added_tokens"] as? [Any] ?? []) + added
            let file = scratch.appendingPathComponent("\(name).json")
            try JSONSerialization.data(withJSONObject: patched).write(to: file)
            let tokenizer = try BertTokenizer(tokenizerJSON: file)

            let lines = Fixtures.ints(variant["lines"])
            let expectedIds = try XCTUnwrap(variant["ids"] as? [Any])
            let expectedOffsets = try XCTUnwrap(variant["offsets"] as? [Any])
            var failures = 0
            for (position, line) in lines.enumerated() {
                let encoding = try tokenizer.encode(texts[line])
                let ids = Fixtures.ints(expectedIds[position])
                let offsets = Fixtures.ranges(expectedOffsets[position])
                if encoding.ids != ids || encoding.offsets != offsets {
                    failures += 1
                    if failures <= 3 {
                        XCTFail("\(name) line \(line + 1) \(describe(texts[line]))\n  got  \(encoding.ids) \(encoding.offsets)\n  want \(ids) \(offsets)\n  tokens \(tokenizer.tokenize(texts[line]))")
                    }
                }
            }
            XCTAssertEqual(failures, 0, "variant \(name): \(failures) of \(lines.count) lines differ")
        }
    }

    /// Text where NFD reorders characters that strip_accents keeps (viramas, musical symbols,
    /// marks newer than the reference's category table), with a vocabulary that makes every
    /// character its own token, so that both the order and each offset show.
    func testCanonicalReorderingMatchesReference() throws {
        let fixture = try Fixtures.json("reordering.json")
        let texts = try XCTUnwrap(fixture["texts"] as? [String])
        let tokenizers = try XCTUnwrap(fixture["tokenizers"] as? [[String: Any]])
        XCTAssertEqual(tokenizers.count, 2)
        for (number, item) in tokenizers.enumerated() {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("polyhead-reordering-\(number)-\(ProcessInfo.processInfo.processIdentifier).json")
            try JSONSerialization.data(withJSONObject: try XCTUnwrap(item["tokenizer_json"])).write(to: url)
            defer { try? FileManager.default.removeItem(at: url) }
            let tokenizer = try BertTokenizer(tokenizerJSON: url)
            let expectedIds = try XCTUnwrap(item["ids"] as? [Any])
            let expectedOffsets = try XCTUnwrap(item["offsets"] as? [Any])
            var failures = 0
            for (index, text) in texts.enumerated() {
                let encoding = try tokenizer.encode(text)
                let ids = Fixtures.ints(expectedIds[index])
                let offsets = Fixtures.ranges(expectedOffsets[index])
                if encoding.ids != ids || encoding.offsets != offsets {
                    failures += 1
                    if failures <= 3 {
                        let scalars = text.unicodeScalars.map { String($0.value, radix: 16) }
                        XCTFail("normalizer \(number) text \(scalars)\n  got  \(encoding.ids) \(encoding.offsets)\n  want \(ids) \(offsets)")
                    }
                }
            }
            XCTAssertEqual(failures, 0, "normalizer \(number): \(failures) of \(texts.count) texts differ")
        }
    }

    func testDecodeMatchesReference() throws {
        let tokenizer = try Fixtures.modelTokenizer()
        let expected = try Fixtures.jsonLines("expected.jsonl")
        let cases = try Fixtures.jsonLines("decoded.jsonl")
        var failures = 0
        for item in cases {
            let line = Fixtures.ints([item["line"] as Any])[0]
            let ids = Fixtures.ints(expected[line]["ids"])
            let skipping = tokenizer.decode(ids, skipSpecialTokens: true)
            let keeping = tokenizer.decode(ids, skipSpecialTokens: false)
            if skipping != item["skip_special"] as? String || keeping != item["keep_special"] as? String {
                failures += 1
                if failures <= 5 {
                    XCTFail("decoded line \(line + 1):\n  got  \(skipping.debugDescription)\n  want \((item["skip_special"] as? String ?? "").debugDescription)")
                }
            }
        }
        XCTAssertEqual(failures, 0, "\(failures) of \(cases.count) decoded lines differ")
    }
}
