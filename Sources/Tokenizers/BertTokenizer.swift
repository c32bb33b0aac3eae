import Foundation

/// A BERT WordPiece tokenizer that gives the ids, type ids, offsets and word ids of Hugging
/// Face's Rust `tokenizers` library (what `BertTokenizerFast` and tokenizer.json use).
///
/// The pipeline, as in the reference: added tokens ("[CLS]" typed in the text) are cut out of
/// the raw text; the rest goes through BertNormalizer (clean_text, Chinese characters,
/// strip_accents, lowercase), BertPreTokenizer (split on whitespace, punctuation alone), and
/// WordPiece; the template then adds "[CLS]"/"[SEP]" and type ids.
///
/// Offsets are in Unicode scalars of the original text, the unit of Python's `str` indices
/// and of the reference's Python offsets (`utf8Offsets(_:in:)` converts them to bytes).
///
/// Example:
/// ```swift
/// let tokenizer = try BertTokenizer(modelDirectory: URL(fileURLWithPath: "models/all-MiniLM-L6-v2"))
/// let encoding = try tokenizer.encode("Hello, world!", pair: "Second text", maxLength: 16)
/// print(encoding.ids, encoding.typeIds, tokenizer.decode(encoding.ids))
/// ```
///
/// A tokenizer is immutable and can be shared between threads.
public struct BertTokenizer: Sendable {
    let wordPiece: WordPiece
    let normalizer: CompiledNormalizer
    /// Added tokens matched in the raw text (`normalized: false`, all special tokens here).
    let rawMatcher: AddedTokenMatcher
    /// Added tokens matched in the normalized text against their normalized form.
    let normalizedMatcher: AddedTokenMatcher
    let template: PostTemplate
    let decoderOptions: DecoderOptions?
    /// Model vocabulary by id (nil where an id is unused).
    let modelTokens: [String?]
    let addedTokensById: [Int: AddedToken]

    /// Token (UTF-8 bytes) to id, model vocabulary and added tokens together: exact, where a
    /// `[String: Int]` would merge canonically equivalent tokens.
    let idsByToken: [[UInt8]: Int]
    public let normalizerOptions: NormalizerOptions
    public let addedTokens: [AddedToken]
    public let unknownId: Int
    public let padId: Int?
    public let clsId: Int?
    public let sepId: Int?
    public let maskId: Int?
    /// The longest input the model was trained on, when the configuration says (often 512).
    public let modelMaxLength: Int?

    /// Loads `tokenizer.json` from `modelDirectory` when it is there (reading special token
    /// names from `tokenizer_config.json` beside it), else `vocab.txt` + `tokenizer_config.json`.
    ///
    /// - Throws: `TokenizerError.missingFile` when neither file exists, `.invalidFile` or
    ///   `.unsupported` naming the file and key at fault.
    public init(modelDirectory: URL) throws(TokenizerError) {
        let tokenizerJSON = modelDirectory.appendingPathComponent("tokenizer.json")
        let configuration = modelDirectory.appendingPathComponent("tokenizer_config.json")
        let vocabularyFile = modelDirectory.appendingPathComponent("vocab.txt")
        if FileManager.default.fileExists(atPath: tokenizerJSON.path) {
            var definition = try TokenizerDefinition.load(tokenizerJSON: tokenizerJSON)
            try definition.readSpecialTokenNames(configurationFile: configuration)
            try self.init(definition: definition, source: tokenizerJSON.path)
        } else if FileManager.default.fileExists(atPath: vocabularyFile.path) {
            try self.init(definition: TokenizerDefinition.load(vocabularyFile: vocabularyFile, configurationFile: configuration),
                          source: vocabularyFile.path)
        } else {
            throw .missingFile(path: tokenizerJSON.path,
                               hint: "no tokenizer.json or vocab.txt in \(modelDirectory.path); run scripts/setup for the default model")
        }
    }

    /// Loads a Hugging Face tokenizer.json file.
    public init(tokenizerJSON url: URL) throws(TokenizerError) {
        try self.init(definition: TokenizerDefinition.load(tokenizerJSON: url), source: url.path)
    }

    /// Loads a BERT vocab.txt, with the settings of a tokenizer_config.json when given
    /// (`do_lower_case`, `strip_accents`, `tokenize_chinese_chars`, special token names).
    public init(vocabularyFile: URL, configurationFile: URL? = nil) throws(TokenizerError) {
        try self.init(definition: TokenizerDefinition.load(vocabularyFile: vocabularyFile, configurationFile: configurationFile),
                      source: vocabularyFile.path)
    }

    init(definition: TokenizerDefinition, source: String) throws(TokenizerError) {
        guard let unknownId = definition.id(of: definition.unknownToken) else {
            throw .invalidFile(path: source, detail: "the unknown token \"\(definition.unknownToken)\" is not in the vocabulary")
        }
        self.unknownId = unknownId
        wordPiece = WordPiece(vocabulary: definition.vocabulary, unknownId: unknownId,
                              continuingSubwordPrefix: definition.continuingSubwordPrefix,
                              maxInputCharactersPerWord: definition.maxInputCharactersPerWord)
        normalizer = CompiledNormalizer.shared(for: definition.normalizer)
        normalizerOptions = definition.normalizer
        template = definition.template
        decoderOptions = definition.decoder
        modelMaxLength = definition.modelMaxLength
        addedTokens = definition.addedTokens

        var idsByToken: [[UInt8]: Int] = [:]
        for (token, id) in definition.vocabulary { idsByToken[Array(token.utf8)] = id }
        var modelTokens = [String?](repeating: nil, count: (definition.vocabulary.map(\.id).max() ?? -1) + 1)
        for (token, id) in definition.vocabulary where idsByToken[Array(token.utf8)] == id { modelTokens[id] = token }
        self.modelTokens = modelTokens
        var addedTokensById: [Int: AddedToken] = [:]
        for token in definition.addedTokens {
            addedTokensById[token.id] = token
            idsByToken[Array(token.content.utf8)] = token.id
        }
        self.addedTokensById = addedTokensById
        self.idsByToken = idsByToken

        rawMatcher = AddedTokenMatcher(patterns: definition.addedTokens.filter { !$0.normalized }.map {
            AddedTokenMatcher.Pattern(scalars: $0.content.unicodeScalars.map(\.value), token: $0)
        })
        let normalizer = self.normalizer
        normalizedMatcher = AddedTokenMatcher(patterns: definition.addedTokens.filter(\.normalized).map { token in
            let scalars = token.content.unicodeScalars.map(\.value)
            var buffer = NormalizedBuffer()
            scalars.withUnsafeBufferPointer { normalizer.normalize($0, 0..<scalars.count, into: &buffer) }
            return AddedTokenMatcher.Pattern(scalars: buffer.scalars, token: token)
        })

        let names = definition.specialTokenNames
        padId = idsByToken[Array(names.pad.utf8)]
        clsId = idsByToken[Array(names.cls.utf8)]
        sepId = idsByToken[Array(names.sep.utf8)]
        maskId = idsByToken[Array(names.mask.utf8)]
    }

    /// Number of distinct tokens, added tokens included (Hugging Face's `len(tokenizer)`).
    public var vocabularySize: Int { idsByToken.count }

    /// The id of a token string (compared byte for byte), nil when not in the vocabulary.
    public func id(forToken token: String) -> Int? { idsByToken[Array(token.utf8)] }

    /// Token to id, model vocabulary and added tokens together. Swift compares String keys
    /// by canonical equivalence, so two entries differing only in Unicode normalization would
    /// share a key here; `id(forToken:)` tells them apart.
    public var vocabulary: [String: Int] {
        Dictionary(idsByToken.map { (String(decoding: $0.key, as: UTF8.self), $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    /// The token string of `id` (an added token's content first), nil for an unused id.
    public func token(forId id: Int) -> String? {
        if let added = addedTokensById[id] { return added.content }
        guard id >= 0 && id < modelTokens.count else { return nil }
        return modelTokens[id]
    }

    /// Number of special tokens the template adds around one text, or around a pair.
    public func specialTokenCount(pair: Bool) -> Int { template.addedCount(pair: pair) }
}

// MARK: - Encoding

/// Scratch buffers that `encode(_:pair:maxLength:truncation:addSpecialTokens:workspace:)`
/// reuses from one call to the next, so that a loop over many texts does not allocate them
/// each time. One workspace per thread.
public struct TokenizerWorkspace {
    var scalars: [UInt32] = []
    var normalized = NormalizedBuffer()
    var pieces: [WordPiece.Piece] = []
    var splits: [AddedTokenMatcher.Split] = []
    var innerSplits: [AddedTokenMatcher.Split] = []

    public init() {}
}

extension BertTokenizer {
    /// Encodes one text, or a pair, into model input.
    ///
    /// - Parameters:
    ///   - text: any Swift string (every Unicode scalar is handled as the reference does).
    ///   - pair: the second text of a pair: `[CLS] text [SEP] pair [SEP]`, type ids 0 then 1.
    ///   - maxLength: when given, truncate to at most this many tokens, special tokens included.
    ///   - truncation: which text loses tokens.
    ///   - addSpecialTokens: false leaves out "[CLS]" and "[SEP]" (type ids stay as in the template).
    /// - Returns: ids, type ids, attention mask (all ones: no padding), offsets, word ids.
    /// - Throws: `TokenizerError.truncationImpossible` when the strategy cannot reach
    ///   `maxLength` (Hugging Face raises the same error), `.invalidArgument` when `maxLength`
    ///   leaves no room for the special tokens (Hugging Face then silently skips truncation).
    public func encode(_ text: String, pair: String? = nil, maxLength: Int? = nil,
                       truncation: TruncationStrategy = .longestFirst, addSpecialTokens: Bool = true) throws(TokenizerError) -> Encoding {
        var workspace = TokenizerWorkspace()
        return try encode(text, pair: pair, maxLength: maxLength, truncation: truncation,
                          addSpecialTokens: addSpecialTokens, workspace: &workspace)
    }

    /// Encodes many texts (or pairs when `pairs` is given, one per text), in order, reusing
    /// buffers; pads them when `padding` is given.
    public func encodeBatch(_ texts: [String], pairs: [String]? = nil, maxLength: Int? = nil,
                            truncation: TruncationStrategy = .longestFirst, padding: Padding? = nil,
                            addSpecialTokens: Bool = true) throws(TokenizerError) -> [Encoding] {
        if let pairs, pairs.count != texts.count {
            throw .invalidArgument("encodeBatch: \(texts.count) texts but \(pairs.count) pairs; give one pair per text")
        }
        var workspace = TokenizerWorkspace()
        var encodings: [Encoding] = []
        encodings.reserveCapacity(texts.count)
        for (index, text) in texts.enumerated() {
            encodings.append(try encode(text, pair: pairs?[index], maxLength: maxLength, truncation: truncation,
                                        addSpecialTokens: addSpecialTokens, workspace: &workspace))
        }
        if let padding { pad(&encodings, to: padding) }
        return encodings
    }

    /// Pads every encoding with the padding token to the batch's longest (`.longest`) or to a
    /// fixed length (`.maxLength`), rounded up to a multiple of `multipleOf` when given.
    /// Padding has type id 0, attention 0, offsets `0..<0`, no word id.
    public func pad(_ encodings: inout [Encoding], to padding: Padding, multipleOf: Int? = nil, side: PaddingSide = .right) {
        var length: Int
        switch padding {
        case .longest: length = encodings.map(\.count).max() ?? 0
        case .maxLength(let maximum): length = maximum
        }
        if let multipleOf, multipleOf > 0, length % multipleOf != 0 { length += multipleOf - length % multipleOf }
        let padId = self.padId ?? 0
        for index in encodings.indices { encodings[index].pad(to: length, padId: padId, side: side) }
    }

    /// The token strings of a text, without special tokens (unknown words show as "[UNK]").
    public func tokenize(_ text: String) -> [String] {
        var workspace = TokenizerWorkspace()
        var tokens = SequenceTokens()
        appendTokens(of: text, to: &tokens, workspace: &workspace)
        return tokens.ids.map { token(forId: $0) ?? "" }
    }

    /// `encode(_:pair:maxLength:truncation:addSpecialTokens:)` reusing `workspace`'s buffers:
    /// the form for loops over many texts.
    public func encode(_ text: String, pair: String? = nil, maxLength: Int? = nil, truncation: TruncationStrategy = .longestFirst,
                       addSpecialTokens: Bool = true, workspace: inout TokenizerWorkspace) throws(TokenizerError) -> Encoding {
        var first = SequenceTokens()
        appendTokens(of: text, to: &first, workspace: &workspace)
        var second: SequenceTokens?
        if let pair {
            var tokens = SequenceTokens()
            appendTokens(of: pair, to: &tokens, workspace: &workspace)
            second = tokens
        }
        if let maxLength {
            let added = addSpecialTokens ? template.addedCount(pair: pair != nil) : 0
            guard maxLength >= added else {
                throw .invalidArgument("maxLength \(maxLength) leaves no room for the \(added) special tokens; give at least \(added)")
            }
            try truncate(&first, &second, maxLength: maxLength - added, strategy: truncation)
        }
        return assemble(first, second, addSpecialTokens: addSpecialTokens)
    }

    /// The post-processor: the template's special tokens and type ids around the sequences.
    func assemble(_ first: SequenceTokens, _ second: SequenceTokens?, addSpecialTokens: Bool) -> Encoding {
        let pieces = second == nil ? template.single : template.pair
        let total = first.count + (second?.count ?? 0) + (addSpecialTokens ? template.addedCount(pair: second != nil) : 0)
        var encoding = Encoding()
        encoding.ids.reserveCapacity(total)
        encoding.typeIds.reserveCapacity(total)
        encoding.specialTokensMask.reserveCapacity(total)
        encoding.offsets.reserveCapacity(total)
        encoding.wordIds.reserveCapacity(total)
        encoding.sequenceIds.reserveCapacity(total)
        for piece in pieces {
            switch piece {
            case .special(let ids, let typeId):
                guard addSpecialTokens else { continue }
                for id in ids {
                    encoding.ids.append(id)
                    encoding.typeIds.append(typeId)
                    encoding.specialTokensMask.append(1)
                    encoding.offsets.append(0..<0)
                    encoding.wordIds.append(nil)
                    encoding.sequenceIds.append(nil)
                }
            case .sequence(let index, let typeId):
                guard let tokens = index == 0 ? first : second else { continue }
                encoding.ids.append(contentsOf: tokens.ids)
                encoding.typeIds.append(contentsOf: repeatElement(typeId, count: tokens.count))
                encoding.specialTokensMask.append(contentsOf: repeatElement(0, count: tokens.count))
                encoding.offsets.append(contentsOf: tokens.offsets)
                for word in tokens.wordIds { encoding.wordIds.append(word) }
                encoding.sequenceIds.append(contentsOf: repeatElement(Optional(index), count: tokens.count))
            }
        }
        encoding.attentionMask = [Int](repeating: 1, count: encoding.ids.count)
        return encoding
    }

    /// Tokenizes one text (no special tokens) onto the end of `tokens`.
    func appendTokens(of text: String, to tokens: inout SequenceTokens, workspace: inout TokenizerWorkspace) {
        // Buffers move out of the workspace for the duration, so that the compiler sees
        // separate variables (no exclusivity checks in the loops) and nothing is copied.
        var scalars = workspace.scalars
        var normalized = workspace.normalized
        var pieces = workspace.pieces
        var splits = workspace.splits
        var innerSplits = workspace.innerSplits
        workspace = TokenizerWorkspace()
        defer {
            workspace.scalars = scalars
            workspace.normalized = normalized
            workspace.pieces = pieces
            workspace.splits = splits
            workspace.innerSplits = innerSplits
        }

        decodeScalars(text, into: &scalars)
        var wordIndex = 0
        scalars.withUnsafeBufferPointer { text in
            splits.removeAll(keepingCapacity: true)
            if rawMatcher.isEmpty {
                splits.append(AddedTokenMatcher.Split(range: 0..<text.count, id: nil))
            } else {
                rawMatcher.split(text, 0..<text.count, into: &splits)
            }
            for split in splits {
                if let id = split.id {
                    tokens.ids.append(id)
                    tokens.offsets.append(split.range)
                    tokens.wordIds.append(wordIndex)
                    wordIndex += 1
                    continue
                }
                normalized.removeAll()
                normalizer.normalize(text, split.range, into: &normalized)
                if normalizedMatcher.isEmpty {
                    appendWords(normalized, 0..<normalized.count, to: &tokens, pieces: &pieces, wordIndex: &wordIndex)
                    continue
                }
                innerSplits.removeAll(keepingCapacity: true)
                normalized.scalars.withUnsafeBufferPointer { normalizedScalars in
                    normalizedMatcher.split(normalizedScalars, 0..<normalizedScalars.count, into: &innerSplits)
                }
                for inner in innerSplits {
                    if let id = inner.id {
                        tokens.ids.append(id)
                        tokens.offsets.append(Int(normalized.origins[inner.range.lowerBound])..<Int(normalized.origins[inner.range.upperBound - 1]) + 1)
                        tokens.wordIds.append(wordIndex)
                        wordIndex += 1
                    } else {
                        appendWords(normalized, inner.range, to: &tokens, pieces: &pieces, wordIndex: &wordIndex)
                    }
                }
            }
        }
    }

    /// BertPreTokenizer and WordPiece over normalized characters: whitespace ends a word and
    /// is dropped, each punctuation character is a word of its own.
    @inline(__always)
    private func appendWords(_ normalized: NormalizedBuffer, _ range: Range<Int>, to tokens: inout SequenceTokens,
                             pieces: inout [WordPiece.Piece], wordIndex: inout Int) {
        normalized.scalars.withUnsafeBufferPointer { scalars in
            normalized.origins.withUnsafeBufferPointer { origins in
                normalized.classes.withUnsafeBufferPointer { classes in
                    func emit(_ word: Range<Int>) {
                        pieces.removeAll(keepingCapacity: true)
                        wordPiece.tokenize(scalars, word, into: &pieces)
                        for piece in pieces {
                            tokens.ids.append(piece.id)
                            tokens.offsets.append(Int(origins[word.lowerBound + piece.start])..<Int(origins[word.lowerBound + piece.end - 1]) + 1)
                            tokens.wordIds.append(wordIndex)
                        }
                        wordIndex += 1
                    }
                    var wordStart = -1
                    for index in range {
                        switch classes[index] {
                        case .word, .nonStarter:
                            if wordStart < 0 { wordStart = index }
                        case .whitespace:
                            if wordStart >= 0 { emit(wordStart..<index) }
                            wordStart = -1
                        case .punctuation:
                            if wordStart >= 0 { emit(wordStart..<index) }
                            wordStart = -1
                            emit(index..<index + 1)
                        }
                    }
                    if wordStart >= 0 { emit(wordStart..<range.upperBound) }
                }
            }
        }
    }
}

/// The Unicode scalars of `text`, read straight from its UTF-8 (a Swift string is always
/// valid UTF-8, so no check is needed).
func decodeScalars(_ text: String, into scalars: inout [UInt32]) {
    scalars.removeAll(keepingCapacity: true)
    var text = text
    text.withUTF8 { bytes in
        scalars.reserveCapacity(bytes.count)
        var index = 0
        let count = bytes.count
        while index < count {
            let lead = UInt32(bytes[index])
            if lead < 0x80 {
                scalars.append(lead)
                index += 1
            } else if lead < 0xE0 {
                scalars.append((lead & 0x1F) << 6 | UInt32(bytes[index + 1] & 0x3F))
                index += 2
            } else if lead < 0xF0 {
                scalars.append((lead & 0x0F) << 12 | UInt32(bytes[index + 1] & 0x3F) << 6 | UInt32(bytes[index + 2] & 0x3F))
                index += 3
            } else {
                scalars.append((lead & 0x07) << 18 | UInt32(bytes[index + 1] & 0x3F) << 12
                               | UInt32(bytes[index + 2] & 0x3F) << 6 | UInt32(bytes[index + 3] & 0x3F))
                index += 4
            }
        }
    }
}

// MARK: - Decoding and offsets

extension BertTokenizer {
    /// Turns ids back into text as the reference's WordPiece decoder does: "##" pieces join
    /// the previous token, other tokens get a space before them, and with clean-up (the
    /// default in tokenizer.json) the space before . , ! ? and in "n't", "'s" ... goes.
    /// Unknown ids are skipped. Accents and case removed by normalization do not come back.
    ///
    /// - Parameter skipSpecialTokens: leave out special added tokens ("[CLS]", "[PAD]", ...),
    ///   the default of the `tokenizers` library.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if skipSpecialTokens, let added = addedTokensById[id], added.special { continue }
            if let token = token(forId: id) { tokens.append(token) }
        }
        guard let decoderOptions else { return tokens.joined(separator: " ") }
        // Bytes, not Characters: "##" + a combining vowel sign is one Swift Character, so
        // Character-based prefix tests and replacements would miss what the reference finds.
        let prefix = Array(decoderOptions.prefix.utf8)
        var text: [UInt8] = []
        for (index, token) in tokens.enumerated() {
            var piece = Array(token.utf8)
            if index > 0 {
                if piece.starts(with: prefix) {
                    piece.removeFirst(prefix.count)
                } else {
                    piece.insert(UInt8(ascii: " "), at: 0)
                }
            }
            if decoderOptions.cleanup { piece = Self.cleanUpTokenization(piece) }
            text.append(contentsOf: piece)
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Hugging Face's `clean_up_tokenization` replacements, in its order.
    private static let cleanUpReplacements: [([UInt8], [UInt8])] = [
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
        (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ].map { (Array($0.0.utf8), Array($0.1.utf8)) }

    /// `clean_up_tokenization` applied as the Rust decoder does: to each token with the space
    /// put before it (not to the joined text), replacing bytes left to right like `str::replace`.
    static func cleanUpTokenization(_ piece: [UInt8]) -> [UInt8] {
        guard piece.contains(UInt8(ascii: " ")) else { return piece }
        var text = piece
        for (pattern, replacement) in cleanUpReplacements {
            var output: [UInt8] = []
            var index = 0
            var changed = false
            while index < text.count {
                if text[index] == pattern[0] && text.count - index >= pattern.count && text[index..<index + pattern.count].elementsEqual(pattern) {
                    output.append(contentsOf: replacement)
                    index += pattern.count
                    changed = true
                } else {
                    output.append(text[index])
                    index += 1
                }
            }
            if changed { text = output }
        }
        return text
    }

    /// Converts offsets in Unicode scalars (what `Encoding.offsets` holds) to UTF-8 byte
    /// offsets into the same text.
    public static func utf8Offsets(_ offsets: [Range<Int>], in text: String) -> [Range<Int>] {
        var byteOfScalar: [Int] = []
        byteOfScalar.reserveCapacity(text.utf8.count + 1)
        var byte = 0
        for scalar in text.unicodeScalars {
            byteOfScalar.append(byte)
            byte += UTF8.width(scalar)
        }
        byteOfScalar.append(byte)
        return offsets.map { range in
            guard range.lowerBound >= 0, range.upperBound < byteOfScalar.count else { return 0..<0 }
            return byteOfScalar[range.lowerBound]..<byteOfScalar[range.upperBound]
        }
    }
}
