// Sequence pooling over packed hidden states, forward and backward.
//
// Dimension legend: N tokens, B sequences, C channels; sequenceOffsets has B + 1 entries.

/// out[B,C] = mean over each sequence's tokens of hidden[N,C] (an empty sequence gives 0).
public func meanPoolForward(_ out: UnsafeMutablePointer<Float>, _ hidden: UnsafePointer<Float>, sequenceOffsets: [Int], channels: Int) {
    let c = channels
    for sequence in 0..<(sequenceOffsets.count - 1) {
        let start = sequenceOffsets[sequence], end = sequenceOffsets[sequence + 1]
        let row = out + sequence * c
        row.update(repeating: 0, count: c)
        for token in start..<end {
            let source = hidden + token * c
            for channel in 0..<c { row[channel] += source[channel] }
        }
        if end > start {
            let inverse = 1 / Float(end - start)
            for channel in 0..<c { row[channel] *= inverse }
        }
    }
}

/// dhidden[N,C] += dout[B,C] / T_b on every token of sequence b.
public func meanPoolBackward(_ dhidden: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, sequenceOffsets: [Int], channels: Int) {
    let c = channels
    for sequence in 0..<(sequenceOffsets.count - 1) {
        let start = sequenceOffsets[sequence], end = sequenceOffsets[sequence + 1]
        guard end > start else { continue }
        let inverse = 1 / Float(end - start)
        let gradient = dout + sequence * c
        for token in start..<end {
            let destination = dhidden + token * c
            for channel in 0..<c { destination[channel] += gradient[channel] * inverse }
        }
    }
}

/// out[B,C] = hidden of each sequence's first token ([CLS]). Sequences must be non-empty.
public func clsPoolForward(_ out: UnsafeMutablePointer<Float>, _ hidden: UnsafePointer<Float>, sequenceOffsets: [Int], channels: Int) {
    for sequence in 0..<(sequenceOffsets.count - 1) {
        (out + sequence * channels).update(from: hidden + sequenceOffsets[sequence] * channels, count: channels)
    }
}

/// dhidden[first token of b] += dout[b].
public func clsPoolBackward(_ dhidden: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, sequenceOffsets: [Int], channels: Int) {
    for sequence in 0..<(sequenceOffsets.count - 1) {
        let destination = dhidden + sequenceOffsets[sequence] * channels, gradient = dout + sequence * channels
        for channel in 0..<channels { destination[channel] += gradient[channel] }
    }
}

/// Scales each row of x[rows, C] to unit L2 norm in place (rows of norm 0 stay 0), like
/// torch.nn.functional.normalize with eps 1e-12.
public func normalizeRows(_ x: UnsafeMutablePointer<Float>, rows: Int, channels: Int) {
    for row in 0..<rows {
        let values = x + row * channels
        var squares: Float = 0
        for channel in 0..<channels { squares += values[channel] * values[channel] }
        let inverse = 1 / max(squares.squareRoot(), 1e-12)
        for channel in 0..<channels { values[channel] *= inverse }
    }
}
