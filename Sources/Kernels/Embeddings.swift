// BERT input embeddings (word + position + token type), forward and backward.
//
// Dimension legend: N tokens, C channels, V vocabulary rows, P position rows, Y token types.

/// out[N,C] = word[tokenIds[i]] + position[positions[i]] + tokenType[tokenTypes[i]].
/// Indices must be in range (the encoder validates them before calling).
public func embeddingsForward(
    _ out: UnsafeMutablePointer<Float>,
    tokenIds: UnsafePointer<Int32>, positions: UnsafePointer<Int32>, tokenTypes: UnsafePointer<Int32>,
    wordTable: UnsafePointer<Float>, positionTable: UnsafePointer<Float>, tokenTypeTable: UnsafePointer<Float>,
    tokens: Int, channels: Int
) {
    let c = channels
    KernelThreads.parallelRanges(tokens, minimumChunk: 256) { range in
        for token in range {
            let word = wordTable + Int(tokenIds[token]) * c
            let position = positionTable + Int(positions[token]) * c
            let type = tokenTypeTable + Int(tokenTypes[token]) * c
            let row = out + token * c
            for channel in 0..<c { row[channel] = word[channel] + position[channel] + type[channel] }
        }
    }
}

/// Backward of `embeddingsForward`: each table gradient (nil: frozen) gets dout's row added
/// at the row the token used: dword[tokenIds[i]] += dout[i], and so on. Serial, because
/// tokens share rows.
public func embeddingsBackward(
    dwordTable: UnsafeMutablePointer<Float>?, dpositionTable: UnsafeMutablePointer<Float>?,
    dtokenTypeTable: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
    tokenIds: UnsafePointer<Int32>, positions: UnsafePointer<Int32>, tokenTypes: UnsafePointer<Int32>,
    tokens: Int, channels: Int
) {
    let c = channels
    for token in 0..<tokens {
        let gradient = dout + token * c
        if let dwordTable { accumulateRow(dwordTable + Int(tokenIds[token]) * c, gradient, c) }
        if let dpositionTable { accumulateRow(dpositionTable + Int(positions[token]) * c, gradient, c) }
        if let dtokenTypeTable { accumulateRow(dtokenTypeTable + Int(tokenTypes[token]) * c, gradient, c) }
    }
}

@inline(__always)
private func accumulateRow(_ destination: UnsafeMutablePointer<Float>, _ source: UnsafePointer<Float>, _ count: Int) {
    for index in 0..<count { destination[index] += source[index] }
}
