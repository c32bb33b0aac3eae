import Foundation
import XCTest
@testable import Training

final class DataTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try DataSideFixtures.temporaryDirectory()
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(at: directory)
    }

    /// Writes `contents` to a file in the test's directory and returns its path.
    func write(_ name: String, _ contents: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try contents.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    /// A task as the config would give it.
    func task(_ name: String = "t", type: TaskType = .classification, train: String, dev: String? = nil,
              fields: FieldNames? = nil, labels: [String]? = nil, classWeights: ClassWeightSetting = .none) -> TaskConfig {
        let location = ConfigLocation(file: "run.yaml", line: 1, keyPath: "tasks.\(name)")
        let defaultFields = FieldNames(label: type == .tokenClassification ? "labels" : "label", words: type == .tokenClassification ? "words" : nil)
        return TaskConfig(name: name, type: type, head: ComponentSettings(plugin: type.defaultHeadPlugin, location: location),
                          data: DataFiles(train: train, dev: dev, test: nil), fields: fields ?? defaultFields, labels: labels,
                          metrics: MetricName.defaults(for: type), lossWeight: 1, sampling: TaskSamplingSettings(),
                          classWeights: classWeights, router: nil, adapter: nil, location: location)
    }

    func assertDataError(_ body: @autoclosure () throws -> Any, file expectedFile: String, line expectedLine: Int?, contains fragments: [String],
                         file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let dataError = error as? DataError else { return XCTFail("expected a DataError, got \(error)", file: file, line: line) }
            XCTAssertEqual(dataError.file, expectedFile, file: file, line: line)
            XCTAssertEqual(dataError.line, expectedLine, dataError.description, file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(dataError.description.contains(fragment), "\"\(dataError)\" lacks \"\(fragment)\"", file: file, line: line)
            }
        }
    }

    // MARK: Reading valid files

    /// One file, two tasks with their own label fields; rows without a task's label are masked.
    func testSharedFileMasksMissingLabelsPerTask() throws {
        let path = DataSideFixtures.path("data", "shared.jsonl")
        var loader = DatasetLoader(skipMalformedRows: false)
        let topic = try loader.load(task("topic", train: path, fields: FieldNames(label: "topic")))
        XCTAssertEqual(topic.labelNames, ["animal", "artifact"])
        XCTAssertEqual(topic.train.examples.map(\.line), [1, 2, 5, 6])
        XCTAssertEqual(topic.train.examples.map(\.label), [.classIndex(0), .classIndex(1), .classIndex(0), .classIndex(1)])
        XCTAssertEqual(topic.train.maskedRowCount, 1)

        let score = try loader.load(task("score", type: .regression, train: path, fields: FieldNames(label: "score")))
        XCTAssertEqual(score.labelNames, [])
        XCTAssertEqual(score.outputCount, 1)
        XCTAssertEqual(score.train.examples.map(\.line), [1, 4, 6])
        XCTAssertEqual(score.train.examples.map(\.label), [.values([0.5]), .values([1.0]), .values([2])])
        // Row 2 lacks "score", row 5 has null.
        XCTAssertEqual(score.train.maskedRowCount, 2)
        XCTAssertEqual(score.train.examples.first?.text, "a small gray bird")
    }

    /// RFC 4180: quoted commas, doubled quotes, a line break inside a field, CRLF endings.
    func testCSVQuotingAndTSVGiveTheSameExamples() throws {
        let fields = FieldNames(text: "text", textPair: "text_pair", label: "label")
        var loader = DatasetLoader(skipMalformedRows: false)
        let csv = try loader.load(task(train: DataSideFixtures.path("data", "pairs.csv"), fields: fields)).train
        XCTAssertEqual(csv.examples.map(\.text), ["Smith, John", "plain", ""])
        XCTAssertEqual(csv.examples.map(\.textPair), ["He said \"hi\"", "two\nlines", "empty first"])
        XCTAssertEqual(csv.examples.map(\.line), [2, 3, 5], "a record starts on the line after a quoted line break")
        XCTAssertEqual(csv.labelNames, ["no", "yes"])
        XCTAssertEqual(csv.examples.map(\.label), [.classIndex(1), .classIndex(0), .classIndex(1)])

        let tsv = try loader.load(task(train: DataSideFixtures.path("data", "pairs.tsv"), fields: fields)).train
        XCTAssertEqual(tsv.examples.map(\.text), ["Smith, John", "plain", ""])
        XCTAssertEqual(tsv.examples.map(\.textPair), ["He said \"hi\"", "two lines", "empty first"])
        XCTAssertEqual(tsv.examples.map(\.line), [2, 3, 4])
        XCTAssertEqual(tsv.examples.map(\.label), csv.examples.map(\.label))
    }

    func testTokenTaskReadsWordsAndOneLabelPerWord() throws {
        var loader = DatasetLoader(skipMalformedRows: false)
        let data = try loader.load(task(type: .tokenClassification, train: DataSideFixtures.path("data", "tokens.jsonl")))
        XCTAssertEqual(data.labelNames, ["O", "noun.animal", "noun.location"])
        let examples = data.train.examples
        XCTAssertEqual(examples.count, 2)
        XCTAssertEqual(examples[0].words, ["the", "cat", "sat"])
        XCTAssertEqual(examples[0].label, .wordClasses([0, 1, 0]))
        // No "text" field: the words joined by spaces stand in.
        XCTAssertEqual(examples[1].text, "New York is big")
        XCTAssertEqual(examples[1].label, .wordClasses([2, 2, 0, 0]))
        XCTAssertEqual(data.train.maskedRowCount, 1)
        XCTAssertEqual(data.train.classCounts(), [4, 1, 2])
    }

    func testMultiLabelAndMultiOutputRegressionFromCSVCells() throws {
        let path = DataSideFixtures.path("data", "multi.csv")
        var loader = DatasetLoader(skipMalformedRows: false)
        let multi = try loader.load(task("m", type: .multiLabel, train: path, labels: ["a", "b", "c"]))
        XCTAssertEqual(multi.train.examples.map(\.label), [.classIndices([0, 2]), .classIndices([])])
        XCTAssertEqual(multi.train.maskedRowCount, 1)
        let regression = try loader.load(task("r", type: .regression, train: path, fields: FieldNames(label: "values")))
        XCTAssertEqual(regression.outputCount, 2)
        XCTAssertEqual(regression.train.examples.map(\.label), [.values([1.5, -2]), .values([0, 0]), .values([3, 4])])
    }

    func testInferredIntegerLabelsSortNumerically() throws {
        let path = try write("ints.jsonl", """
            {"text": "a", "label": 10}
            {"text": "b", "label": 2}
            {"text": "c", "label": 0}
            """)
        var loader = DatasetLoader(skipMalformedRows: false)
        let data = try loader.load(task(train: path))
        XCTAssertEqual(data.labelNames, ["0", "2", "10"])
        XCTAssertEqual(data.train.examples.map(\.label), [.classIndex(2), .classIndex(1), .classIndex(0)])
    }

    func testConfiguredLabelsTakeIntegerIndices() throws {
        let jsonl = try write("indices.jsonl", """
            {"text": "a", "label": 1}
            {"text": "b", "label": "neg"}
            """)
        let csv = try write("indices.csv", "text,label\na,1\nb,neg\n")
        var loader = DatasetLoader(skipMalformedRows: false)
        for path in [jsonl, csv] {
            let data = try loader.load(task(train: path, labels: ["neg", "pos"]))
            XCTAssertEqual(data.train.examples.map(\.label), [.classIndex(1), .classIndex(0)], path)
        }
    }

    func testDevSplitUsesTheTrainingLabelSetAndOutputCount() throws {
        let train = try write("train.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"y\"}\n")
        let dev = try write("dev.jsonl", "{\"text\": \"c\", \"label\": \"y\"}\n")
        var loader = DatasetLoader(skipMalformedRows: false)
        let data = try loader.load(task(train: train, dev: dev))
        XCTAssertEqual(data.dev?.examples.map(\.label), [.classIndex(1)])
        XCTAssertEqual(data.dev?.split, .dev)

        let unseen = try write("dev2.jsonl", "{\"text\": \"c\", \"label\": \"z\"}\n")
        assertDataError(try loader.load(task(train: train, dev: unseen)), file: unseen, line: 1,
                        contains: ["unknown label 'z' for task t; known labels: x, y", "labels are inferred from the training file"])
    }

    // MARK: Errors with file:line

    func testMalformedJSONNamesLineAndColumn() throws {
        let path = try write("bad.jsonl", """
            {"text": "fine", "label": "a"}
            {"text": "fine", "label": "b"}
            {"text": "broken", "label": "a"
            """)
        var loader = DatasetLoader(skipMalformedRows: false)
        assertDataError(try loader.load(task(train: path, labels: ["a", "b"])), file: path, line: 3,
                        contains: ["invalid JSON at column 32", "skip_malformed_rows"])
    }

    func testMissingTextField() throws {
        let path = try write("missing.jsonl", """
            {"text": "fine", "label": "a"}
            {"sentence": "wrong field", "label": "a"}
            """)
        var loader = DatasetLoader(skipMalformedRows: false)
        assertDataError(try loader.load(task(train: path)), file: path, line: 2,
                        contains: ["missing field 'text'", "fields.text"])
    }

    func testMissingPairField() throws {
        let path = try write("pair.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n")
        var loader = DatasetLoader(skipMalformedRows: false)
        assertDataError(try loader.load(task(train: path, fields: FieldNames(textPair: "second"))), file: path, line: 1,
                        contains: ["missing field 'second'"])
    }

    func testWrongTypes() throws {
        var loader = DatasetLoader(skipMalformedRows: false)
        let listLabel = try write("list.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": [\"x\"]}\n")
        assertDataError(try loader.load(task(train: listLabel)), file: listLabel, line: 2,
                        contains: ["field 'label': expected a class name or index, got an array"])
        let numberText = try write("number.jsonl", "{\"text\": 12, \"label\": \"x\"}\n")
        assertDataError(try loader.load(task(train: numberText)), file: numberText, line: 1,
                        contains: ["field 'text': expected a string, got an integer"])
        let textTarget = try write("target.jsonl", "{\"text\": \"a\", \"label\": 1.5}\n{\"text\": \"b\", \"label\": \"high\"}\n")
        assertDataError(try loader.load(task(type: .regression, train: textTarget)), file: textTarget, line: 2,
                        contains: ["field 'label': expected a number, got a string"])
        let widths = try write("widths.jsonl", "{\"text\": \"a\", \"label\": [1, 2]}\n{\"text\": \"b\", \"label\": [1]}\n")
        assertDataError(try loader.load(task(type: .regression, train: widths)), file: widths, line: 2,
                        contains: ["expected 2 values as in the first training row, got 1"])
    }

    func testCSVStrayQuoteAndFieldCount() throws {
        var loader = DatasetLoader(skipMalformedRows: false)
        let stray = try write("stray.csv", "text,label\nfine,a\nsay \"hi\" there,a\n")
        assertDataError(try loader.load(task(train: stray)), file: stray, line: 3,
                        contains: ["a quote inside unquoted field 1"])
        let afterQuote = try write("after.csv", "text,label\n\"quoted\" tail,a\n")
        assertDataError(try loader.load(task(train: afterQuote)), file: afterQuote, line: 2,
                        contains: ["unexpected text after the closing quote of field 1"])
        let count = try write("count.csv", "text,label\nfine,a\n\"multi\nline\",a\nunquoted, comma,a\n")
        assertDataError(try loader.load(task(train: count)), file: count, line: 5,
                        contains: ["expected 2 fields as in the header, got 3", "quote fields that contain a comma"])
        let tsv = try write("count.tsv", "text\tlabel\nfine\ta\nextra\ttab\ta\n")
        assertDataError(try loader.load(task(train: tsv)), file: tsv, line: 3, contains: ["expected 2 fields as in the header, got 3"])
    }

    func testCSVUnterminatedQuoteStopsEvenWhenSkipping() throws {
        let path = try write("open.csv", "text,label\nfine,a\n\"never closed,a\nmore,a\n")
        var loader = DatasetLoader(skipMalformedRows: true)
        assertDataError(try loader.load(task(train: path)), file: path, line: 3, contains: ["a quoted field opened here is never closed"])
    }

    func testCSVHeaderProblems() throws {
        var loader = DatasetLoader(skipMalformedRows: false)
        let duplicate = try write("dup.csv", "text,text\na,b\n")
        assertDataError(try loader.load(task(train: duplicate)), file: duplicate, line: 1, contains: ["the header names 'text' twice"])
        let empty = try write("empty.csv", "")
        assertDataError(try loader.load(task(train: empty)), file: empty, line: nil, contains: ["expected a header row"])
    }

    func testMismatchedWordsAndLabels() throws {
        let path = try write("tokens.jsonl", """
            {"words": ["a", "b"], "labels": ["O", "X"]}
            {"words": ["a", "b", "c"], "labels": ["O", "X"]}
            """)
        var loader = DatasetLoader(skipMalformedRows: false)
        assertDataError(try loader.load(task(type: .tokenClassification, train: path)), file: path, line: 2,
                        contains: ["3 words in 'words' but 2 labels in 'labels'", "one label per word"])
    }

    func testUnknownLabelListsKnownLabels() throws {
        let path = try write("unknown.jsonl", """
            {"text": "a", "label": "noun.animal"}
            {"text": "b", "label": "noun.anmal"}
            """)
        var loader = DatasetLoader(skipMalformedRows: true)
        // Unknown labels stop the run even when malformed rows may be skipped.
        assertDataError(try loader.load(task(train: path, labels: ["noun.animal", "noun.plant"])), file: path, line: 2,
                        contains: ["unknown label 'noun.anmal' for task t; known labels: noun.animal, noun.plant",
                                   "did you mean 'noun.animal'?", "tasks.t.labels"])
        let index = try write("index.jsonl", "{\"text\": \"a\", \"label\": 7}\n")
        assertDataError(try loader.load(task(train: index, labels: ["x", "y"])), file: index, line: 1,
                        contains: ["class index 7 in field 'label' is out of range for task t (0..<2); known labels: x, y"])
    }

    func testUnknownFileExtensionAndMissingFile() {
        var loader = DatasetLoader(skipMalformedRows: false)
        assertDataError(try loader.load(task(train: "rows.parquet")), file: "rows.parquet", line: nil, contains: ["name the file .jsonl, .csv or .tsv"])
        assertDataError(try loader.load(task(train: "/nonexistent/rows.jsonl")), file: "/nonexistent/rows.jsonl", line: nil, contains: ["cannot read the file"])
    }

    // MARK: Skipping

    func testSkipAndCountMalformedRows() throws {
        let path = try write("mixed.jsonl", """
            {"text": "ok one", "label": "a"}
            {"text": "bad json"
            ["not", "an", "object"]
            {"label": "a"}
            {"text": "ok two", "label": "b"}
            {"text": "wrong type", "label": {"x": 1}}
            {"text": "no label"}
            """)
        var strict = DatasetLoader(skipMalformedRows: false)
        assertDataError(try strict.load(task(train: path)), file: path, line: 2, contains: ["invalid JSON"])

        var loader = DatasetLoader(skipMalformedRows: true)
        let data = try loader.load(task(train: path))
        XCTAssertEqual(data.train.examples.map(\.line), [1, 5])
        XCTAssertEqual(data.train.skippedRowCount, 4)
        XCTAssertEqual(data.train.skipped.map(\.line), [2, 3, 4, 6])
        XCTAssertEqual(data.train.maskedRowCount, 1)
        XCTAssertTrue(data.train.skipped[2].description.hasPrefix("\(path):4: missing field 'text'"), data.train.skipped[2].description)
        XCTAssertEqual(MultiTaskData(tasks: [data]).skippedRowCount, 4)
    }

    func testSkippedRowsOfASharedFileCountOnce() throws {
        let path = try write("shared.jsonl", """
            {"text": "a", "x": "p", "y": "q"}
            not json
            {"text": "b", "x": "p", "y": "q"}
            """)
        var loader = DatasetLoader(skipMalformedRows: true)
        let first = try loader.load(task("first", train: path, fields: FieldNames(label: "x")))
        let second = try loader.load(task("second", train: path, fields: FieldNames(label: "y")))
        XCTAssertEqual(first.train.skippedRowCount, 1)
        XCTAssertEqual(second.train.skippedRowCount, 1)
        XCTAssertEqual(MultiTaskData(tasks: [first, second]).skippedRowCount, 1)
    }

    func testCSVRowsAreSkippedAndReadingResumesOnTheNextLine() throws {
        let path = try write("skip.csv", "text,label\nfine,a\nbad \"quote\",a\ntoo,many,fields\nalso fine,b\n")
        var loader = DatasetLoader(skipMalformedRows: true)
        let data = try loader.load(task(train: path))
        XCTAssertEqual(data.train.examples.map(\.text), ["fine", "also fine"])
        XCTAssertEqual(data.train.skipped.map(\.line), [3, 4])
    }

    // MARK: Class weights

    func testBalancedAndExplicitClassWeights() throws {
        let path = try write("imbalanced.jsonl", (["a", "a", "a", "b"].map { "{\"text\": \"t\", \"label\": \"\($0)\"}" }).joined(separator: "\n"))
        var loader = DatasetLoader(skipMalformedRows: false)
        let balanced = try loader.load(task(train: path, labels: ["a", "b", "c"], classWeights: .balanced))
        // 4 samples, 2 classes present: a -> 4 / (2 * 3), b -> 4 / (2 * 1); c never occurs.
        XCTAssertEqual(balanced.classWeights, [Float(4.0 / 6.0), 2, 0])

        let location = ConfigLocation(file: "run.yaml", line: 12, keyPath: "tasks.t.class_weights.b")
        let explicit = try loader.load(task(train: path, classWeights: .explicit([ExplicitClassWeight(label: "b", weight: 3, location: location)])))
        XCTAssertEqual(explicit.classWeights, [1, 3])

        let typo = ConfigLocation(file: "run.yaml", line: 13, keyPath: "tasks.t.class_weights.bb")
        XCTAssertThrowsError(try loader.load(task(train: path, classWeights: .explicit([ExplicitClassWeight(label: "bb", weight: 3, location: typo)])))) { error in
            XCTAssertEqual("\(error)", "run.yaml:13: tasks.t.class_weights.bb: 'bb' is not a label of this task; known labels: a, b; did you mean 'b'?")
        }
    }

    // MARK: JSON parser

    func testJSONParserValuesAndErrors() throws {
        let value = try JSONNode.parse(#" {"a": [1, -2.5e1, true, null, "x\"\u00e9\ud83d\ude00"], "b": {}} "#)
        XCTAssertEqual(value, .object(JSONObject([("a", .array([.integer(1), .number(-25), .bool(true), .null, .string("x\"é😀")])), ("b", .object(JSONObject()))])))
        XCTAssertEqual(value.jsonText, #"{"a":[1,-25.0,true,null,"x\"é😀"],"b":{}}"#)
        for (text, column) in [("{\"a\": 01}", 7), ("[1, 2", 6), ("{\"a\" 1}", 6), ("\"\\q\"", 2), ("[1] x", 5), ("tru", 1), ("\"\\ud800\"", 8)] {
            XCTAssertThrowsError(try JSONNode.parse(text), text) { error in
                XCTAssertEqual((error as? JSONSyntaxError)?.column, column, "\(text): \(error)")
            }
        }
    }
}
