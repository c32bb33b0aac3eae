/// The model input for one text or one pair of texts, with what is needed to map tokens back
/// to the text (offsets, word ids). The arrays all have one element per token.
public struct Encoding: Equatable, Sendable {
    /// Vocabulary ids (`input_ids`).
    public var ids: [Int]
    /// 0 for the first sequence and its special tokens, 1 for the second (`token_type_ids`).
    public var typeIds: [Int]
    /// 1 for real tokens, 0 for padding.
    public var attentionMask: [Int]
    /// 1 for tokens added by the template ("[CLS]", "[SEP]") and padding, 0 for the text's own
    /// tokens (a literal "[CLS]" typed in the text counts as the text's own).
    public var specialTokensMask: [Int]
    /// Where each token comes from, in Unicode scalars (the indices of a Python `str`) of the
    /// text named by `sequenceIds`; `0..<0` for template tokens and padding. A piece of a word
    /// covers only its own characters; characters dropped by normalization (a removed accent,
    /// a zero-width space) are covered only when they sit inside a token.
    public var offsets: [Range<Int>]
    /// Index of the word (pre-tokenizer split) each token belongs to, counted per sequence;
    /// nil for template tokens and padding. Pieces of one word share its id, which is how
    /// word-level labels are spread onto word pieces.
    public var wordIds: [Int?]
    /// 0 or 1 for tokens of the first or second text, nil for template tokens and padding.
    public var sequenceIds: [Int?]

    public init(ids: [Int] = [], typeIds: [Int] = [], attentionMask: [Int] = [], specialTokensMask: [Int] = [],
                offsets: [Range<Int>] = [], wordIds: [Int?] = [], sequenceIds: [Int?] = []) {
        self.ids = ids
        self.typeIds = typeIds
        self.attentionMask = attentionMask
        self.specialTokensMask = specialTokensMask
        self.offsets = offsets
        self.wordIds = wordIds
        self.sequenceIds = sequenceIds
    }

    /// Number of tokens, padding included.
    public var count: Int { ids.count }

    /// Pads with `padId` up to `length` tokens (nothing happens when already that long).
    public mutating func pad(to length: Int, padId: Int, padTypeId: Int = 0, side: PaddingSide = .right) {
        let missing = length - ids.count
        guard missing > 0 else { return }
        func extend<Element>(_ array: inout [Element], with value: Element) {
            switch side {
            case .right: array.append(contentsOf: repeatElement(value, count: missing))
            case .left: array.insert(contentsOf: repeatElement(value, count: missing), at: 0)
            }
        }
        extend(&ids, with: padId)
        extend(&typeIds, with: padTypeId)
        extend(&attentionMask, with: 0)
        extend(&specialTokensMask, with: 1)
        extend(&offsets, with: 0..<0)
        extend(&wordIds, with: nil)
        extend(&sequenceIds, with: nil)
    }
}

/// Which sequence loses tokens when a text or pair is longer than the maximum length.
public enum TruncationStrategy: String, Sendable, CaseIterable {
    /// Shorten the longer sequence first (Hugging Face's `longest_first`, in the Rust
    /// library's variant: both are cut to about half the budget when both are too long).
    case longestFirst = "longest_first"
    /// Only the first text is shortened.
    case onlyFirst = "only_first"
    /// Only the second text is shortened.
    case onlySecond = "only_second"
}

/// How far to pad a batch.
public enum Padding: Equatable, Sendable {
    /// To the longest encoding of the batch.
    case longest
    /// To this many tokens (longer encodings are left as they are).
    case maxLength(Int)
}

public enum PaddingSide: Sendable {
    case right, left
}

/// Tokens of one text before the template adds special tokens.
struct SequenceTokens {
    var ids: [Int] = []
    var offsets: [Range<Int>] = []
    var wordIds: [Int] = []

    var count: Int { ids.count }

    mutating func truncate(to length: Int) {
        guard length < ids.count else { return }
        ids.removeSubrange(length...)
        offsets.removeSubrange(length...)
        wordIds.removeSubrange(length...)
    }

    mutating func removeAll() {
        ids.removeAll(keepingCapacity: true)
        offsets.removeAll(keepingCapacity: true)
        wordIds.removeAll(keepingCapacity: true)
    }
}

/// Shortens `first` and `second` so that together they hold at most `maxLength` tokens, with
/// the arithmetic of the Rust `tokenizers` library (`truncate_encodings`), whose results for
/// `longest_first` differ from the Python "one token at a time" loop of the slow tokenizers.
func truncate(_ first: inout SequenceTokens, _ second: inout SequenceTokens?, maxLength: Int,
              strategy: TruncationStrategy) throws(TokenizerError) {
    if maxLength == 0 {
        first.truncate(to: 0)
        second?.truncate(to: 0)
        return
    }
    let total = first.count + (second?.count ?? 0)
    guard total > maxLength else { return }
    let toRemove = total - maxLength
    switch strategy {
    case .longestFirst:
        guard var other = second else {
            first.truncate(to: total - toRemove)
            return
        }
        var shorter = first.count
        var longer = other.count
        let swapped = shorter > longer
        if swapped { swap(&shorter, &longer) }
        if shorter > maxLength {
            longer = shorter
        } else {
            longer = max(shorter, maxLength - shorter)
        }
        if shorter + longer > maxLength {
            shorter = maxLength / 2
            longer = shorter + maxLength % 2
        }
        if swapped { swap(&shorter, &longer) }
        first.truncate(to: shorter)
        other.truncate(to: longer)
        second = other
    case .onlyFirst:
        guard first.count > toRemove else {
            throw .truncationImpossible("the first text has \(first.count) tokens, \(toRemove) would have to go; raise maxLength or use longest_first")
        }
        first.truncate(to: first.count - toRemove)
    case .onlySecond:
        guard var other = second else {
            throw .truncationImpossible("only_second needs a second text (a pair)")
        }
        guard other.count > toRemove else {
            throw .truncationImpossible("the second text has \(other.count) tokens, \(toRemove) would have to go; raise maxLength or use longest_first")
        }
        other.truncate(to: other.count - toRemove)
        second = other
    }
}
