import Encoder
import Kernels

/// How the trainer steps: clipping, accumulation, schedule and dropout.
public struct TrainerSettings: Sendable, Equatable {
    /// Global L2 gradient-norm limit (`clip_grad_norm_`); nil turns clipping off.
    public var maxGradientNorm: Float?
    /// Micro-batches per optimizer step; each one's loss is scaled by 1 / this.
    public var accumulationSteps: Int
    public var schedule: LearningRateSchedule
    /// Base of every dropout seed; the same seed and data give the same weights.
    public var seed: UInt64
    /// Dropout probabilities; nil takes the model config's.
    public var hiddenDropout: Float?
    public var attentionDropout: Float?

    public init(maxGradientNorm: Float? = 1, accumulationSteps: Int = 1, schedule: LearningRateSchedule = .constant,
                seed: UInt64 = 0, hiddenDropout: Float? = nil, attentionDropout: Float? = nil) {
        self.maxGradientNorm = maxGradientNorm
        self.accumulationSteps = accumulationSteps
        self.schedule = schedule
        self.seed = seed
        self.hiddenDropout = hiddenDropout
        self.attentionDropout = attentionDropout
    }
}

/// What one optimizer step did.
public struct StepReport: Sendable, Equatable {
    /// Mean of the micro-batch losses (each unscaled).
    public var loss: Float
    /// Gradient norm before clipping.
    public var gradientNorm: Float
    /// The schedule's factor this step used.
    public var learningRateMultiplier: Double
    /// Optimizer steps completed, this one included.
    public var completedSteps: Int
}

/// The smallest complete training step: packed encoder forward -> [CLS] -> linear head ->
/// softmax cross-entropy -> head and encoder backward -> clip -> AdamW -> schedule.
///
/// Parameters are registered in two groups, "encoder" (the encoder's block, trainable per
/// `TrainableParameters`) and "heads"; each has its own learning rate, and weight decay
/// skips biases and LayerNorm. A frozen encoder gets no gradient block and no backward.
///
/// ```swift
/// let trainer = try ClassificationTrainer(encoder: encoder, head: LinearClassifierHead(hiddenSize: 384, classes: 4),
///                                         encoderLearningRate: 2e-5, headLearningRate: 1e-3, weightDecay: 0.01,
///                                         settings: TrainerSettings(schedule: .init(kind: .linear, warmupSteps: 100, totalSteps: 1000)))
/// let report = try trainer.step([(batch, labels)])
/// ```
public final class ClassificationTrainer {
    public let encoder: BertEncoder
    public let head: LinearClassifierHead
    public let optimizer: AdamW
    public let settings: TrainerSettings
    public let trainable: TrainableParameters
    public let loss: SoftmaxCrossEntropy
    /// d(loss)/d(encoder parameters), laid out like `encoder.parameters`; empty when the
    /// whole encoder is frozen.
    public let encoderGradients: FloatBuffer

    private let activations = EncoderActivations()
    private var hiddenGradients = FloatBuffer(count: 0)  // (N, C)
    private let encoderTrains: Bool
    /// Micro-batches run since the last update.
    public private(set) var pendingMicroBatches = 0
    private var pendingLoss: Float = 0

    /// - Throws: `TrainingError` for bad settings or learning rates.
    public init(
        encoder: BertEncoder, head: LinearClassifierHead, encoderLearningRate: Double, headLearningRate: Double,
        weightDecay: Double, trainable: TrainableParameters? = nil, loss: SoftmaxCrossEntropy = SoftmaxCrossEntropy(),
        optimizerSettings: AdamWSettings = AdamWSettings(), settings: TrainerSettings = TrainerSettings()
    ) throws {
        guard head.hiddenSize == encoder.config.hiddenSize else {
            throw TrainingError.shapeMismatch(what: "head input", expected: encoder.config.hiddenSize, actual: head.hiddenSize)
        }
        guard settings.accumulationSteps >= 1 else {
            throw TrainingError.invalidOptimizerSetting(name: "accumulation steps", value: Double(settings.accumulationSteps), expected: "at least 1")
        }
        if let maxNorm = settings.maxGradientNorm, !(maxNorm > 0) {
            throw TrainingError.invalidOptimizerSetting(name: "max gradient norm", value: Double(maxNorm), expected: "> 0, or nil for no clipping")
        }
        try settings.schedule.validate()
        let trainable = trainable ?? .all(encoder.layout)
        guard trainable.flags.count == encoder.layout.views.count else {
            throw TrainingError.shapeMismatch(what: "trainable flags", expected: encoder.layout.views.count, actual: trainable.flags.count)
        }
        encoderTrains = trainable.lowestTrainableStage(encoder.layout) != nil
        encoderGradients = FloatBuffer(count: encoderTrains ? encoder.layout.totalCount : 0)
        var groups: [ParameterGroup] = []
        if encoderTrains {
            let storage = FlatParameterStorage(wrapping: encoder.parameters, gradients: encoderGradients)
            groups.append(ParameterGroup(name: "encoder", learningRate: encoderLearningRate, weightDecay: weightDecay, parameters:
                encoder.layout.views.enumerated().map { index, view in
                    ParameterRange(name: view.name, storage: storage, range: view.range, trainable: trainable.flags[index])
                }))
        }
        groups.append(ParameterGroup(name: "heads", learningRate: headLearningRate, weightDecay: weightDecay,
                                     parameters: head.parameterRanges(prefix: "head.")))
        optimizer = try AdamW(groups: groups, settings: optimizerSettings)
        self.encoder = encoder
        self.head = head
        self.settings = settings
        self.trainable = trainable
        self.loss = loss
    }

    /// Forward, loss and backward of one micro-batch; gradients accumulate until `update()`.
    /// - Parameter labels: one class per sequence (or the loss's ignore index).
    /// - Returns: the micro-batch's mean loss (unscaled).
    /// - Throws: `EncoderError.invalidBatch` or `TrainingError` for labels that do not fit.
    @discardableResult
    public func accumulate(batch: PackedBatch, labels: [Int32]) throws -> Float {
        guard labels.count == batch.sequenceCount else {
            throw TrainingError.shapeMismatch(what: "labels", expected: batch.sequenceCount, actual: labels.count)
        }
        let config = encoder.config
        let dropout = DropoutSettings(
            // From the step count (restored with optimizer state), so a resumed run draws
            // the masks the uninterrupted run would have.
            seed: dropoutSeed(base: settings.seed,
                              counter: UInt64(optimizer.completedSteps * settings.accumulationSteps + pendingMicroBatches)),
            hiddenProbability: settings.hiddenDropout ?? config.hiddenDropoutProb,
            attentionProbability: settings.attentionDropout ?? config.attentionProbsDropoutProb)
        let hidden = try encoder.forward(batch, activations: activations, dropout: dropout)
        guard let hiddenBase = hidden.baseAddress else { throw TrainingError.shapeMismatch(what: "encoder output", expected: 1, actual: 0) }
        let logits = head.forward(hidden: hiddenBase, sequenceOffsets: batch.sequenceOffsets)
        let logitGradients = head.logitGradients(sequences: batch.sequenceCount)
        let value = try labels.withUnsafeBufferPointer { targets in
            try loss.evaluate(logits: logits, targets: targets, classes: head.classes, logitGradients: logitGradients,
                              lossScale: 1 / Float(settings.accumulationSteps))
        }
        if encoderTrains {
            let count = batch.tokenCount * config.hiddenSize
            if hiddenGradients.count < count { hiddenGradients = FloatBuffer(count: count) }
            hiddenGradients.pointer.update(repeating: 0, count: count)
            head.backward(hiddenGradients: hiddenGradients.pointer, sequenceOffsets: batch.sequenceOffsets)
            try encoder.backward(outputGradient: hiddenGradients.pointer, activations: activations, gradients: encoderGradients, trainable: trainable)
        } else {
            head.backward(hiddenGradients: nil, sequenceOffsets: batch.sequenceOffsets)
        }
        pendingMicroBatches += 1
        pendingLoss += value
        return value
    }

    /// Clips the accumulated gradients, takes one AdamW step at the scheduled learning rate
    /// and zeroes the gradients.
    /// - Throws: `TrainingError.nonFiniteGradient` (gradients are dropped, weights untouched).
    public func update() throws -> StepReport {
        let microBatches = pendingMicroBatches
        let meanLoss = microBatches > 0 ? pendingLoss / Float(microBatches) : 0
        pendingMicroBatches = 0
        pendingLoss = 0
        let norm = settings.maxGradientNorm.map { optimizer.clipGradientNorm(maxNorm: $0) } ?? optimizer.gradientNorm()
        guard norm.isFinite else {
            optimizer.zeroGradients()
            throw TrainingError.nonFiniteGradient(step: optimizer.completedSteps + 1, norm: norm)
        }
        let multiplier = settings.schedule.multiplier(afterSteps: optimizer.completedSteps)
        optimizer.step(learningRateMultiplier: multiplier)
        optimizer.zeroGradients()
        return StepReport(loss: meanLoss, gradientNorm: norm, learningRateMultiplier: multiplier, completedSteps: optimizer.completedSteps)
    }

    /// One optimizer step over `settings.accumulationSteps` micro-batches.
    /// - Throws: `TrainingError.shapeMismatch` when the count of micro-batches is not
    ///   `accumulationSteps`, or the errors of `accumulate` and `update`.
    public func step(_ microBatches: [(batch: PackedBatch, labels: [Int32])]) throws -> StepReport {
        guard microBatches.count == settings.accumulationSteps else {
            throw TrainingError.shapeMismatch(what: "micro-batches per step", expected: settings.accumulationSteps, actual: microBatches.count)
        }
        for microBatch in microBatches { try accumulate(batch: microBatch.batch, labels: microBatch.labels) }
        return try update()
    }
}

/// A per-micro-batch dropout seed: the SplitMix64 finaliser of (base, counter), so nearby
/// counters give unrelated masks and a run is reproducible from its base seed.
func dropoutSeed(base: UInt64, counter: UInt64) -> UInt64 {
    var z = base &+ (counter &+ 1) &* 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}
