/// A token matched as a whole in the text before the model sees it, as Hugging Face's
/// `AddedToken`: special tokens such as "[CLS]" are never split into pieces.
public struct AddedToken: Hashable, Sendable {
    public var id: Int
    public var content: String
    /// Skipped by `decode(_:skipSpecialTokens: true)`.
    public var special: Bool
    /// Only matches when not inside a word (no word character on either side).
    public var singleWord: Bool
    /// The match takes in the whitespace on its left.
    public var leftStrip: Bool
    /// The match takes in the whitespace on its right.
    public var rightStrip: Bool
    /// Matched in the normalized text (against its own normalized form) instead of the original.
    public var normalized: Bool

    public init(id: Int, content: String, special: Bool = true, singleWord: Bool = false,
                leftStrip: Bool = false, rightStrip: Bool = false, normalized: Bool = false) {
        self.id = id
        self.content = content
        self.special = special
        self.singleWord = singleWord
        self.leftStrip = leftStrip
        self.rightStrip = rightStrip
        self.normalized = normalized
    }
}

/// Finds added tokens in a sequence of scalars the way the reference's Aho-Corasick automaton
/// does with `LeftmostLongest`: the leftmost position where any token matches, the longest token
/// there, then on from that match's end (also when single_word rejects the match).
struct AddedTokenMatcher: Sendable {
    struct Pattern: Sendable {
        var scalars: [UInt32]
        var token: AddedToken
    }

    /// A piece of the input: an added token (with its id) or plain text.
    struct Split {
        var range: Range<Int>
        var id: Int?
    }

    /// Patterns by first scalar, longest first.
    private var patternsByFirst: [UInt32: [Pattern]] = [:]
    /// Bit `c` set when some pattern starts with ASCII `c`: most positions are rejected here.
    private var asciiFirst: (UInt64, UInt64) = (0, 0)

    var isEmpty: Bool { patternsByFirst.isEmpty }

    init(patterns: [Pattern]) {
        for pattern in patterns where !pattern.scalars.isEmpty {
            let first = pattern.scalars[0]
            patternsByFirst[first, default: []].append(pattern)
            if first < 64 { asciiFirst.0 |= 1 << UInt64(first) } else if first < 128 { asciiFirst.1 |= 1 << UInt64(first - 64) }
        }
        for first in patternsByFirst.keys {
            patternsByFirst[first]?.sort { $0.scalars.count > $1.scalars.count }
        }
    }

    @inline(__always)
    private func mayStart(_ scalar: UInt32) -> Bool {
        if scalar < 64 { return asciiFirst.0 & (1 << UInt64(scalar)) != 0 }
        if scalar < 128 { return asciiFirst.1 & (1 << UInt64(scalar - 64)) != 0 }
        return patternsByFirst[scalar] != nil
    }

    /// Splits `text[range]` into added tokens and the text between them (empty pieces left out).
    func split(_ text: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, into splits: inout [Split]) {
        var splitStart = range.lowerBound
        var position = range.lowerBound
        while position < range.upperBound {
            guard mayStart(text[position]), let pattern = longestMatch(text, at: position, end: range.upperBound) else {
                position += 1
                continue
            }
            var start = position
            var stop = position + pattern.scalars.count
            position = stop
            let token = pattern.token
            if token.singleWord {
                let spaceBefore = start == range.lowerBound || !Self.isWordCharacter(text[start - 1])
                let spaceAfter = stop == range.upperBound || !Self.isWordCharacter(text[stop])
                if !spaceBefore || !spaceAfter { continue }
            }
            if token.leftStrip {
                var newStart = start
                while newStart > range.lowerBound && Self.isWhitespace(text[newStart - 1]) { newStart -= 1 }
                start = max(newStart, splitStart)
            }
            if token.rightStrip {
                while stop < range.upperBound && Self.isWhitespace(text[stop]) { stop += 1 }
            }
            if splitStart < start { splits.append(Split(range: splitStart..<start, id: nil)) }
            splits.append(Split(range: start..<stop, id: token.id))
            splitStart = stop
        }
        if splitStart < range.upperBound { splits.append(Split(range: splitStart..<range.upperBound, id: nil)) }
    }

    private func longestMatch(_ text: UnsafeBufferPointer<UInt32>, at position: Int, end: Int) -> Pattern? {
        guard let candidates = patternsByFirst[text[position]] else { return nil }
        for pattern in candidates where pattern.scalars.count <= end - position {
            var matches = true
            for (offset, scalar) in pattern.scalars.enumerated() where text[position + offset] != scalar {
                matches = false
                break
            }
            if matches { return pattern }
        }
        return nil
    }

    /// The reference's `\w` (Rust regex, Unicode): alphabetic, marks, decimal digits,
    /// connector punctuation, join controls. Only single_word tokens ask.
    static func isWordCharacter(_ value: UInt32) -> Bool {
        guard let scalar = Unicode.Scalar(value) else { return false }
        let properties = scalar.properties
        if properties.isAlphabetic || properties.isJoinControl { return true }
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    /// The reference's `\s` (Unicode White_Space). Only lstrip/rstrip tokens ask.
    static func isWhitespace(_ value: UInt32) -> Bool {
        guard let scalar = Unicode.Scalar(value) else { return false }
        return scalar.properties.isWhitespace
    }
}
