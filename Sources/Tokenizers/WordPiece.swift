/// Greedy longest-match-first WordPiece over a vocabulary, as Hugging Face's `WordPiece` model.
///
/// The vocabulary is held as a trie over Unicode scalars: walking it from a word's start finds
/// the longest vocabulary entry that is a prefix in one pass, which is what the reference finds
/// by trying ever shorter substrings. Continuation pieces ("##ing") start from the node reached
/// by the prefix "##", so they share the trie.
struct WordPiece: Sendable {
    let unknownId: Int
    let maxInputCharactersPerWord: Int
    let continuingSubwordPrefix: String

    /// Trie nodes: `tokenIds[node]` is the id of the entry ending there, or -1.
    private var tokenIds: [Int32] = [-1]
    /// Children of the root for ASCII, the most frequent first step.
    private var rootASCII = [Int32](repeating: -1, count: 128)
    /// Open addressing from (node, scalar) to child node; a key of 0 marks an empty slot.
    private var keys: [UInt64] = []
    private var children: [Int32] = []
    private var mask = 0
    /// The node reached by `continuingSubwordPrefix`, or -1 when no entry starts with it.
    private var continuationRoot: Int32 = -1

    /// A piece of a word: `start..<end` in the word's characters.
    struct Piece {
        var id: Int
        var start: Int
        var end: Int
    }

    init(vocabulary: [(token: String, id: Int)], unknownId: Int, continuingSubwordPrefix: String, maxInputCharactersPerWord: Int) {
        self.unknownId = unknownId
        self.maxInputCharactersPerWord = maxInputCharactersPerWord
        self.continuingSubwordPrefix = continuingSubwordPrefix
        let totalScalars = vocabulary.reduce(0) { $0 + $1.token.unicodeScalars.count }
        var capacity = 16
        while capacity < totalScalars * 2 { capacity <<= 1 }
        keys = [UInt64](repeating: 0, count: capacity)
        children = [Int32](repeating: -1, count: capacity)
        mask = capacity - 1
        // In file order: a token written twice keeps its last id, as in the reference.
        for (token, id) in vocabulary {
            var node: Int32 = 0
            for scalar in token.unicodeScalars { node = childOrInsert(node, scalar.value) }
            tokenIds[Int(node)] = Int32(id)
        }
        var node: Int32 = 0
        for scalar in continuingSubwordPrefix.unicodeScalars {
            node = child(node, scalar.value)
            if node < 0 { break }
        }
        continuationRoot = node
    }

    @inline(__always)
    private static func key(_ node: Int32, _ scalar: UInt32) -> UInt64 {
        (UInt64(UInt32(bitPattern: node)) << 21 | UInt64(scalar)) &+ 1
    }

    @inline(__always)
    private static func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32)
    }

    @inline(__always)
    func child(_ node: Int32, _ scalar: UInt32) -> Int32 {
        if node == 0 && scalar < 128 { return rootASCII[Int(scalar)] }
        let wanted = Self.key(node, scalar)
        var index = Self.slot(wanted) & mask
        while true {
            let found = keys[index]
            if found == wanted { return children[index] }
            if found == 0 { return -1 }
            index = (index + 1) & mask
        }
    }

    private mutating func childOrInsert(_ node: Int32, _ scalar: UInt32) -> Int32 {
        let existing = child(node, scalar)
        if existing >= 0 { return existing }
        let created = Int32(tokenIds.count)
        tokenIds.append(-1)
        if node == 0 && scalar < 128 {
            rootASCII[Int(scalar)] = created
            return created
        }
        let wanted = Self.key(node, scalar)
        var index = Self.slot(wanted) & mask
        while keys[index] != 0 { index = (index + 1) & mask }
        keys[index] = wanted
        children[index] = created
        return created
    }

    /// Splits one word (normalized scalars `word[range]`) into pieces; the whole word becomes
    /// the unknown token when it is longer than `maxInputCharactersPerWord` or when some part
    /// of it matches no entry. Pieces are appended to `pieces`, positions relative to `range`.
    @inline(__always)
    func tokenize(_ word: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, into pieces: inout [Piece]) {
        let length = range.count
        if length > maxInputCharactersPerWord {
            pieces.append(Piece(id: unknownId, start: 0, end: length))
            return
        }
        let firstPiece = pieces.count
        var start = range.lowerBound
        while start < range.upperBound {
            var node: Int32 = start == range.lowerBound ? 0 : continuationRoot
            var matchedEnd = -1
            var matchedId: Int32 = -1
            var position = start
            while node >= 0 && position < range.upperBound {
                node = child(node, word[position])
                position += 1
                if node >= 0 {
                    let id = tokenIds[Int(node)]
                    if id >= 0 {
                        matchedEnd = position
                        matchedId = id
                    }
                }
            }
            if matchedId < 0 {
                pieces.removeSubrange(firstPiece...)
                pieces.append(Piece(id: unknownId, start: 0, end: length))
                return
            }
            pieces.append(Piece(id: Int(matchedId), start: start - range.lowerBound, end: matchedEnd - range.lowerBound))
            start = matchedEnd
        }
    }
}
