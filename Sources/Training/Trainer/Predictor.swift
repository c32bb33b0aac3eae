import Encoder
import Foundation
import PluginHost

/// Runs the encoder once per batch and every given head on its output, returning each head's
/// `decode` JSON per example. Evaluation and `polyhead predict` both go through here.
public final class Predictor {
    public let model: MultiTaskModel
    public let tokenization: TaskTokenization
    /// Sequences per encoder pass (no activations are kept, so larger than a training batch).
    public var batchSize = 64
    private let workspace = InferenceWorkspace()

    public init(model: MultiTaskModel, maxLength: Int) throws {
        self.model = model
        tokenization = try TaskTokenization(tokenizer: model.tokenizer, modelDirectory: model.tokenizerDirectory, maxLength: maxLength)
    }

    /// Predictions for raw texts. A single text is tokenised as whitespace-separated words, so
    /// token heads label those words; the ids are the same as for the plain text.
    /// - Returns: per text, (task, decode JSON) for every head of the model, in head order.
    public func predict(_ texts: [(text: String, pair: String?)]) throws -> [[(task: String, json: String)]] {
        let examples = try texts.map { text, pair in
            try tokenization.tokenize(pair == nil
                ? TokenizerInput(text: text, words: text.split(whereSeparator: \.isWhitespace).map(String.init))
                : TokenizerInput(text: text, textPair: pair))
        }
        var tokens = TokenizedDataset(offsets: [0], ids: [], typeIds: [], wordIds: [], lines: [])
        for (line, example) in examples.enumerated() {
            tokens.ids += example.ids
            tokens.typeIds += example.typeIds
            tokens.wordIds += example.wordIds
            tokens.lines.append(Int32(line + 1))
            tokens.offsets.append(tokens.ids.count)
        }
        let wordCounts = texts.map { $0.pair == nil ? $0.text.split(whereSeparator: \.isWhitespace).count : nil }
        let perHead = try decode(heads: model.heads, tokens: tokens, wordCounts: wordCounts)
        return texts.indices.map { index in model.heads.indices.map { (model.heads[$0].task, perHead[$0][index]) } }
    }

    /// Each head's decode JSON for every example of `tokens`: [head][example].
    /// - Parameter wordCounts: per example, the words a token head labels (nil: as many as
    ///   reached the encoder). A token head's `"labels"` then hold exactly one entry per word,
    ///   `null` for a word no piece of which reached the encoder (cut off by `max_length`, or
    ///   a word the tokenizer drops entirely), so labels never shift onto the wrong word.
    public func decode(heads: [TaskHead], tokens: TokenizedDataset, wordCounts: [Int?]? = nil) throws -> [[String]] {
        var results = [[String]](repeating: [], count: heads.count)
        try forEachBatch(heads: heads, tokens: tokens) { index, head, outputs, part, examples in
            let wordIds = head.isTokenLevel ? part.wordIds : nil
            let width = head.instance.layout.outputWidth
            for (row, example) in examples.enumerated() {
                let rows = head.isTokenLevel
                    ? Int(part.sequenceOffsets[row])..<Int(part.sequenceOffsets[row + 1])
                    : row..<(row + 1)
                let rowOutputs = Array(outputs[(rows.lowerBound * width)..<(rows.upperBound * width)])
                guard let wordIds else {
                    results[index].append(try head.instance.decode(outputs: rowOutputs, wordIds: nil))
                    continue
                }
                let alignment = WordAlignment(wordIds: Array(wordIds[rows]))
                let json = try head.instance.decode(outputs: rowOutputs, wordIds: alignment.consecutiveWordIds)
                results[index].append(try alignment.spread(json, wordCount: wordCounts?[example], task: head.task))
            }
        }
        return results
    }

    /// One head's raw outputs for every example of `tokens`, rows stacked ([B, C] for
    /// sequence heads, [T, C] for token heads): what a plugin's metric function reads.
    public func outputs(head: TaskHead, tokens: TokenizedDataset) throws -> [Float] {
        var all: [Float] = []
        try forEachBatch(heads: [head], tokens: tokens) { _, _, outputs, _, _ in all += outputs }
        return all
    }

    /// Runs the encoder once per batch (once per group of heads with the same adapters) and
    /// each head (through its router, if any) on the result, handing every head's outputs for
    /// the batch to `body`.
    private func forEachBatch(heads: [TaskHead], tokens: TokenizedDataset,
                              _ body: (_ index: Int, _ head: TaskHead, _ outputs: [Float], _ part: AssembledBatch.Part, _ examples: [Int]) throws -> Void) throws {
        let passes = model.encoderPasses(tasks: heads.map(\.task))
        for start in stride(from: 0, to: tokens.count, by: batchSize) {
            let examples = Array(start..<min(start + batchSize, tokens.count))
            let batch = try AssembledBatch(parts: [(0, examples, tokens, true)])
            let part = batch.parts[0]
            for (pass, adapters) in passes.adapters.enumerated() {
                let hidden = try model.encoder.infer(batch.packed, workspace: workspace, adapters: adapters)
                var routed: [String: [Float]] = [:]  // "router/task index" -> the router's features
                for (index, head) in heads.enumerated() where passes.passOfTask[index] == pass {
                    let wordIds = head.isTokenLevel ? part.wordIds : nil
                    var features = hidden
                    if let route = model.route(of: head.task) {
                        let key = "\(route.router.name)/\(route.index)"
                        if routed[key] == nil {
                            routed[key] = try hidden.withUnsafeBufferPointer {
                                try route.router.instance.forward(taskIndex: route.index, features: $0, sequenceOffsets: part.sequenceOffsets,
                                                                  wordIds: part.wordIds, training: false).outputs
                            }
                        }
                        features = routed[key]!
                    }
                    let (outputs, _) = try features.withUnsafeBufferPointer { features in
                        try head.instance.forward(features: features, sequenceOffsets: part.sequenceOffsets, wordIds: wordIds, training: false)
                    }
                    try body(index, head, outputs, part, examples)
                }
            }
        }
    }
}

/// The words of one sequence that have pieces, renumbered 0, 1, 2, ... for a token head's
/// `decode` (which labels each word at its first piece and needs consecutive word ids), and
/// the way back: the head's labels spread over every word, `null` for words without pieces.
struct WordAlignment {
    /// The word ids with words numbered by order of appearance; -1 stays -1.
    let consecutiveWordIds: [Int32]
    /// The original id of each renumbered word.
    let presentWords: [Int]

    init(wordIds: [Int32]) {
        var renumbered: [Int32: Int32] = [:]
        var present: [Int] = []
        consecutiveWordIds = wordIds.map { word in
            guard word >= 0 else { return -1 }
            if let number = renumbered[word] { return number }
            renumbered[word] = Int32(present.count)
            present.append(Int(word))
            return Int32(present.count - 1)
        }
        presentWords = present
    }

    /// `json` unchanged when every word has its label, else its `"labels"` list with one entry
    /// per word of `wordCount` (default: up to the last word present).
    func spread(_ json: String, wordCount: Int?, task: String) throws -> String {
        let count = wordCount ?? (presentWords.last.map { $0 + 1 } ?? 0)
        if presentWords == Array(0..<count) { return json }
        guard case .object(var object) = try? JSONNode.parse(json), case .array(let labels)? = object["labels"] else {
            throw TrainerError.prediction(task: task, message: "expected {\"labels\": [...]} from a token head, got \(json.prefix(80))")
        }
        guard labels.count == presentWords.count else {
            throw TrainerError.prediction(task: task, message: "\(labels.count) labels for \(presentWords.count) words with pieces")
        }
        var spread = [JSONNode](repeating: .null, count: max(count, (presentWords.last ?? -1) + 1))
        for (label, word) in zip(labels, presentWords) { spread[word] = label }
        object["labels"] = .array(spread)
        return JSONNode.object(object).jsonText
    }
}
