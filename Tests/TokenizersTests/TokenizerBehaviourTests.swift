import Foundation
import XCTest
@testable import Tokenizers

/// The API around the reference behaviour: errors, padding, pairs, word alignment, loading
/// variants. Each test builds real tokenizer files (small ones in a temporary directory) or
/// uses the default model.
final class TokenizerBehaviourTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("polyhead-tokenizer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    /// A minimal tokenizer.json around `vocabulary` (ids in order), with the given sections.
    private func writeTokenizerJSON(_ vocabulary: [String], normalizer: String = "null", postProcessor: String = "null",
                                    model: String? = nil, name: String = "tokenizer.json") throws -> URL {
        let entries = vocabulary.enumerated().map { "\(jsonString($0.element)): \($0.offset)" }.joined(separator: ", ")
        let modelSection = model ?? """
            {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": {\(entries)}}
            """
        let text = """
            {"version": "1.0", "added_tokens": [], "normalizer": \(normalizer), "pre_tokenizer": {"type": "BertPreTokenizer"},
             "post_processor": \(postProcessor), "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true}, "model": \(modelSection)}
            """
        let url = scratch.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    private func jsonString(_ text: String) -> String {
        "\"" + text.unicodeScalars.map { $0.value < 0x80 ? String($0) : String(format: "\\u%04x", $0.value) }.joined() + "\""
    }

    // MARK: Loading

    func testMissingDirectoryNamesTheFileAndSetup() {
        XCTAssertThrowsError(try BertTokenizer(modelDirectory: scratch.appendingPathComponent("absent"))) { error in
            guard case TokenizerError.missingFile(let path, let hint) = error else { return XCTFail("got \(error)") }
            XCTAssertTrue(path.hasSuffix("absent/tokenizer.json"), path)
            XCTAssertTrue(hint.contains("scripts/setup"), hint)
        }
    }

    func testMalformedJSONNamesLineAndColumn() throws {
        let url = scratch.appendingPathComponent("tokenizer.json")
        try Data("{\n  \"model\": {\"type\": \"WordPiece\",\n  \"vocab\": {\"a\": 0,}}\n}".utf8).write(to: url)
        XCTAssertThrowsError(try BertTokenizer(tokenizerJSON: url)) { error in
            guard case TokenizerError.invalidFile(let path, let detail) = error else { return XCTFail("got \(error)") }
            XCTAssertEqual(path, url.path)
            XCTAssertTrue(detail.contains("line 3"), detail)
        }
    }

    func testUnsupportedModelTypeIsNamed() throws {
        let url = try writeTokenizerJSON([], model: #"{"type": "BPE", "vocab": {}, "merges": []}"#)
        XCTAssertThrowsError(try BertTokenizer(tokenizerJSON: url)) { error in
            guard case TokenizerError.unsupported(_, let detail) = error else { return XCTFail("got \(error)") }
            XCTAssertTrue(detail.contains("BPE"), detail)
        }
    }

    func testBadVocabularyEntryNamesTheKey() throws {
        let url = try writeTokenizerJSON([], model: #"{"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0, "a": "one"}}"#)
        XCTAssertThrowsError(try BertTokenizer(tokenizerJSON: url)) { error in
            guard case TokenizerError.invalidFile(_, let detail) = error else { return XCTFail("got \(error)") }
            XCTAssertTrue(detail.contains("model.vocab") && detail.contains("\"a\""), detail)
        }
    }

    func testMissingUnknownTokenIsAnError() throws {
        let url = try writeTokenizerJSON(["a", "b"])
        XCTAssertThrowsError(try BertTokenizer(tokenizerJSON: url)) { error in
            guard case TokenizerError.invalidFile(_, let detail) = error else { return XCTFail("got \(error)") }
            XCTAssertTrue(detail.contains("[UNK]"), detail)
        }
    }

    /// Swift's String == treats "é" and "e\u{301}" as equal; two vocabulary entries that
    /// differ only so must keep their own ids (the reference compares bytes).
    func testCanonicallyEquivalentTokensKeepTheirOwnIds() throws {
        let url = try writeTokenizerJSON(["[UNK]", "\u{E9}", "e\u{301}", "##\u{E9}"])
        let tokenizer = try BertTokenizer(tokenizerJSON: url)
        XCTAssertEqual(try tokenizer.encode("\u{E9}").ids, [1])
        XCTAssertEqual(try tokenizer.encode("e\u{301}").ids, [2])
        XCTAssertEqual(tokenizer.id(forToken: "e\u{301}"), 2)
        XCTAssertEqual(tokenizer.token(forId: 1)?.unicodeScalars.count, 1)
    }

    func testBertProcessingTemplateAndCRLFVocabulary() throws {
        let vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world"]
        let url = try writeTokenizerJSON(vocabulary, postProcessor: #"{"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]}"#)
        let fromJSON = try BertTokenizer(tokenizerJSON: url)
        XCTAssertEqual(try fromJSON.encode("Hello", pair: "world").ids, [2, 1, 3, 5, 3])  // no normalizer: "Hello" is unknown
        XCTAssertEqual(try fromJSON.encode("Hello", pair: "world").typeIds, [0, 0, 0, 1, 1])

        let vocabularyFile = scratch.appendingPathComponent("vocab.txt")
        try Data(vocabulary.joined(separator: "\r\n").appending("\r\n").utf8).write(to: vocabularyFile)
        let fromText = try BertTokenizer(vocabularyFile: vocabularyFile)
        XCTAssertEqual(fromText.vocabularySize, vocabulary.count)
        XCTAssertEqual(try fromText.encode("Hello", pair: "world").ids, [2, 4, 3, 5, 3])  // lowercased by default
        XCTAssertEqual(fromText.padId, 0)
    }

    func testStripAccentsFollowsLowercaseWhenUnset() throws {
        let tokenizer = try Fixtures.modelTokenizer()
        XCTAssertNil(tokenizer.normalizerOptions.stripAccents)
        XCTAssertTrue(tokenizer.normalizerOptions.lowercase)
        XCTAssertTrue(tokenizer.normalizerOptions.stripsAccents)
        XCTAssertFalse(NormalizerOptions(stripAccents: nil, lowercase: false).stripsAccents)
        XCTAssertEqual(tokenizer.tokenize("Héllo"), ["hello"])
    }

    // MARK: Encoding

    func testPairLayoutTypeIdsAndMasks() throws {
        let tokenizer = try Fixtures.modelTokenizer()
        let encoding = try tokenizer.encode("Hello world", pair: "How are you?")
        let cls = try XCTUnwrap(tokenizer.clsId)
        let sep = try XCTUnwrap(tokenizer.sepId)
        XCTAssertEqual(encoding.ids.first, cls)
        XCTAssertEqual(encoding.ids.filter { $0 == sep }.count, 2)
        let firstSeparator = try XCTUnwrap(encoding.ids.firstIndex(of: sep))
        XCTAssertEqual(encoding.typeIds, [Int](repeating: 0, count: firstSeparator + 1) + [Int](repeating: 1, count: encoding.count - firstSeparator - 1))
        XCTAssertEqual(encoding.specialTokensMask.enumerated().filter { $0.element == 1 }.map(\.offset), [0, firstSeparator, encoding.count - 1])
        XCTAssertEqual(encoding.sequenceIds[1], 0)
        XCTAssertEqual(encoding.sequenceIds[firstSeparator + 1], 1)
        XCTAssertNil(encoding.sequenceIds[0])
        XCTAssertEqual(tokenizer.specialTokenCount(pair: true), 3)
        XCTAssertEqual(tokenizer.specialTokenCount(pair: false), 2)

        let bare = try tokenizer.encode("Hello world", pair: "How are you?", addSpecialTokens: false)
        XCTAssertEqual(bare.count, encoding.count - 3)
        XCTAssertFalse(bare.ids.contains(cls))
        XCTAssertEqual(bare.typeIds.last, 1)
    }

    func testLiteralSpecialTokenInTextIsKeptWholeButNotMarkedSpecial() throws {
        let tokenizer = try Fixtures.modelTokenizer()
        let encoding = try tokenizer.encode("a [MASK] b")
        XCTAssertEqual(encoding.ids[2], tokenizer.maskId)
        XCTAssertEqual(encoding.specialTokensMask[2], 0)
        XCTAssertEqual(encoding.offsets[2], 2..<8)
        XCTAssertEqual(tokenizer.tokenize("[mask]").count, 3, "matching is case-sensitive, as in the reference")
    }

    func testWordIdsAndOffsetsAlignWordLabelsWithPieces() throws {
        let tokenizer = try Fixtures.modelTokenizer()
        let text = "Tokenization of naïve café-goers"
        let encoding = try tokenizer.encode(text)
        let scalars = Array(text.unicodeScalars)
        var words: [Int: String] = [:]
        for (index, word) in encoding.wordIds.enumerated() {
            guard let word else { continue }
            let piece = String(String.UnicodeScalarView(scalars[encoding.offsets[index]]))
            words[word, default: ""] += piece
        }
        // Pieces of one word put back together give the word as written (accents included).
        XCTAssertEqual(words.keys.sorted().map { words[$0] ?? "" }, ["Tokenization", "of", "naïve", "café", "-", "goers"])
        XCTAssertGreaterThan(encoding.wordIds.filter { $0 == 0 }.count, 1, "\"tokenization\" should be several pieces")
    }

    func testUTF8OffsetsConvertScalarOffsets() {
        let text = "é😀x"
        XCTAssertEqual(BertTokenizer.utf8Offsets([0..<1, 1..<2, 2..<3, 0..<0], in: text), [0..<2, 2..<6, 6..<7, 0..<0])
    }

    func testWordsLongerThanTheLimitBecomeOneUnknownToken() throws {
        let tokenizer = try Fixtures.modelTokenizer()
        let limit = String(repeating: "a", count: 100)
        let tooLong = limit + "a"
        XCTAssertFalse(try tokenizer.encode(limit).ids.contains(tokenizer.unknownId))
        let encoding = try tokenizer.encode("x " + tooLong)
        XCTAssertEqual(encoding.ids.dropFirst(2).first, tokenizer.unknownId)
        XCTAssertEqual(encoding.offsets[2], 2..<103)
        XCTAssertEqual(encoding.count, 4)
    }

    // MARK: Truncation and padding

    func testTruncationErrors() throws {
        let tokenizer = try Fixtures.modelTokenizer()
        XCTAssertThrowsError(try tokenizer.encode("one two three", pair: "four", maxLength: 2)) { error in
            guard case TokenizerError.invalidArgument(let detail) = error else { return XCTFail("got \(error)") }
            XCTAssertTrue(detail.contains("3 special tokens"), detail)
        }
        XCTAssertThrowsError(try tokenizer.encode("one two three four five", maxLength: 4, truncation: .onlySecond))
        XCTAssertNoThrow(try tokenizer.encode("one", maxLength: 4, truncation: .onlySecond), "nothing to cut: no second text needed")
        XCTAssertThrowsError(try tokenizer.encode("one", pair: "two three four five six", maxLength: 5, truncation: .onlyFirst))
        XCTAssertEqual(try tokenizer.encode("one two three four five", maxLength: 4).count, 4)
        XCTAssertThrowsError(try tokenizer.encodeBatch(["a", "b"], pairs: ["c"])) { error in
            guard case TokenizerError.invalidArgument = error else { return XCTFail("got \(error)") }
        }
    }

    func testPaddingLongestFixedMultipleAndLeft() throws {
        let tokenizer = try Fixtures.modelTokenizer()
        let padId = try XCTUnwrap(tokenizer.padId)
        var batch = try tokenizer.encodeBatch(["short", "a somewhat longer sentence here"], padding: .longest)
        XCTAssertEqual(batch[0].count, batch[1].count)
        let real = try tokenizer.encode("short").count
        XCTAssertEqual(batch[0].attentionMask, [Int](repeating: 1, count: real) + [Int](repeating: 0, count: batch[0].count - real))
        XCTAssertEqual(Array(batch[0].ids[real...]), [Int](repeating: padId, count: batch[0].count - real))
        XCTAssertEqual(batch[0].wordIds[real...].compactMap { $0 }, [])
        XCTAssertEqual(batch[0].specialTokensMask.last, 1)

        batch = try tokenizer.encodeBatch(["short"], padding: .maxLength(16))
        XCTAssertEqual(batch[0].count, 16)
        tokenizer.pad(&batch, to: .maxLength(17), multipleOf: 8)
        XCTAssertEqual(batch[0].count, 24)

        var left = [try tokenizer.encode("short")]
        tokenizer.pad(&left, to: .maxLength(6), side: .left)
        XCTAssertEqual(left[0].attentionMask, [0, 0, 0, 1, 1, 1])
        XCTAssertEqual(left[0].ids.first, padId)
    }

    // MARK: Decoding and threads

    func testDecodeJoinsPiecesAndCleansPunctuationSpaces() throws {
        let tokenizer = try Fixtures.modelTokenizer()
        let ids = try tokenizer.encode("Tokenization works, doesn't it? Yes!").ids
        XCTAssertEqual(tokenizer.decode(ids), "tokenization works, doesn ' t it? yes!")
        XCTAssertTrue(tokenizer.decode(ids, skipSpecialTokens: false).hasPrefix("[CLS] tokenization"))
        XCTAssertEqual(tokenizer.decode([999_999]), "", "unknown ids are skipped")
    }

    func testConcurrentUseGivesTheSameResults() throws {
        let tokenizer = try Fixtures.modelTokenizer()
        let texts = Array(try Fixtures.corpus().prefix(200))
        let expected = try tokenizer.encodeBatch(texts)
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var matches = [Bool](repeating: false, count: 4)
        }
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            let same = (try? tokenizer.encodeBatch(texts)) == expected
            results.lock.lock()
            results.matches[worker] = same
            results.lock.unlock()
        }
        XCTAssertEqual(results.matches, [true, true, true, true])
    }
}
