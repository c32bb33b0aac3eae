// Where every encoder parameter lives inside the one contiguous parameter block.
//
// Dimension legend: V vocabulary, P max positions, Y token types, C hidden, I intermediate,
// L layers. Names are Hugging Face BertModel names (no "bert." prefix); `CheckpointKeys`
// maps checkpoint keys onto them.

/// One named tensor inside a parameter block: `count` floats from `offset`.
public struct ParameterView: Sendable, Equatable {
    public let name: String
    public let offset: Int
    public let shape: [Int]
    /// The encoder layer this tensor belongs to, or nil for the embeddings.
    public let layer: Int?

    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }
}

/// Offsets of one transformer layer's tensors in the block.
public struct LayerOffsets: Sendable {
    /// query, key and value weights back to back: one [3C, C] matrix, so one GEMM makes qkv.
    public let qkvWeight: Int       // (3C, C)
    public let qkvBias: Int         // (3C)
    public let attentionOutputWeight: Int  // (C, C)
    public let attentionOutputBias: Int    // (C)
    public let attentionNormWeight: Int    // (C)
    public let attentionNormBias: Int      // (C)
    public let intermediateWeight: Int     // (I, C)
    public let intermediateBias: Int       // (I)
    public let outputWeight: Int           // (C, I)
    public let outputBias: Int             // (C)
    public let outputNormWeight: Int       // (C)
    public let outputNormBias: Int         // (C)
}

/// Offsets of the embedding tensors in the block.
public struct EmbeddingOffsets: Sendable {
    public let word: Int        // (V, C)
    public let position: Int    // (P, C)
    public let tokenType: Int   // (Y, C)
    public let normWeight: Int  // (C)
    public let normBias: Int    // (C)
}

/// The layout of all encoder parameters in one allocation; gradient blocks and optimizer
/// moments use the same layout, so zeroing or updating them is one loop over `totalCount`.
public struct ParameterLayout: Sendable {
    public let views: [ParameterView]
    public let totalCount: Int
    public let embeddings: EmbeddingOffsets
    public let layers: [LayerOffsets]
    private let indexByName: [String: Int]

    public init(config: BertConfig) {
        let c = config.hiddenSize, i = config.intermediateSize
        var views: [ParameterView] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int], layer: Int? = nil) -> Int {
            let start = offset
            views.append(ParameterView(name: name, offset: start, shape: shape, layer: layer))
            offset += shape.reduce(1, *)
            return start
        }
        embeddings = EmbeddingOffsets(
            word: add("embeddings.word_embeddings.weight", [config.vocabSize, c]),
            position: add("embeddings.position_embeddings.weight", [config.maxPositionEmbeddings, c]),
            tokenType: add("embeddings.token_type_embeddings.weight", [config.typeVocabSize, c]),
            normWeight: add("embeddings.LayerNorm.weight", [c]),
            normBias: add("embeddings.LayerNorm.bias", [c]))
        var layers: [LayerOffsets] = []
        for layer in 0..<config.numHiddenLayers {
            let prefix = "encoder.layer.\(layer)."
            // Order matters: query/key/value weights, then their biases, must be adjacent.
            let qkvWeight = add(prefix + "attention.self.query.weight", [c, c], layer: layer)
            _ = add(prefix + "attention.self.key.weight", [c, c], layer: layer)
            _ = add(prefix + "attention.self.value.weight", [c, c], layer: layer)
            let qkvBias = add(prefix + "attention.self.query.bias", [c], layer: layer)
            _ = add(prefix + "attention.self.key.bias", [c], layer: layer)
            _ = add(prefix + "attention.self.value.bias", [c], layer: layer)
            layers.append(LayerOffsets(
                qkvWeight: qkvWeight, qkvBias: qkvBias,
                attentionOutputWeight: add(prefix + "attention.output.dense.weight", [c, c], layer: layer),
                attentionOutputBias: add(prefix + "attention.output.dense.bias", [c], layer: layer),
                attentionNormWeight: add(prefix + "attention.output.LayerNorm.weight", [c], layer: layer),
                attentionNormBias: add(prefix + "attention.output.LayerNorm.bias", [c], layer: layer),
                intermediateWeight: add(prefix + "intermediate.dense.weight", [i, c], layer: layer),
                intermediateBias: add(prefix + "intermediate.dense.bias", [i], layer: layer),
                outputWeight: add(prefix + "output.dense.weight", [c, i], layer: layer),
                outputBias: add(prefix + "output.dense.bias", [c], layer: layer),
                outputNormWeight: add(prefix + "output.LayerNorm.weight", [c], layer: layer),
                outputNormBias: add(prefix + "output.LayerNorm.bias", [c], layer: layer)))
        }
        self.views = views
        self.layers = layers
        totalCount = offset
        indexByName = Dictionary(uniqueKeysWithValues: views.enumerated().map { ($1.name, $0) })
    }

    /// The view named `name` (a Hugging Face BertModel name), or nil.
    public func view(named name: String) -> ParameterView? {
        indexByName[name].map { views[$0] }
    }

    /// The index of `name` in `views`, or nil.
    public func index(of name: String) -> Int? { indexByName[name] }
}

/// Which parameters receive gradients. Frozen parameters get no weight gradient, and the
/// backward pass stops below the lowest layer holding a trainable parameter.
public struct TrainableParameters: Sendable, Equatable {
    /// One flag per `ParameterLayout.views` entry.
    public var flags: [Bool]

    /// Everything trainable.
    public static func all(_ layout: ParameterLayout) -> TrainableParameters {
        TrainableParameters(flags: [Bool](repeating: true, count: layout.views.count))
    }

    /// Nothing trainable (a frozen encoder: backward does nothing).
    public static func none(_ layout: ParameterLayout) -> TrainableParameters {
        TrainableParameters(flags: [Bool](repeating: false, count: layout.views.count))
    }

    public init(flags: [Bool]) { self.flags = flags }

    /// Freezes every parameter whose name starts with one of `prefixes`
    /// (e.g. "embeddings.", "encoder.layer.0.").
    public mutating func freeze(prefixes: [String], in layout: ParameterLayout) {
        for (index, view) in layout.views.enumerated() where prefixes.contains(where: { view.name.hasPrefix($0) }) {
            flags[index] = false
        }
    }

    /// The lowest stage holding a trainable parameter: -1 for the embeddings, else a layer
    /// index; nil when nothing is trainable.
    public func lowestTrainableStage(_ layout: ParameterLayout) -> Int? {
        var lowest: Int?
        for (index, view) in layout.views.enumerated() where flags[index] {
            let stage = view.layer ?? -1
            lowest = min(lowest ?? stage, stage)
        }
        return lowest
    }
}
