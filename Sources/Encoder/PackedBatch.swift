// A batch of sequences packed end to end: no padding tokens exist.
//
// Dimension legend: N total tokens, B sequences.

/// Token ids of B sequences laid end to end, with B + 1 offsets; positions restart at 0 at
/// each sequence start.
public struct PackedBatch: Sendable, Equatable {
    public let tokenIds: [Int32]        // (N)
    public let tokenTypeIds: [Int32]    // (N)
    public let sequenceOffsets: [Int]   // (B + 1), first 0, last N
    public let positions: [Int32]       // (N), derived

    /// - Throws: `EncoderError.invalidBatch` when counts or offsets do not agree or a
    ///   sequence is empty.
    public init(tokenIds: [Int32], tokenTypeIds: [Int32]? = nil, sequenceOffsets: [Int]) throws {
        let typeIds = tokenTypeIds ?? [Int32](repeating: 0, count: tokenIds.count)
        guard typeIds.count == tokenIds.count else {
            throw EncoderError.invalidBatch("\(tokenIds.count) token ids but \(typeIds.count) token type ids")
        }
        guard sequenceOffsets.count >= 2, sequenceOffsets.first == 0, sequenceOffsets.last == tokenIds.count else {
            throw EncoderError.invalidBatch("sequence offsets must start at 0, end at the token count (\(tokenIds.count)) and name at least one sequence")
        }
        var positions = [Int32]()
        positions.reserveCapacity(tokenIds.count)
        for index in 1..<sequenceOffsets.count {
            let length = sequenceOffsets[index] - sequenceOffsets[index - 1]
            guard length > 0 else {
                throw EncoderError.invalidBatch("sequence \(index - 1) is empty (offsets must increase strictly)")
            }
            positions.append(contentsOf: (0..<length).map { Int32($0) })
        }
        self.tokenIds = tokenIds
        self.tokenTypeIds = typeIds
        self.sequenceOffsets = sequenceOffsets
        self.positions = positions
    }

    /// Packs separate sequences (and optionally their token type ids).
    public init(sequences: [[Int32]], tokenTypes: [[Int32]]? = nil) throws {
        if let tokenTypes, tokenTypes.map(\.count) != sequences.map(\.count) {
            throw EncoderError.invalidBatch("token type ids do not match the sequences' lengths")
        }
        var offsets = [0]
        for sequence in sequences { offsets.append(offsets.last! + sequence.count) }
        try self.init(tokenIds: sequences.flatMap { $0 }, tokenTypeIds: tokenTypes?.flatMap { $0 }, sequenceOffsets: offsets)
    }

    public var tokenCount: Int { tokenIds.count }
    public var sequenceCount: Int { sequenceOffsets.count - 1 }
    public var maxSequenceLength: Int {
        (1..<sequenceOffsets.count).map { sequenceOffsets[$0] - sequenceOffsets[$0 - 1] }.max() ?? 0
    }

    /// Checks ids, token types and lengths against the model.
    func validate(for config: BertConfig) throws {
        if let bad = tokenIds.firstIndex(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw EncoderError.invalidBatch("token \(bad) has id \(tokenIds[bad]), outside the vocabulary (vocab_size \(config.vocabSize))")
        }
        if let bad = tokenTypeIds.firstIndex(where: { $0 < 0 || Int($0) >= config.typeVocabSize }) {
            throw EncoderError.invalidBatch("token \(bad) has token type \(tokenTypeIds[bad]), outside type_vocab_size \(config.typeVocabSize)")
        }
        if maxSequenceLength > config.maxPositionEmbeddings {
            throw EncoderError.invalidBatch("a sequence of \(maxSequenceLength) tokens exceeds max_position_embeddings \(config.maxPositionEmbeddings); truncate it")
        }
    }
}
