import Encoder
import Foundation
import PluginHost
import XCTest
@testable import Training

/// What the Predictor hands out: token heads label exactly the words of the input, each at its
/// first piece, also when words are cut off or have no pieces at all.
final class TrainerPredictionTests: XCTestCase {
    private func trainedTagger(_ runs: TinyRuns) throws -> MultiTaskModel {
        let config = try runs.load(runs.config(tasks: [TinyRuns.task("tags")], training: tinyTraining(steps: 4)))
        return try runs.train(config).trainer.model
    }

    /// The label of each word, computed by hand: encoder, head forward, argmax at the word's
    /// first piece.
    private func firstPieceLabels(_ model: MultiTaskModel, head: TaskHead, words: [String], maxLength: Int) throws -> [String] {
        let tokenization = try TaskTokenization(tokenizer: model.tokenizer, modelDirectory: model.tokenizerDirectory, maxLength: maxLength)
        let example = try tokenization.tokenize(TokenizerInput(text: words.joined(separator: " "), words: words))
        let hidden = try model.encoder.infer(try PackedBatch(tokenIds: example.ids, tokenTypeIds: example.typeIds, sequenceOffsets: [0, example.ids.count]))
        let (outputs, _) = try hidden.withUnsafeBufferPointer { features in
            try head.instance.forward(features: features, sequenceOffsets: [0, Int64(example.ids.count)], wordIds: example.wordIds, training: false)
        }
        let classes = head.labelNames.count
        var labels: [String] = []
        for (token, word) in example.wordIds.enumerated() where word >= 0 && Int(word) == labels.count {
            let row = Array(outputs[(token * classes)..<((token + 1) * classes)])
            labels.append(head.labelNames[row.indices.max { row[$0] < row[$1] }!])
        }
        return labels
    }

    private func labels(_ json: String) throws -> [String?] {
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let list = try XCTUnwrap(object["labels"] as? [Any], json)
        return list.map { $0 as? String }
    }

    func testTokenPredictionsAlignWithWords() throws {
        let runs = try TinyRuns()
        let model = try trainedTagger(runs)
        let head = try XCTUnwrap(model.head(named: "tags"))
        // "zebra" is five pieces, "cats" two: one label per word all the same.
        let words = ["the", "zebra", "sat", "on", "my", "cats", "."]
        let predictor = try Predictor(model: model, maxLength: 32)
        let predicted = try predictor.predict([(words.joined(separator: " "), nil)])[0]
        XCTAssertEqual(predicted.map(\.task), ["tags"])
        let expected = try firstPieceLabels(model, head: head, words: words, maxLength: 32)
        XCTAssertEqual(expected.count, words.count)
        XCTAssertEqual(try labels(predicted[0].json), expected)

        // Cut off by max_length: [CLS] the z ##e ##b [SEP]. The words whose first piece made
        // it keep their labels; the others are null, never shifted.
        let short = try Predictor(model: model, maxLength: 6).predict([(words.joined(separator: " "), nil)])[0]
        let cut = try firstPieceLabels(model, head: head, words: words, maxLength: 6)
        XCTAssertEqual(cut.count, 2)
        XCTAssertEqual(try labels(short[0].json), cut + [String?](repeating: nil, count: 5))

        // A word the tokenizer drops entirely (a zero-width space is removed as a format
        // character) leaves a null at its place, and scores as the outside tag.
        let dropped = ["the", "\u{200B}", "cat", "sat"]
        let tokenization = try TaskTokenization(tokenizer: model.tokenizer, modelDirectory: model.tokenizerDirectory, maxLength: 32)
        let example = try tokenization.tokenize(TokenizerInput(text: dropped.joined(separator: " "), words: dropped))
        XCTAssertEqual(example.wordIds, [-1, 0, 2, 3, -1])
        let tokens = TokenizedDataset(offsets: [0, example.ids.count], ids: example.ids, typeIds: example.typeIds, wordIds: example.wordIds, lines: [1])
        let json = try predictor.decode(heads: [head], tokens: tokens, wordCounts: [dropped.count])[0][0]
        let kept = try firstPieceLabels(model, head: head, words: ["the", "cat", "sat"], maxLength: 32)
        XCTAssertEqual(try labels(json), [kept[0], nil, kept[1], kept[2]])
        guard case .wordClasses(let classes) = try PredictionReader.label(from: json, head: head) else { return XCTFail(json) }
        XCTAssertEqual(classes.count, 4)
        XCTAssertEqual(head.labelNames[classes[1]], "O")
    }

    /// Sequence heads' JSON is passed through untouched; one line per text, in head order.
    func testPredictionsOfEveryHeadPerText() throws {
        let runs = try TinyRuns()
        let config = try runs.load(runs.config(training: tinyTraining(steps: 2)))
        let model = try runs.train(config).trainer.model
        let texts = ["the cat sat on the mat .", "my red car", "a zebra and a kite"]
        let predictions = try Predictor(model: model, maxLength: 32).predict(texts.map { ($0, nil) })
        XCTAssertEqual(predictions.count, 3)
        for (text, perHead) in zip(texts, predictions) {
            XCTAssertEqual(perHead.map(\.task), ["animal", "length", "tags"])
            let animal = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(perHead[0].json.utf8)) as? [String: Any])
            XCTAssertTrue(["animal", "thing"].contains(animal["label"] as? String ?? ""), perHead[0].json)
            XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(perHead[1].json.utf8)) as? [String: Any])
            XCTAssertEqual(try labels(perHead[2].json).count, text.split(separator: " ").count)
        }
    }
}
