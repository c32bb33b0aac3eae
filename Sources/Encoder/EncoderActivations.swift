// The activation arena: everything the training forward keeps for backward, plus the
// backward's scratch, in one Float allocation (and one byte allocation for dropout masks)
// that grows when a larger batch arrives and is reused across steps.
//
// Dimension legend: N tokens, C hidden, I intermediate, A attention probabilities
// (H * sum of T^2 over sequences), L layers.

import Kernels

/// Dropout probabilities and the seed of one training step. Masks are a function of
/// (seed, site, element), so a step is reproducible from its seed.
public struct DropoutSettings: Sendable, Equatable {
    public var seed: UInt64
    public var hiddenProbability: Float
    public var attentionProbability: Float

    public init(seed: UInt64, hiddenProbability: Float, attentionProbability: Float) {
        self.seed = seed
        self.hiddenProbability = hiddenProbability
        self.attentionProbability = attentionProbability
    }

    /// No dropout (deterministic training forward, e.g. for gradient checks).
    public static let disabled = DropoutSettings(seed: 0, hiddenProbability: 0, attentionProbability: 0)

    /// The config's hidden_dropout_prob and attention_probs_dropout_prob.
    public static func fromConfig(_ config: BertConfig, seed: UInt64) -> DropoutSettings {
        DropoutSettings(seed: seed, hiddenProbability: config.hiddenDropoutProb, attentionProbability: config.attentionProbsDropoutProb)
    }
}

/// Pointers of one layer's activations for the current batch.
struct LayerActivations {
    var input: UnsafeMutablePointer<Float>            // (N, C) the layer's input
    var qkv: UnsafeMutablePointer<Float>              // (N, 3C)
    var probabilities: UnsafeMutablePointer<Float>?   // (A) nil in eval mode
    var attentionMask: UnsafeMutablePointer<UInt8>?   // (A) nil without attention dropout
    var context: UnsafeMutablePointer<Float>          // (N, C)
    var projection: UnsafeMutablePointer<Float>       // (N, C) dense outputs before dropout (not kept)
    var attentionSum: UnsafeMutablePointer<Float>     // (N, C) residual + attention, LayerNorm input
    var attentionMean: UnsafeMutablePointer<Float>?   // (N)
    var attentionRstd: UnsafeMutablePointer<Float>?   // (N)
    var attentionDropMask: UnsafeMutablePointer<UInt8>?  // (N, C)
    var attentionNorm: UnsafeMutablePointer<Float>    // (N, C)
    var intermediate: UnsafeMutablePointer<Float>     // (N, I) before the activation
    var activated: UnsafeMutablePointer<Float>        // (N, I) after it
    var outputSum: UnsafeMutablePointer<Float>        // (N, C)
    var outputMean: UnsafeMutablePointer<Float>?      // (N)
    var outputRstd: UnsafeMutablePointer<Float>?      // (N)
    var outputDropMask: UnsafeMutablePointer<UInt8>?  // (N, C)
    var output: UnsafeMutablePointer<Float>           // (N, C) the layer's output
}

/// Pointers of the embedding stage's activations.
struct EmbeddingActivations {
    var sum: UnsafeMutablePointer<Float>              // (N, C) word + position + type
    var mean: UnsafeMutablePointer<Float>?            // (N)
    var rstd: UnsafeMutablePointer<Float>?            // (N)
    var dropMask: UnsafeMutablePointer<UInt8>?        // (N, C)
    var output: UnsafeMutablePointer<Float>           // (N, C)
}

/// Scratch of the backward pass.
struct BackwardScratch {
    var current: UnsafeMutablePointer<Float>      // (N, C) d(layer output)
    var next: UnsafeMutablePointer<Float>         // (N, C) d(layer input)
    var sum: UnsafeMutablePointer<Float>          // (N, C) d(LayerNorm input)
    var branch: UnsafeMutablePointer<Float>       // (N, C) d(dense output) after dropout backward
    var norm: UnsafeMutablePointer<Float>         // (N, C) d(attention LayerNorm output)
    var context: UnsafeMutablePointer<Float>      // (N, C)
    var qkv: UnsafeMutablePointer<Float>          // (N, 3C)
    var activated: UnsafeMutablePointer<Float>    // (N, I)
    var intermediate: UnsafeMutablePointer<Float> // (N, I)
}

/// Hands out 64-byte aligned offsets in a float arena and a byte arena.
struct ArenaPlan {
    private(set) var floatCount = 0
    private(set) var byteCount = 0
    mutating func floats(_ count: Int) -> Int {
        let offset = floatCount
        floatCount += (count + 15) / 16 * 16
        return offset
    }
    mutating func bytes(_ count: Int) -> Int {
        let offset = byteCount
        byteCount += (count + 63) / 64 * 64
        return offset
    }
}

/// What a training forward keeps for the backward pass. Create one per training loop and
/// pass it to every `forward`/`backward`; its memory is reused and grows only when a batch
/// needs more.
public final class EncoderActivations: @unchecked Sendable {
    private var floatStorage = FloatBuffer(count: 0)
    private var byteStorage = ByteBuffer(count: 0)

    /// The batch and dropout of the last training forward (nil before the first).
    public private(set) var batch: PackedBatch?
    public private(set) var dropout = DropoutSettings.disabled
    var embeddings: EmbeddingActivations?
    var layers: [LayerActivations] = []
    var scratch: BackwardScratch?
    /// The adapters of the last forward and the states they returned.
    var adapterPlan = AdapterPlan.none
    /// [N, C] for adapters on query/key/value (allocated when adapters are used).
    private var adapterStorage = FloatBuffer(count: 0)
    var adapterScratch: FloatBuffer { adapterStorage }

    public init() {}

    /// Floats currently reserved (for memory reports).
    public var capacity: Int { floatStorage.count }

    /// Lays out the arena for `batch` and returns the layer and embedding pointers.
    func prepare(batch: PackedBatch, config: BertConfig, dropout: DropoutSettings) {
        let n = batch.tokenCount, c = config.hiddenSize, i = config.intermediateSize
        let a = attentionProbabilityOffsets(sequenceOffsets: batch.sequenceOffsets, heads: config.numAttentionHeads).last ?? 0
        let hiddenDrop = dropout.hiddenProbability > 0, attentionDrop = dropout.attentionProbability > 0
        var plan = ArenaPlan()
        let embeddingSum = plan.floats(n * c), embeddingMean = plan.floats(n), embeddingRstd = plan.floats(n)
        let embeddingMask = hiddenDrop ? plan.bytes(n * c) : nil
        let hidden = (0...config.numHiddenLayers).map { _ in plan.floats(n * c) }
        let projection = plan.floats(n * c)
        struct LayerPlan {
            let qkv, probabilities, context, attentionSum, attentionMean, attentionRstd, attentionNorm: Int
            let intermediate, activated, outputSum, outputMean, outputRstd: Int
            let attentionMask, attentionDropMask, outputDropMask: Int?
        }
        let layerPlans = (0..<config.numHiddenLayers).map { _ in
            LayerPlan(
                qkv: plan.floats(3 * n * c), probabilities: plan.floats(a), context: plan.floats(n * c),
                attentionSum: plan.floats(n * c), attentionMean: plan.floats(n), attentionRstd: plan.floats(n),
                attentionNorm: plan.floats(n * c), intermediate: plan.floats(n * i), activated: plan.floats(n * i),
                outputSum: plan.floats(n * c), outputMean: plan.floats(n), outputRstd: plan.floats(n),
                attentionMask: attentionDrop ? plan.bytes(a) : nil,
                attentionDropMask: hiddenDrop ? plan.bytes(n * c) : nil,
                outputDropMask: hiddenDrop ? plan.bytes(n * c) : nil)
        }
        let scratchPlan = (0..<6).map { _ in plan.floats(n * c) } + [plan.floats(3 * n * c), plan.floats(n * i), plan.floats(n * i)]
        if plan.floatCount > floatStorage.count { floatStorage = FloatBuffer(count: plan.floatCount) }
        if plan.byteCount > byteStorage.count { byteStorage = ByteBuffer(count: plan.byteCount) }
        let f = floatStorage.pointer, b = byteStorage.pointer
        embeddings = EmbeddingActivations(
            sum: f + embeddingSum, mean: f + embeddingMean, rstd: f + embeddingRstd,
            dropMask: embeddingMask.map { b + $0 }, output: f + hidden[0])
        layers = layerPlans.enumerated().map { index, p in
            LayerActivations(
                input: f + hidden[index], qkv: f + p.qkv, probabilities: f + p.probabilities,
                attentionMask: p.attentionMask.map { b + $0 }, context: f + p.context, projection: f + projection,
                attentionSum: f + p.attentionSum, attentionMean: f + p.attentionMean, attentionRstd: f + p.attentionRstd,
                attentionDropMask: p.attentionDropMask.map { b + $0 }, attentionNorm: f + p.attentionNorm,
                intermediate: f + p.intermediate, activated: f + p.activated, outputSum: f + p.outputSum,
                outputMean: f + p.outputMean, outputRstd: f + p.outputRstd,
                outputDropMask: p.outputDropMask.map { b + $0 }, output: f + hidden[index + 1])
        }
        scratch = BackwardScratch(
            current: f + scratchPlan[0], next: f + scratchPlan[1], sum: f + scratchPlan[2], branch: f + scratchPlan[3],
            norm: f + scratchPlan[4], context: f + scratchPlan[5], qkv: f + scratchPlan[6],
            activated: f + scratchPlan[7], intermediate: f + scratchPlan[8])
        if adapterStorage.count < n * c { adapterStorage = FloatBuffer(count: n * c) }
        self.batch = batch
        self.dropout = dropout
    }
}
