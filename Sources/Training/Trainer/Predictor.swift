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
        let perHead = try decode(heads: model.heads, tokens: tokens)
        return texts.indices.map { index in model.heads.indices.map { (model.heads[$0].task, perHead[$0][index]) } }
    }

    /// Each head's decode JSON for every example of `tokens`: [head][example].
    public func decode(heads: [TaskHead], tokens: TokenizedDataset) throws -> [[String]] {
        var results = [[String]](repeating: [], count: heads.count)
        for start in stride(from: 0, to: tokens.count, by: batchSize) {
            let examples = Array(start..<min(start + batchSize, tokens.count))
            let batch = try AssembledBatch(parts: [(0, examples, tokens, true)])
            let part = batch.parts[0]
            let hidden = try model.encoder.infer(batch.packed, workspace: workspace)
            for (index, head) in heads.enumerated() {
                let wordIds = head.isTokenLevel ? part.wordIds : nil
                let width = head.instance.layout.outputWidth
                let (outputs, _) = try hidden.withUnsafeBufferPointer { features in
                    try head.instance.forward(features: features, sequenceOffsets: part.sequenceOffsets, wordIds: wordIds, training: false)
                }
                for row in examples.indices {
                    let rows = head.isTokenLevel
                        ? Int(part.sequenceOffsets[row])..<Int(part.sequenceOffsets[row + 1])
                        : row..<(row + 1)
                    results[index].append(try head.instance.decode(outputs: Array(outputs[(rows.lowerBound * width)..<(rows.upperBound * width)]),
                                                                   wordIds: wordIds.map { Array($0[rows]) }))
                }
            }
        }
        return results
    }
}
