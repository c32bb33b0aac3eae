import Foundation
import XCTest
@testable import Tokenizers

/// The committed corpus (real lines in ~180 locales, licence texts, edge cases) against the
/// ids, offsets and word ids Hugging Face's Rust tokenizer gave (scripts/reference/tokenizer_fixtures.py).
final class CorpusTests: XCTestCase {
    func testIdsOffsetsAndWordIdsMatchReferenceOnEveryLine() throws {
        let tokenizer = try Fixtures.modelTokenizer()
        try checkCorpus(with: tokenizer, label: "tokenizer.json")
    }

    /// vocab.txt + tokenizer_config.json alone must build the same tokenizer (the fixture
    /// script checks that transformers' BertTokenizer does too).
    func testVocabularyFileGivesTheSameResults() throws {
        let model = try Fixtures.modelDirectory()
        let tokenizer = try BertTokenizer(vocabularyFile: model.appendingPathComponent("vocab.txt"),
                                          configurationFile: model.appendingPathComponent("tokenizer_config.json"))
        try checkCorpus(with: tokenizer, label: "vocab.txt")
    }

    func testBatchEncodingEqualsOneByOne() throws {
        let tokenizer = try Fixtures.modelTokenizer()
        let texts = Array(try Fixtures.corpus().prefix(400))
        let batch = try tokenizer.encodeBatch(texts)
        for (index, text) in texts.enumerated() {
            XCTAssertEqual(batch[index], try tokenizer.encode(text), "line \(index + 1): \(describe(text))")
        }
    }

    private func checkCorpus(with tokenizer: BertTokenizer, label: String) throws {
        let texts = try Fixtures.corpus()
        let expected = try Fixtures.jsonLines("expected.jsonl")
        XCTAssertEqual(texts.count, expected.count, "corpus.jsonl and expected.jsonl differ in length: rerun the fixture script")
        XCTAssertGreaterThanOrEqual(texts.count, 5000, "the corpus should hold at least 5,000 lines")
        let encodings = try tokenizer.encodeBatch(texts)
        var idMismatches = 0
        var offsetMismatches = 0
        var wordMismatches = 0
        var tokens = 0
        for (index, text) in texts.enumerated() {
            let encoding = encodings[index]
            let expectedIds = Fixtures.ints(expected[index]["ids"])
            tokens += expectedIds.count
            if encoding.ids != expectedIds {
                idMismatches += 1
                if idMismatches <= 5 {
                    XCTFail("\(label) line \(index + 1) ids \(describe(text))\n  got      \(encoding.ids)\n  expected \(expectedIds)\n  tokens   \(encoding.ids.map { tokenizer.token(forId: $0) ?? "?" })")
                }
                continue
            }
            let expectedOffsets = Fixtures.ranges(expected[index]["offsets"])
            // The reference reports 0..<0 for special tokens; so does Encoding.
            if encoding.offsets != expectedOffsets {
                offsetMismatches += 1
                if offsetMismatches <= 5 {
                    XCTFail("\(label) line \(index + 1) offsets \(describe(text))\n  got      \(encoding.offsets)\n  expected \(expectedOffsets)")
                }
            }
            let expectedWords = Fixtures.optionalInts(expected[index]["words"])
            if encoding.wordIds != expectedWords {
                wordMismatches += 1
                if wordMismatches <= 5 {
                    XCTFail("\(label) line \(index + 1) word ids \(describe(text))\n  got      \(encoding.wordIds)\n  expected \(expectedWords)")
                }
            }
            XCTAssertEqual(encoding.typeIds, [Int](repeating: 0, count: encoding.count))
            XCTAssertEqual(encoding.attentionMask, [Int](repeating: 1, count: encoding.count))
        }
        XCTAssertEqual(idMismatches, 0, "\(label): \(idMismatches) of \(texts.count) lines have other ids")
        XCTAssertEqual(offsetMismatches, 0, "\(label): \(offsetMismatches) lines have other offsets")
        XCTAssertEqual(wordMismatches, 0, "\(label): \(wordMismatches) lines have other word ids")
        print("\(label): \(texts.count) lines, \(tokens) tokens compared")
    }
}
