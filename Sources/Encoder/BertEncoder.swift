// The BERT encoder over packed batches: eval forward, training forward and backward.
//
// Dimension legend: N tokens of the packed batch, B sequences, C hidden, H heads,
// I intermediate, L layers, A attention probabilities (H * sum of T^2).
// One layer (post-LayerNorm BERT):
//   qkv = x Wqkv^T + bqkv                          (N, 3C)
//   context = attention(qkv) per sequence and head  (N, C)
//   a = LayerNorm(x + dropout(context Wo^T + bo))   (N, C)
//   y = LayerNorm(a + dropout(act(a Wi^T + bi) Wout^T + bout))

import Kernels

/// Scratch memory for eval-mode forwards, grown on demand and reused: allocating and
/// faulting in ~100 MB per batch would otherwise cost a few percent of inference time.
public final class InferenceWorkspace: @unchecked Sendable {
    private var storage = FloatBuffer(count: 0)
    public init() {}

    /// A pointer to at least `count` floats (contents unspecified), valid until the next call.
    func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if storage.count < count { storage = FloatBuffer(count: count) }
        return storage.pointer
    }
}

/// A BERT encoder: its config, the parameter layout and the one parameter block.
///
/// ```swift
/// let (encoder, ignored) = try BertEncoder.load(modelDirectory: url)
/// let batch = try PackedBatch(sequences: [[101, 7592, 102]])
/// let hidden = try encoder.infer(batch)   // (N * C) last_hidden_state
/// ```
public final class BertEncoder: @unchecked Sendable {
    // Sendable: the parameter block is only written by loaders and the optimizer, which
    // callers sequence with forward/backward themselves.
    public let config: BertConfig
    public let layout: ParameterLayout
    /// All parameters, `layout.totalCount` floats, zero until weights are loaded.
    public let parameters: FloatBuffer

    public init(config: BertConfig) {
        self.config = config
        layout = ParameterLayout(config: config)
        parameters = FloatBuffer(count: layout.totalCount)
    }

    /// The parameter named `name` as a buffer view, or nil.
    public func parameter(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        layout.view(named: name).map { UnsafeMutableBufferPointer(start: parameters.pointer + $0.offset, count: $0.count) }
    }

    // MARK: Forward

    /// Eval-mode forward (no dropout, nothing kept for backward).
    /// - Parameters:
    ///   - workspace: scratch memory to reuse across calls (one per thread); a fresh one is
    ///     used when nil.
    ///   - adapters: adapters adding to the linear layers they hook.
    /// - Returns: last_hidden_state, (N * C) floats in packed token order.
    /// - Throws: `EncoderError.invalidBatch` for ids or lengths the model cannot take.
    public func infer(_ batch: PackedBatch, workspace: InferenceWorkspace? = nil, adapters: [EncoderAdapter] = []) throws -> [Float] {
        let memory = workspace ?? InferenceWorkspace()
        return try withExtendedLifetime(memory) { Array(try inferInPlace(batch, workspace: memory, adapters: adapters)) }
    }

    /// `infer` without the copy: last_hidden_state (N * C) inside `workspace`, valid until
    /// the workspace's next use. Saves a 6 MB copy (and its page faults) per 4,096 tokens.
    /// - Throws: `EncoderError.invalidBatch` for ids or lengths the model cannot take.
    public func inferInPlace(_ batch: PackedBatch, workspace memory: InferenceWorkspace, adapters: [EncoderAdapter] = []) throws -> UnsafeBufferPointer<Float> {
        try batch.validate(for: config)
        let n = batch.tokenCount, c = config.hiddenSize, i = config.intermediateSize
        // Layer outputs alternate between two buffers; the rest is reused by every layer.
        let s = memory.reserve(n * c * 7 + n * 3 * c + n * i)
        let ping = s, pong = s + n * c
        let context = s + 2 * n * c, projection = s + 3 * n * c, attentionSum = s + 4 * n * c
        let outputSum = s + 5 * n * c, embeddingSum = s + 6 * n * c
        let qkv = s + 7 * n * c, intermediate = s + 10 * n * c
        let embedding = EmbeddingActivations(sum: embeddingSum, mean: nil, rstd: nil, dropMask: nil, output: ping)
        var layers: [LayerActivations] = []
        for layer in 0..<config.numHiddenLayers {
            let input = layer % 2 == 0 ? ping : pong, output = layer % 2 == 0 ? pong : ping
            // LayerNorm and the activation run in place here: nothing is kept for backward.
            layers.append(LayerActivations(
                input: input, qkv: qkv, probabilities: nil, attentionMask: nil, context: context, projection: projection,
                attentionSum: attentionSum, attentionMean: nil, attentionRstd: nil, attentionDropMask: nil,
                attentionNorm: attentionSum, intermediate: intermediate, activated: intermediate, outputSum: outputSum,
                outputMean: nil, outputRstd: nil, outputDropMask: nil, output: output))
        }
        var plan = AdapterPlan(adapters: adapters, layers: config.numHiddenLayers)
        // Adapter outputs for query/key/value are gathered here ([N, C]) before joining qkv.
        let adapterScratch = adapters.isEmpty ? nil : FloatBuffer(count: n * c)
        try runForward(batch, embedding: embedding, layers: layers, dropout: .disabled, adapters: &plan, adapterScratch: adapterScratch, training: false)
        let last = layers.last?.output ?? embedding.output
        return UnsafeBufferPointer(start: last, count: n * c)
    }

    /// Training-mode forward: keeps what `backward` needs in `activations` (including the
    /// states `adapters` return; backward uses the same adapters).
    /// - Returns: last_hidden_state (N * C), valid until the next forward with `activations`.
    /// - Throws: `EncoderError.invalidBatch`.
    @discardableResult
    public func forward(_ batch: PackedBatch, activations: EncoderActivations, dropout: DropoutSettings,
                        adapters: [EncoderAdapter] = []) throws -> UnsafeBufferPointer<Float> {
        try batch.validate(for: config)
        activations.prepare(batch: batch, config: config, dropout: dropout)
        guard let embedding = activations.embeddings else { preconditionFailure("prepare sets the embeddings") }
        var plan = AdapterPlan(adapters: adapters, layers: config.numHiddenLayers)
        // An interrupted forward leaves no plan behind for a backward to misuse.
        activations.adapterPlan = .none
        try runForward(batch, embedding: embedding, layers: activations.layers, dropout: dropout, adapters: &plan,
                       adapterScratch: adapters.isEmpty ? nil : activations.adapterScratch, training: true)
        activations.adapterPlan = plan
        let last = activations.layers.last?.output ?? embedding.output
        return UnsafeBufferPointer(start: last, count: batch.tokenCount * config.hiddenSize)
    }

    /// Dropout site numbers: each (layer, site) gets its own mask stream.
    private func dropoutStream(layer: Int, site: Int) -> UInt64 { UInt64(1 + layer * 3 + site) }

    private func runForward(
        _ batch: PackedBatch, embedding: EmbeddingActivations, layers: [LayerActivations], dropout: DropoutSettings,
        adapters plan: inout AdapterPlan, adapterScratch: FloatBuffer?, training: Bool
    ) throws {
        let n = batch.tokenCount, c = config.hiddenSize, i = config.intermediateSize, h = config.numAttentionHeads
        let eps = config.layerNormEps, p = parameters.pointer
        let hiddenScale = 1 / (1 - dropout.hiddenProbability), attentionScale = 1 / (1 - dropout.attentionProbability)
        let e = layout.embeddings
        embeddingsForward(embedding.sum, tokenIds: batch.tokenIds, positions: batch.positions, tokenTypes: batch.tokenTypeIds,
                          wordTable: p + e.word, positionTable: p + e.position, tokenTypeTable: p + e.tokenType, tokens: n, channels: c)
        layerNormForward(embedding.output, mean: embedding.mean, rstd: embedding.rstd, embedding.sum,
                         weight: p + e.normWeight, bias: p + e.normBias, rows: n, channels: c, epsilon: eps)
        if let mask = embedding.dropMask {
            dropoutMask(mask, count: n * c, probability: dropout.hiddenProbability, seed: dropout.seed, stream: 0)
            dropoutResidualForward(embedding.output, embedding.output, mask: mask, scale: hiddenScale, residual: nil, count: n * c)
        }
        for (index, a) in layers.enumerated() {
            let w = layout.layers[index]
            linearForward(a.qkv, a.input, weight: p + w.qkvWeight, bias: p + w.qkvBias, rows: n, inChannels: c, outChannels: 3 * c)
            for (part, linear) in [EncoderLinear.query, .key, .value].enumerated() where !plan.adapters(layer: index, linear: linear).isEmpty {
                // Adapters write contiguous [N, C]; query/key/value are column blocks of qkv.
                guard let scratch = adapterScratch?.pointer else { preconditionFailure("adapter scratch exists when adapters do") }
                scratch.update(repeating: 0, count: n * c)
                try runAdapters(&plan, layer: index, linear: linear, input: a.input, output: scratch, batch: batch, training: training)
                for row in 0..<n {
                    let destination = a.qkv + row * 3 * c + part * c, source = scratch + row * c
                    for channel in 0..<c { destination[channel] += source[channel] }
                }
            }
            if let mask = a.attentionMask {
                let count = attentionProbabilityOffsets(sequenceOffsets: batch.sequenceOffsets, heads: h).last ?? 0
                dropoutMask(mask, count: count, probability: dropout.attentionProbability, seed: dropout.seed, stream: dropoutStream(layer: index, site: 0))
            }
            attentionForward(a.context, probabilities: a.probabilities, dropoutMask: a.attentionMask, dropoutScale: attentionScale,
                             qkv: a.qkv, sequenceOffsets: batch.sequenceOffsets, channels: c, heads: h)
            linearForward(a.projection, a.context, weight: p + w.attentionOutputWeight, bias: p + w.attentionOutputBias,
                          rows: n, inChannels: c, outChannels: c)
            try runAdapters(&plan, layer: index, linear: .attentionOutput, input: a.context, output: a.projection, batch: batch, training: training)
            if let mask = a.attentionDropMask {
                dropoutMask(mask, count: n * c, probability: dropout.hiddenProbability, seed: dropout.seed, stream: dropoutStream(layer: index, site: 1))
            }
            // attentionNorm = LayerNorm(input + dropout(projection)), keeping the sum in training.
            residualLayerNormForward(a.attentionNorm, sum: training ? a.attentionSum : nil, mean: a.attentionMean, rstd: a.attentionRstd,
                                     branch: a.projection, mask: a.attentionDropMask, scale: hiddenScale, residual: a.input,
                                     weight: p + w.attentionNormWeight, bias: p + w.attentionNormBias, rows: n, channels: c, epsilon: eps)
            linearForward(a.intermediate, a.attentionNorm, weight: p + w.intermediateWeight, bias: p + w.intermediateBias,
                          rows: n, inChannels: c, outChannels: i)
            try runAdapters(&plan, layer: index, linear: .intermediate, input: a.attentionNorm, output: a.intermediate, batch: batch, training: training)
            activationForward(a.activated, a.intermediate, count: n * i, activation: config.activation)
            linearForward(a.projection, a.activated, weight: p + w.outputWeight, bias: p + w.outputBias, rows: n, inChannels: i, outChannels: c)
            try runAdapters(&plan, layer: index, linear: .output, input: a.activated, output: a.projection, batch: batch, training: training)
            if let mask = a.outputDropMask {
                dropoutMask(mask, count: n * c, probability: dropout.hiddenProbability, seed: dropout.seed, stream: dropoutStream(layer: index, site: 2))
            }
            residualLayerNormForward(a.output, sum: training ? a.outputSum : nil, mean: a.outputMean, rstd: a.outputRstd,
                                     branch: a.projection, mask: a.outputDropMask, scale: hiddenScale, residual: a.attentionNorm,
                                     weight: p + w.outputNormWeight, bias: p + w.outputNormBias, rows: n, channels: c, epsilon: eps)
        }
    }

    /// Lets every adapter hooking (layer, linear) add its term, keeping training states.
    private func runAdapters(
        _ plan: inout AdapterPlan, layer: Int, linear: EncoderLinear, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        batch: PackedBatch, training: Bool
    ) throws {
        for (position, adapter) in plan.adapters(layer: layer, linear: linear).enumerated() {
            let state = try plan.adapters[adapter].forward(layer: layer, linear: linear, input: input, output: output,
                                                           rows: batch.tokenCount, batch: batch, training: training)
            if training { plan.saved[layer][linear.rawValue][position] = state }
        }
    }

    /// Backward through every adapter hooking (layer, linear).
    private func backwardAdapters(
        _ plan: AdapterPlan, layer: Int, linear: EncoderLinear, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
        inputGradient: UnsafeMutablePointer<Float>?, batch: PackedBatch
    ) throws {
        for (position, adapter) in plan.adapters(layer: layer, linear: linear).enumerated() {
            try plan.adapters[adapter].backward(layer: layer, linear: linear, saved: plan.saved[layer][linear.rawValue][position], input: input,
                                                outputGradient: outputGradient, inputGradient: inputGradient, rows: batch.tokenCount, batch: batch)
        }
    }

    // MARK: Backward

    /// What a backward pass touched.
    public struct BackwardSummary: Sendable {
        /// Sorted distinct word-embedding rows that received gradient (empty when the word
        /// embeddings are frozen): an optimizer may update only these rows.
        public var touchedWordRows: [Int32]
        /// The lowest stage reached: -1 for the embeddings, a layer index, or nil if nothing
        /// was trainable.
        public var lowestStage: Int?
    }

    /// Backward of the last training `forward` done with `activations`: accumulates (+=)
    /// d(loss)/d(parameter) into `gradients` (laid out like `parameters`) for every trainable
    /// parameter. Frozen parameters get nothing, and the pass stops below the lowest layer
    /// holding a trainable parameter or hooked by an adapter of the forward.
    /// - Parameter outputGradient: d(last_hidden_state), (N * C) in packed order.
    /// - Throws: `EncoderError.bufferSize` for mis-sized buffers, `.invalidBatch` when
    ///   `activations` holds no forward.
    @discardableResult
    public func backward(
        outputGradient: UnsafePointer<Float>, activations: EncoderActivations, gradients: FloatBuffer, trainable: TrainableParameters
    ) throws -> BackwardSummary {
        guard let batch = activations.batch, let embedding = activations.embeddings, let d = activations.scratch else {
            throw EncoderError.invalidBatch("backward called before a training forward")
        }
        guard gradients.count == layout.totalCount else {
            throw EncoderError.bufferSize(what: "gradient block", expected: layout.totalCount, found: gradients.count)
        }
        guard trainable.flags.count == layout.views.count else {
            throw EncoderError.bufferSize(what: "trainable flags", expected: layout.views.count, found: trainable.flags.count)
        }
        let plan = activations.adapterPlan
        // Adapters are trainable by definition: the pass must reach the lowest one.
        let stages = [trainable.lowestTrainableStage(layout), plan.lowestHookedLayer].compactMap { $0 }
        guard let lowest = stages.min() else {
            return BackwardSummary(touchedWordRows: [], lowestStage: nil)
        }
        let n = batch.tokenCount, c = config.hiddenSize, i = config.intermediateSize, h = config.numAttentionHeads
        let p = parameters.pointer, g = gradients.pointer
        let dropout = activations.dropout
        let hiddenScale = 1 / (1 - dropout.hiddenProbability), attentionScale = 1 / (1 - dropout.attentionProbability)
        let trainableOffsets = Set(layout.views.enumerated().filter { trainable.flags[$0.offset] }.map { $0.element.offset })
        /// The gradient slot of the parameter starting at `offset`, or nil if it is frozen.
        func gradient(_ offset: Int) -> UnsafeMutablePointer<Float>? {
            trainableOffsets.contains(offset) ? g + offset : nil
        }

        var current = d.current, next = d.next
        current.update(from: outputGradient, count: n * c)
        for index in stride(from: config.numHiddenLayers - 1, through: max(lowest, 0), by: -1) {
            let a = activations.layers[index], w = layout.layers[index]
            let needInput = index > lowest
            // y = LayerNorm(outputSum), outputSum = attentionNorm + dropout(projection)
            // d.norm = d(outputSum) (the residual path), d.branch = its dropout backward.
            residualLayerNormBackward(dresidual: d.norm, dbranch: d.branch, dweight: gradient(w.outputNormWeight), dbias: gradient(w.outputNormBias),
                                      dout: current, sum: a.outputSum, weight: p + w.outputNormWeight, mean: a.outputMean!, rstd: a.outputRstd!,
                                      mask: a.outputDropMask, scale: hiddenScale, rows: n, channels: c)
            // projection = activated Wout^T + bout; activated = act(intermediate)
            linearBackward(dinp: d.activated, dweight: gradient(w.outputWeight), dbias: gradient(w.outputBias), dout: d.branch,
                           inp: a.activated, weight: p + w.outputWeight, rows: n, inChannels: i, outChannels: c, overwriteInput: true)
            try backwardAdapters(plan, layer: index, linear: .output, input: a.activated, outputGradient: d.branch, inputGradient: d.activated, batch: batch)
            // d(intermediate) = act'(intermediate) d(activated), and the bias gradient, in one pass.
            activationBiasBackward(dinp: d.intermediate, dbias: gradient(w.intermediateBias), a.intermediate, d.activated,
                                   rows: n, columns: i, activation: config.activation)
            linearBackward(dinp: d.norm, dweight: gradient(w.intermediateWeight), dbias: nil, dout: d.intermediate,
                           inp: a.attentionNorm, weight: p + w.intermediateWeight, rows: n, inChannels: c, outChannels: i)
            try backwardAdapters(plan, layer: index, linear: .intermediate, input: a.attentionNorm, outputGradient: d.intermediate,
                                 inputGradient: d.norm, batch: batch)
            // attentionNorm = LayerNorm(attentionSum), attentionSum = input + dropout(projection)
            // next = d(attentionSum) (the residual path to the layer input), d.branch = its dropout backward.
            residualLayerNormBackward(dresidual: needInput ? next : nil, dbranch: d.branch, dweight: gradient(w.attentionNormWeight),
                                      dbias: gradient(w.attentionNormBias), dout: d.norm, sum: a.attentionSum, weight: p + w.attentionNormWeight,
                                      mean: a.attentionMean!, rstd: a.attentionRstd!, mask: a.attentionDropMask, scale: hiddenScale, rows: n, channels: c)
            linearBackward(dinp: d.context, dweight: gradient(w.attentionOutputWeight), dbias: gradient(w.attentionOutputBias), dout: d.branch,
                           inp: a.context, weight: p + w.attentionOutputWeight, rows: n, inChannels: c, outChannels: c, overwriteInput: true)
            try backwardAdapters(plan, layer: index, linear: .attentionOutput, input: a.context, outputGradient: d.branch,
                                 inputGradient: d.context, batch: batch)
            // Written, not accumulated: every element of d.qkv belongs to one (sequence, head).
            attentionBackward(d.qkv, dout: d.context, qkv: a.qkv, probabilities: a.probabilities!, dropoutMask: a.attentionMask,
                              dropoutScale: attentionScale, sequenceOffsets: batch.sequenceOffsets, channels: c, heads: h, overwrite: true)
            qkvBackward(dinp: needInput ? next : nil, dqkv: d.qkv, input: a.input, layer: w, gradient: gradient, rows: n)
            for (part, linear) in [EncoderLinear.query, .key, .value].enumerated() where !plan.adapters(layer: index, linear: linear).isEmpty {
                // Hand the adapter its contiguous [N, C] column block of d(qkv); d.sum is free here.
                for row in 0..<n { (d.sum + row * c).update(from: d.qkv + row * 3 * c + part * c, count: c) }
                try backwardAdapters(plan, layer: index, linear: linear, input: a.input, outputGradient: d.sum,
                                     inputGradient: needInput ? next : nil, batch: batch)
            }
            swap(&current, &next)
        }
        var touched: [Int32] = []
        if lowest == -1 {
            let e = layout.embeddings
            d.branch.update(repeating: 0, count: n * c)
            dropoutBackward(d.branch, current, mask: embedding.dropMask, scale: hiddenScale, count: n * c)
            let tables = [gradient(e.word), gradient(e.position), gradient(e.tokenType)]
            let anyTable = tables.contains { $0 != nil }
            d.sum.update(repeating: 0, count: n * c)
            layerNormBackward(dinp: anyTable ? d.sum : nil, dweight: gradient(e.normWeight), dbias: gradient(e.normBias), dout: d.branch,
                              inp: embedding.sum, weight: p + e.normWeight, mean: embedding.mean!, rstd: embedding.rstd!, rows: n, channels: c)
            if anyTable {
                embeddingsBackward(dwordTable: tables[0], dpositionTable: tables[1], dtokenTypeTable: tables[2], dout: d.sum,
                                   tokenIds: batch.tokenIds, positions: batch.positions, tokenTypes: batch.tokenTypeIds, tokens: n, channels: c)
            }
            if tables[0] != nil { touched = Array(Set(batch.tokenIds)).sorted() }
        }
        return BackwardSummary(touchedWordRows: touched, lowestStage: lowest)
    }

    /// Backward of the fused query/key/value projection. The three weights share one GEMM
    /// when all are trainable; otherwise the fused gradient goes to a temporary and only the
    /// trainable parts are added.
    private func qkvBackward(
        dinp: UnsafeMutablePointer<Float>?, dqkv: UnsafeMutablePointer<Float>, input: UnsafeMutablePointer<Float>,
        layer w: LayerOffsets, gradient: (Int) -> UnsafeMutablePointer<Float>?, rows n: Int
    ) {
        let c = config.hiddenSize, p = parameters.pointer
        let weightSlots = (0..<3).map { gradient(w.qkvWeight + $0 * c * c) }
        let biasSlots = (0..<3).map { gradient(w.qkvBias + $0 * c) }
        let allWeights = weightSlots.allSatisfy { $0 != nil }, allBiases = biasSlots.allSatisfy { $0 != nil }
        linearBackward(dinp: dinp, dweight: allWeights ? weightSlots[0] : nil, dbias: allBiases ? biasSlots[0] : nil, dout: dqkv,
                       inp: input, weight: p + w.qkvWeight, rows: n, inChannels: c, outChannels: 3 * c)
        let partialWeights = !allWeights && weightSlots.contains { $0 != nil }
        let partialBiases = !allBiases && biasSlots.contains { $0 != nil }
        guard partialWeights || partialBiases else { return }
        let temporary = FloatBuffer(count: 3 * c * c + 3 * c)
        linearBackward(dinp: nil, dweight: partialWeights ? temporary.pointer : nil, dbias: partialBiases ? temporary.pointer + 3 * c * c : nil,
                       dout: dqkv, inp: input, weight: p + w.qkvWeight, rows: n, inChannels: c, outChannels: 3 * c)
        for part in 0..<3 {
            if partialWeights, let slot = weightSlots[part] {
                for index in 0..<(c * c) { slot[index] += temporary.pointer[part * c * c + index] }
            }
            if partialBiases, let slot = biasSlots[part] {
                for index in 0..<c { slot[index] += temporary.pointer[3 * c * c + part * c + index] }
            }
        }
    }
}
