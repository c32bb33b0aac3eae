// BertConfig: the architecture keys of a Hugging Face BERT config.json.

import Foundation
import Kernels

/// The hyper-parameters of a BERT encoder, decoded from config.json.
///
/// Keys map from Hugging Face's snake_case names; a missing key takes transformers'
/// BertConfig default. `load(contentsOf:)` also refuses what Polyhead does not implement,
/// naming the key and value.
///
/// ```swift
/// let config = try BertConfig.load(contentsOf: modelDirectory.appendingPathComponent("config.json"))
/// ```
public struct BertConfig: Codable, Sendable, Equatable {
    public var modelType: String?
    public var vocabSize = 30522
    public var hiddenSize = 768
    public var numHiddenLayers = 12
    public var numAttentionHeads = 12
    public var intermediateSize = 3072
    public var hiddenAct = "gelu"
    public var hiddenDropoutProb: Float = 0.1
    public var attentionProbsDropoutProb: Float = 0.1
    public var maxPositionEmbeddings = 512
    public var typeVocabSize = 2
    public var initializerRange: Float = 0.02
    public var layerNormEps: Float = 1e-12
    public var padTokenId = 0
    public var positionEmbeddingType = "absolute"
    public var isDecoder = false
    public var addCrossAttention = false

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case intermediateSize = "intermediate_size"
        case hiddenAct = "hidden_act"
        case hiddenDropoutProb = "hidden_dropout_prob"
        case attentionProbsDropoutProb = "attention_probs_dropout_prob"
        case maxPositionEmbeddings = "max_position_embeddings"
        case typeVocabSize = "type_vocab_size"
        case initializerRange = "initializer_range"
        case layerNormEps = "layer_norm_eps"
        case padTokenId = "pad_token_id"
        case positionEmbeddingType = "position_embedding_type"
        case isDecoder = "is_decoder"
        case addCrossAttention = "add_cross_attention"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try container.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        modelType = try container.decodeIfPresent(String.self, forKey: .modelType)
        vocabSize = try value(.vocabSize, vocabSize)
        hiddenSize = try value(.hiddenSize, hiddenSize)
        numHiddenLayers = try value(.numHiddenLayers, numHiddenLayers)
        numAttentionHeads = try value(.numAttentionHeads, numAttentionHeads)
        intermediateSize = try value(.intermediateSize, intermediateSize)
        hiddenAct = try value(.hiddenAct, hiddenAct)
        hiddenDropoutProb = try value(.hiddenDropoutProb, hiddenDropoutProb)
        attentionProbsDropoutProb = try value(.attentionProbsDropoutProb, attentionProbsDropoutProb)
        maxPositionEmbeddings = try value(.maxPositionEmbeddings, maxPositionEmbeddings)
        typeVocabSize = try value(.typeVocabSize, typeVocabSize)
        initializerRange = try value(.initializerRange, initializerRange)
        layerNormEps = try value(.layerNormEps, layerNormEps)
        // transformers writes null for "no pad token".
        padTokenId = (try? container.decodeIfPresent(Int.self, forKey: .padTokenId)) ?? padTokenId
        positionEmbeddingType = try value(.positionEmbeddingType, positionEmbeddingType)
        isDecoder = try value(.isDecoder, isDecoder)
        addCrossAttention = try value(.addCrossAttention, addCrossAttention)
    }

    /// Decodes and validates a config.json.
    /// - Throws: `EncoderError.unreadableConfig`, `.unsupportedConfig` or `.invalidConfig`
    ///   naming the file and the key.
    public static func load(contentsOf url: URL) throws -> BertConfig {
        let file = url.path
        guard let data = FileManager.default.contents(atPath: file) else {
            throw EncoderError.unreadableConfig(file: file, reason: "no such file or not readable")
        }
        let config: BertConfig
        do {
            config = try JSONDecoder().decode(BertConfig.self, from: data)
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw EncoderError.unreadableConfig(file: file, reason: "key \(key): \(context.debugDescription)")
        } catch {
            throw EncoderError.unreadableConfig(file: file, reason: "not valid JSON: \(error.localizedDescription)")
        }
        try config.validate(file: file)
        return config
    }

    /// Refuses configurations this encoder would silently compute wrongly.
    public func validate(file: String = "config.json") throws {
        if let modelType, modelType != "bert" {
            throw EncoderError.unsupportedConfig(file: file, key: "model_type", value: "\"\(modelType)\"",
                                                 hint: "only BERT-architecture checkpoints (model_type \"bert\") are implemented")
        }
        if positionEmbeddingType != "absolute" {
            throw EncoderError.unsupportedConfig(file: file, key: "position_embedding_type", value: "\"\(positionEmbeddingType)\"",
                                                 hint: "only \"absolute\" position embeddings are implemented")
        }
        if isDecoder {
            throw EncoderError.unsupportedConfig(file: file, key: "is_decoder", value: "true", hint: "Polyhead runs bidirectional encoders only")
        }
        if addCrossAttention {
            throw EncoderError.unsupportedConfig(file: file, key: "add_cross_attention", value: "true", hint: "cross-attention is not implemented")
        }
        if Activation(huggingFaceName: hiddenAct) == nil {
            throw EncoderError.unsupportedConfig(file: file, key: "hidden_act", value: "\"\(hiddenAct)\"",
                                                 hint: "supported: \"gelu\" (exact erf), \"gelu_new\" / \"gelu_pytorch_tanh\" (tanh approximation), \"relu\"")
        }
        let positives: [(String, Int)] = [
            ("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("num_hidden_layers", numHiddenLayers),
            ("num_attention_heads", numAttentionHeads), ("intermediate_size", intermediateSize),
            ("max_position_embeddings", maxPositionEmbeddings), ("type_vocab_size", typeVocabSize),
        ]
        for (key, value) in positives where value <= 0 {
            throw EncoderError.invalidConfig(file: file, key: key, value: "\(value)", reason: "must be positive")
        }
        if hiddenSize % numAttentionHeads != 0 {
            throw EncoderError.invalidConfig(file: file, key: "hidden_size", value: "\(hiddenSize)",
                                             reason: "not a multiple of num_attention_heads (\(numAttentionHeads))")
        }
        for (key, value) in [("hidden_dropout_prob", hiddenDropoutProb), ("attention_probs_dropout_prob", attentionProbsDropoutProb)]
        where !(value >= 0 && value < 1) {
            throw EncoderError.invalidConfig(file: file, key: key, value: "\(value)", reason: "must be in [0, 1)")
        }
        if !(layerNormEps > 0) {
            throw EncoderError.invalidConfig(file: file, key: "layer_norm_eps", value: "\(layerNormEps)", reason: "must be positive")
        }
    }

    /// The feed-forward activation (validated by `validate`; exact GELU otherwise).
    public var activation: Activation { Activation(huggingFaceName: hiddenAct) ?? .gelu }

    public var headSize: Int { hiddenSize / numAttentionHeads }
}

extension Activation {
    /// The activation a transformers `hidden_act` string names, or nil if not implemented.
    public init?(huggingFaceName name: String) {
        switch name {
        case "gelu": self = .gelu
        case "gelu_new", "gelu_pytorch_tanh": self = .geluTanh
        case "relu": self = .relu
        default: return nil
        }
    }
}
