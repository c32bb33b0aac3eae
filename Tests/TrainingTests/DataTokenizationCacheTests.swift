import Foundation
import XCTest
@testable import Training

final class DataTokenizationCacheTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try DataSideFixtures.temporaryDirectory()
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(at: directory)
    }

    /// A whitespace tokenizer with BERT's special-token layout ([CLS] a [SEP] b [SEP]): enough
    /// to exercise the cache without the Tokenizers module. Counts its calls.
    final class WhitespaceTokenizer {
        var calls = 0

        func id(_ word: String) -> Int32 {
            Int32(truncatingIfNeeded: word.unicodeScalars.reduce(UInt32(7)) { $0 &* 31 &+ $1.value } % 30_000) + 1000
        }

        func tokenize(_ input: TokenizerInput) -> TokenizedExample {
            calls += 1
            var ids: [Int32] = [101], typeIds: [Int32] = [0], wordIds: [Int32] = [-1]
            let words = input.words ?? input.text.split(separator: " ").map(String.init)
            for (index, word) in words.enumerated() {
                ids.append(id(word)); typeIds.append(0); wordIds.append(input.words == nil ? -1 : Int32(index))
            }
            ids.append(102); typeIds.append(0); wordIds.append(-1)
            if let pair = input.textPair {
                for word in pair.split(separator: " ") { ids.append(id(String(word))); typeIds.append(1); wordIds.append(-1) }
                ids.append(102); typeIds.append(1); wordIds.append(-1)
            }
            return TokenizedExample(ids: ids, typeIds: typeIds, wordIds: wordIds)
        }
    }

    func loadDataset(_ path: String, type: TaskType = .classification, fields: FieldNames) throws -> TaskDataset {
        let location = ConfigLocation(file: "run.yaml", line: 1, keyPath: "tasks.t")
        let task = TaskConfig(name: "t", type: type, head: ComponentSettings(plugin: type.defaultHeadPlugin, location: location),
                              data: DataFiles(train: path, dev: nil, test: nil), fields: fields, labels: nil,
                              metrics: MetricName.defaults(for: type), lossWeight: 1, sampling: TaskSamplingSettings(),
                              classWeights: .none, router: nil, adapter: nil, location: location)
        var loader = DatasetLoader(skipMalformedRows: false)
        return try loader.load(task).train
    }

    func testMissThenHitThenRebuildWhenTheFileChanges() throws {
        let path = directory.appendingPathComponent("pairs.jsonl").path
        try """
            {"text": "a small bird", "text_pair": "it sings", "label": "yes"}
            {"text": "a hammer", "text_pair": "it sings", "label": "no"}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let fields = FieldNames(textPair: "text_pair")
        let cache = TokenizationCache(directory: directory.appendingPathComponent("cache").path)
        let tokenizer = WhitespaceTokenizer()
        let dataset = try loadDataset(path, fields: fields)

        let first = try cache.tokenized(dataset, fields: fields, vocabularyChecksum: "vocab-1", maxLength: 16, tokenize: tokenizer.tokenize)
        XCTAssertEqual(first.outcome, .miss)
        XCTAssertEqual(tokenizer.calls, 2)
        XCTAssertEqual(first.dataset.count, 2)
        XCTAssertEqual(first.dataset[0], tokenizer.tokenize(TokenizerInput(text: "a small bird", textPair: "it sings")))
        XCTAssertEqual(first.dataset.offsets, [0, 8, 15])
        XCTAssertEqual(first.dataset.lines, [1, 2])

        tokenizer.calls = 0
        let second = try cache.tokenized(dataset, fields: fields, vocabularyChecksum: "vocab-1", maxLength: 16, tokenize: tokenizer.tokenize)
        XCTAssertEqual(second.outcome, .hit)
        XCTAssertEqual(tokenizer.calls, 0)
        XCTAssertEqual(second.dataset, first.dataset)

        // Any part of the key changing means a different entry: the tokenizer runs again.
        let otherVocabulary = try cache.tokenized(dataset, fields: fields, vocabularyChecksum: "vocab-2", maxLength: 16, tokenize: tokenizer.tokenize)
        XCTAssertEqual(otherVocabulary.outcome, .miss)
        let otherLength = try cache.tokenized(dataset, fields: fields, vocabularyChecksum: "vocab-1", maxLength: 32, tokenize: tokenizer.tokenize)
        XCTAssertEqual(otherLength.outcome, .miss)
        XCTAssertEqual(tokenizer.calls, 4)

        // A rewritten file has another size: a new entry with the new rows.
        try """
            {"text": "a large bird", "text_pair": "it sings loudly", "label": "yes"}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let changed = try loadDataset(path, fields: fields)
        let third = try cache.tokenized(changed, fields: fields, vocabularyChecksum: "vocab-1", maxLength: 16, tokenize: tokenizer.tokenize)
        XCTAssertEqual(third.outcome, .miss)
        XCTAssertEqual(third.dataset.count, 1)
    }

    func testCorruptEntryIsRebuilt() throws {
        let path = directory.appendingPathComponent("rows.jsonl").path
        try "{\"text\": \"one two\", \"label\": \"a\"}\n".write(toFile: path, atomically: true, encoding: .utf8)
        let fields = FieldNames()
        let cacheDirectory = directory.appendingPathComponent("cache")
        let cache = TokenizationCache(directory: cacheDirectory.path)
        let tokenizer = WhitespaceTokenizer()
        let dataset = try loadDataset(path, fields: fields)
        let original = try cache.tokenized(dataset, fields: fields, vocabularyChecksum: "v", maxLength: 8, tokenize: tokenizer.tokenize)

        let entries = try FileManager.default.contentsOfDirectory(at: cacheDirectory, includingPropertiesForKeys: nil)
        XCTAssertEqual(entries.count, 1)
        var bytes = try [UInt8](Data(contentsOf: entries[0]))
        bytes.removeLast(3)
        try Data(bytes).write(to: entries[0])

        let rebuilt = try cache.tokenized(dataset, fields: fields, vocabularyChecksum: "v", maxLength: 8, tokenize: tokenizer.tokenize)
        XCTAssertEqual(rebuilt.outcome, .rebuilt(reason: "it is truncated"))
        XCTAssertEqual(rebuilt.dataset, original.dataset)
        XCTAssertEqual(try cache.tokenized(dataset, fields: fields, vocabularyChecksum: "v", maxLength: 8, tokenize: tokenizer.tokenize).outcome, .hit)
    }

    func testWordIdsOfTokenTasksComeFromTheWords() throws {
        let path = DataSideFixtures.path("data", "tokens.jsonl")
        let fields = FieldNames(label: "labels", words: "words")
        let dataset = try loadDataset(path, type: .tokenClassification, fields: fields)
        let cache = TokenizationCache(directory: directory.appendingPathComponent("cache").path)
        let result = try cache.tokenized(dataset, fields: fields, vocabularyChecksum: "v", maxLength: 16, tokenize: WhitespaceTokenizer().tokenize)
        XCTAssertEqual(result.dataset[1].wordIds, [-1, 0, 1, 2, 3, -1])
    }

    func testInconsistentTokenizerOutputNamesTheRow() throws {
        let path = DataSideFixtures.path("data", "shared.jsonl")
        let fields = FieldNames(label: "topic")
        let dataset = try loadDataset(path, fields: fields)
        let cache = TokenizationCache(directory: directory.appendingPathComponent("cache").path)
        XCTAssertThrowsError(try cache.tokenized(dataset, fields: fields, vocabularyChecksum: "v", maxLength: 16) { _ in
            TokenizedExample(ids: [101, 5, 102], typeIds: [0, 0], wordIds: [-1, -1, -1])
        }) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(path):1: the tokenizer returned 3 ids, 2 type ids and 3 word ids"), "\(error)")
        }
        XCTAssertThrowsError(try cache.tokenized(dataset, fields: fields, vocabularyChecksum: "v", maxLength: 2) { _ in
            TokenizedExample(ids: [101, 5, 102], typeIds: [0, 0, 0], wordIds: [-1, -1, -1])
        }) { error in
            XCTAssertTrue("\(error)".contains("more than max_length 2"), "\(error)")
        }
    }
}
