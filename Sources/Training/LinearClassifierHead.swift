import Kernels

/// A linear classifier on each sequence's first ([CLS]) hidden state, the head of the
/// trainer's own step and of the PyTorch parity tests (`nn.Linear` on
/// `last_hidden_state[:, 0]`). Plugin heads replace it in real runs.
///
/// Dimension legend: N packed tokens, B sequences, C hidden, K classes.
public final class LinearClassifierHead {
    public let hiddenSize: Int
    public let classes: Int
    /// weight (K, C) then bias (K), with mirrored gradients.
    public let storage: FlatParameterStorage

    private var capacity = 0
    private var pooled = FloatBuffer(count: 0)         // (B, C)
    private var logitBuffer = FloatBuffer(count: 0)    // (B, K)
    private var logitGradientBuffer = FloatBuffer(count: 0) // (B, K)
    private var pooledGradient = FloatBuffer(count: 0) // (B, C)

    public init(hiddenSize: Int, classes: Int) {
        precondition(hiddenSize > 0 && classes > 0, "a classifier head needs a hidden size and at least one class")
        self.hiddenSize = hiddenSize
        self.classes = classes
        storage = FlatParameterStorage(count: classes * hiddenSize + classes)
    }

    public var weightRange: Range<Int> { 0..<(classes * hiddenSize) }
    public var biasRange: Range<Int> { (classes * hiddenSize)..<(classes * hiddenSize + classes) }

    /// The head's two tensors as optimizer ranges named `<prefix>weight` and `<prefix>bias`.
    public func parameterRanges(prefix: String) -> [ParameterRange] {
        [ParameterRange(name: prefix + "weight", storage: storage, range: weightRange),
         ParameterRange(name: prefix + "bias", storage: storage, range: biasRange)]
    }

    /// Copies weight (K*C values) and bias (K values) in.
    /// - Throws: `TrainingError.shapeMismatch` naming the tensor whose size is wrong.
    public func load(weight: [Float], bias: [Float]) throws {
        guard weight.count == weightRange.count else { throw TrainingError.shapeMismatch(what: "head weight", expected: weightRange.count, actual: weight.count) }
        guard bias.count == biasRange.count else { throw TrainingError.shapeMismatch(what: "head bias", expected: biasRange.count, actual: bias.count) }
        _ = UnsafeMutableBufferPointer(rebasing: storage.values[weightRange]).update(fromContentsOf: weight)
        _ = UnsafeMutableBufferPointer(rebasing: storage.values[biasRange]).update(fromContentsOf: bias)
    }

    private func reserve(sequences: Int) {
        guard sequences > capacity else { return }
        capacity = sequences
        pooled = FloatBuffer(count: sequences * hiddenSize)
        logitBuffer = FloatBuffer(count: sequences * classes)
        logitGradientBuffer = FloatBuffer(count: sequences * classes)
        pooledGradient = FloatBuffer(count: sequences * hiddenSize)
    }

    /// Logits (B, K) of the sequences in `hidden` (N, C); valid until the next forward.
    public func forward(hidden: UnsafePointer<Float>, sequenceOffsets: [Int]) -> UnsafeBufferPointer<Float> {
        let sequences = sequenceOffsets.count - 1
        reserve(sequences: sequences)
        clsPoolForward(pooled.pointer, hidden, sequenceOffsets: sequenceOffsets, channels: hiddenSize)
        linearForward(logitBuffer.pointer, pooled.pointer, weight: storage.parameterValues + weightRange.lowerBound,
                      bias: storage.parameterValues + biasRange.lowerBound, rows: sequences, inChannels: hiddenSize, outChannels: classes)
        return UnsafeBufferPointer(start: logitBuffer.pointer, count: sequences * classes)
    }

    /// Where the loss writes d(loss)/d(logits) (B, K) for the last forward.
    public func logitGradients(sequences: Int) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: logitGradientBuffer.pointer, count: sequences * classes)
    }

    /// Accumulates weight and bias gradients and adds d(loss)/d(hidden) into `hiddenGradients`
    /// (N, C) at each sequence's first token (nil: the encoder is frozen, skip it).
    public func backward(hiddenGradients: UnsafeMutablePointer<Float>?, sequenceOffsets: [Int]) {
        let sequences = sequenceOffsets.count - 1
        pooledGradient.zero()
        linearBackward(dinp: hiddenGradients == nil ? nil : pooledGradient.pointer,
                       dweight: storage.parameterGradients + weightRange.lowerBound,
                       dbias: storage.parameterGradients + biasRange.lowerBound,
                       dout: logitGradientBuffer.pointer, inp: pooled.pointer, weight: storage.parameterValues + weightRange.lowerBound,
                       rows: sequences, inChannels: hiddenSize, outChannels: classes)
        if let hiddenGradients {
            clsPoolBackward(hiddenGradients, pooledGradient.pointer, sequenceOffsets: sequenceOffsets, channels: hiddenSize)
        }
    }
}
