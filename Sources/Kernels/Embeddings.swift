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
/// at the row the token used: dword[tokenIds[i]] += dout[i], and so on. Tokens share rows,
/// so the split across workers is by channels: each worker adds its channel range of every
/// token, in token order (the same sums whatever the number of workers).
public func embeddingsBackward(
    dwordTable: UnsafeMutablePointer<Float>?, dpositionTable: UnsafeMutablePointer<Float>?,
    dtokenTypeTable: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
    tokenIds: UnsafePointer<Int32>, positions: UnsafePointer<Int32>, tokenTypes: UnsafePointer<Int32>,
    tokens: Int, channels: Int
) {
    let c = channels
    let blocks = (c + 7) / 8
    KernelThreads.parallelRanges(tokens >= 256 ? blocks : 1, minimumChunk: 4) { range in
        let start = tokens >= 256 ? range.lowerBound * 8 : 0
        let end = tokens >= 256 ? min(c, range.upperBound * 8) : c
        for token in 0..<tokens {
            let gradient = dout + token * c + start
            if let dwordTable { accumulateRow(dwordTable + Int(tokenIds[token]) * c + start, gradient, end - start) }
            if let dpositionTable { accumulateRow(dpositionTable + Int(positions[token]) * c + start, gradient, end - start) }
            if let dtokenTypeTable { accumulateRow(dtokenTypeTable + Int(tokenTypes[token]) * c + start, gradient, end - start) }
        }
    }
}

@inline(__always)
private func accumulateRow(_ destination: UnsafeMutablePointer<Float>, _ source: UnsafePointer<Float>, _ count: Int) {
    for index in 0..<count { destination[index] += source[index] }
}
