// Pooling hidden states into one vector per sequence, and the sentence-embedding path that
// `polyhead embed` runs (sentence-transformers semantics).

import Foundation
import Kernels

/// How a sequence's hidden states become one vector.
public enum Pooling: String, Sendable, CaseIterable {
    /// Mean over the sequence's tokens (sentence-transformers' default "mean_tokens"; with
    /// packing there is no padding to mask out).
    case mean
    /// The first token's state ([CLS]).
    case cls
}

/// pooled (B * C) from packed hidden states (N * C).
public func poolForward(_ hidden: UnsafePointer<Float>, sequenceOffsets: [Int], channels: Int, pooling: Pooling) -> [Float] {
    var pooled = [Float](repeating: 0, count: (sequenceOffsets.count - 1) * channels)
    switch pooling {
    case .mean: meanPoolForward(&pooled, hidden, sequenceOffsets: sequenceOffsets, channels: channels)
    case .cls: clsPoolForward(&pooled, hidden, sequenceOffsets: sequenceOffsets, channels: channels)
    }
    return pooled
}

/// dhidden (N * C) += the gradient of `poolForward` given dpooled (B * C).
public func poolBackward(_ dhidden: UnsafeMutablePointer<Float>, _ dpooled: UnsafePointer<Float>, sequenceOffsets: [Int], channels: Int, pooling: Pooling) {
    switch pooling {
    case .mean: meanPoolBackward(dhidden, dpooled, sequenceOffsets: sequenceOffsets, channels: channels)
    case .cls: clsPoolBackward(dhidden, dpooled, sequenceOffsets: sequenceOffsets, channels: channels)
    }
}

extension BertEncoder {
    /// One embedding per sequence: eval forward, pooling, and L2 normalisation when asked
    /// (sentence-transformers' Normalize module).
    /// - Throws: `EncoderError.invalidBatch`.
    public func sentenceEmbeddings(_ batch: PackedBatch, pooling: Pooling, normalize: Bool, workspace: InferenceWorkspace? = nil) throws -> [[Float]] {
        let c = config.hiddenSize
        let hidden = try infer(batch, workspace: workspace)
        var pooled = hidden.withUnsafeBufferPointer { poolForward($0.baseAddress!, sequenceOffsets: batch.sequenceOffsets, channels: c, pooling: pooling) }
        if normalize { normalizeRows(&pooled, rows: batch.sequenceCount, channels: c) }
        return (0..<batch.sequenceCount).map { Array(pooled[($0 * c)..<(($0 + 1) * c)]) }
    }
}

/// One tokenized text: ids and token type ids, special tokens included, already truncated.
public struct TokenizedText: Sendable, Equatable {
    public var ids: [Int32]
    public var typeIds: [Int32]

    public init(ids: [Int32], typeIds: [Int32]) {
        self.ids = ids
        self.typeIds = typeIds
    }

    /// From a tokenizer's integer ids (any integer type).
    public init<I: BinaryInteger, J: BinaryInteger>(ids: [I], typeIds: [J]) {
        self.init(ids: ids.map { Int32(truncatingIfNeeded: $0) }, typeIds: typeIds.map { Int32(truncatingIfNeeded: $0) })
    }
}

/// Sentence embeddings for many texts, batch by batch: the library side of `polyhead embed`.
///
/// ```swift
/// let embedder = SentenceEmbedder(encoder: encoder, pooling: .mean, normalize: true)
/// let vectors = try embedder.embed(tokenized)   // one [C] per text, in order
/// ```
public struct SentenceEmbedder: Sendable {
    public let encoder: BertEncoder
    public var pooling: Pooling
    public var normalize: Bool
    /// Texts per encoder pass. Packing means no padding either way; this bounds memory.
    public var batchSize: Int

    public init(encoder: BertEncoder, pooling: Pooling = .mean, normalize: Bool = false, batchSize: Int = 32) {
        self.encoder = encoder
        self.pooling = pooling
        self.normalize = normalize
        self.batchSize = max(1, batchSize)
    }

    /// - Throws: `EncoderError.invalidBatch` for an empty text (no tokens at all), ids
    ///   outside the model, or a text longer than max_position_embeddings.
    public func embed(_ texts: [TokenizedText]) throws -> [[Float]] {
        var embeddings: [[Float]] = []
        embeddings.reserveCapacity(texts.count)
        let workspace = InferenceWorkspace()
        var start = 0
        while start < texts.count {
            let chunk = texts[start..<min(start + batchSize, texts.count)]
            let batch = try PackedBatch(sequences: chunk.map(\.ids), tokenTypes: chunk.map(\.typeIds))
            embeddings += try encoder.sentenceEmbeddings(batch, pooling: pooling, normalize: normalize, workspace: workspace)
            start += batchSize
        }
        return embeddings
    }
}

/// Defaults for embedding text with a model directory, read from the files
/// sentence-transformers and transformers leave there.
public enum EmbeddingDefaults {
    /// The truncation length `polyhead embed` uses when --max-length is not given:
    /// sentence_bert_config.json's max_seq_length if present (what sentence-transformers
    /// uses; 256 for all-MiniLM-L6-v2), else tokenizer_config.json's model_max_length when it
    /// is a real limit (transformers writes ~1e30 for "none"), else max_position_embeddings;
    /// never more than max_position_embeddings.
    public static func maxLength(modelDirectory: URL, config: BertConfig) -> Int {
        let limit = config.maxPositionEmbeddings
        if let value = integer(in: modelDirectory.appendingPathComponent("sentence_bert_config.json"), key: "max_seq_length"), value > 0 {
            return min(value, limit)
        }
        if let value = integer(in: modelDirectory.appendingPathComponent("tokenizer_config.json"), key: "model_max_length"), value > 0 {
            return min(value, limit)
        }
        return limit
    }

    /// The pooling named by a sentence-transformers 1_Pooling/config.json (mean unless it
    /// selects only the CLS token); mean when the file is absent.
    public static func pooling(modelDirectory: URL) -> Pooling {
        let url = modelDirectory.appendingPathComponent("1_Pooling/config.json")
        guard let data = FileManager.default.contents(atPath: url.path),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return .mean }
        let cls = object["pooling_mode_cls_token"] as? Bool ?? false
        let mean = object["pooling_mode_mean_tokens"] as? Bool ?? false
        return cls && !mean ? .cls : .mean
    }

    private static func integer(in url: URL, key: String) -> Int? {
        guard let data = FileManager.default.contents(atPath: url.path),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let number = object[key] as? NSNumber else { return nil }
        let value = number.doubleValue
        return value.isFinite && value < 1e9 ? Int(value) : nil
    }
}
