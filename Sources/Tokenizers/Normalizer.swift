import Foundation

/// Settings of Hugging Face's `BertNormalizer` (tokenizer.json "normalizer", or
/// tokenizer_config.json's `do_lower_case`, `strip_accents`, `tokenize_chinese_chars`).
public struct NormalizerOptions: Hashable, Sendable {
    /// Drop control and format characters, NUL and U+FFFD; turn whitespace into " ".
    public var cleanText: Bool
    /// Put spaces around CJK ideographs so that each becomes its own word.
    public var handleChineseChars: Bool
    /// Decompose (NFD) and drop nonspacing marks; `nil` follows `lowercase`, as in Hugging Face.
    public var stripAccents: Bool?
    /// Lowercase one character at a time (Rust's `char::to_lowercase`: no final-sigma rule).
    public var lowercase: Bool

    public init(cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil, lowercase: Bool = true) {
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents
        self.lowercase = lowercase
    }

    /// No normalizer at all (tokenizer.json `"normalizer": null`).
    public static let identity = NormalizerOptions(cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: false)

    /// Whether accents are stripped once `nil` has been resolved.
    public var stripsAccents: Bool { stripAccents ?? lowercase }
}

/// What the pre-tokenizer does with one normalized character.
enum CharacterClass: UInt8 {
    case word = 0
    /// Splits words and is dropped (Rust `char::is_whitespace`).
    case whitespace = 1
    /// Becomes a word of its own (ASCII punctuation or Unicode P*).
    case punctuation = 2
    /// A word character with a nonzero canonical combining class that strip_accents keeps: NFD
    /// may move it, so a piece holding one takes the step-by-step path (`normalizeWithReordering`).
    case nonStarter = 3
}

/// The normalizer and the pre-tokenizer's character classes compiled, for one set of options,
/// into a table of one 32-bit entry per Unicode scalar, so that the hot loop does a single
/// lookup per character whatever the options.
///
/// Entry layout: bits 0-2 the kind, bits 3-31 the payload.
final class CompiledNormalizer: Sendable {
    enum Kind: UInt32 {
        /// Kept as is; a word character.
        case identity = 0
        /// Dropped by clean_text or strip_accents.
        case removed = 1
        /// Normalizes to the whitespace in the payload: a word boundary, itself dropped.
        case whitespace = 2
        /// Kept as is; punctuation.
        case punctuation = 3
        /// Becomes the one word character in the payload.
        case mapped = 4
        /// Becomes several characters: payload = offset in `sequences` (count, then entries).
        case sequence = 5
        /// Kept as is; a word character that NFD may reorder (the piece takes the exact path).
        case nonStarter = 6
    }

    /// A `sequences` entry: scalar in bits 0-20, class in bits 21-23.
    static func sequenceEntry(_ scalar: UInt32, _ characterClass: CharacterClass) -> UInt32 {
        scalar | UInt32(characterClass.rawValue) << 21
    }

    let options: NormalizerOptions
    /// Entries for U+0000-U+007F, the common case, without the two-level walk.
    let ascii: [UInt32]
    private let blockIndex: [UInt16]
    private let blocks: [UInt32]
    let sequences: [UInt32]

    private static let cacheLock = NSLock()
    nonisolated(unsafe) private static var cache: [NormalizerOptions: CompiledNormalizer] = [:]

    /// The compiled table for `options`, built once per process (about a million entries).
    static func shared(for options: NormalizerOptions) -> CompiledNormalizer {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let known = cache[options] { return known }
        let compiled = CompiledNormalizer(options: options)
        cache[options] = compiled
        return compiled
    }

    private init(options: NormalizerOptions) {
        self.options = options
        let tables = UnicodeTables.shared
        var sequences: [UInt32] = []
        var sequenceOffsets: [[UInt32]: UInt32] = [:]
        var blockIndex: [UInt16] = []
        var blocks: [UInt32] = []
        var seen: [[UInt32]: UInt16] = [:]
        var block = [UInt32](repeating: 0, count: UnicodeTables.blockSize)
        for blockStart in stride(from: UInt32(0), to: UnicodeTables.scalarLimit, by: UnicodeTables.blockSize) {
            for offset in 0..<UnicodeTables.blockSize {
                let scalar = blockStart + UInt32(offset)
                // The two commonest cases (most letters; unassigned code points) without arrays.
                let flags = tables.flags(of: scalar)
                if flags.isEmpty {
                    block[offset] = Kind.identity.rawValue
                } else if options.cleanText && flags.contains(.cleanRemoves) {
                    block[offset] = Kind.removed.rawValue
                } else {
                    let output = Self.normalize(scalar, options: options, tables: tables)
                    block[offset] = Self.entry(for: scalar, output: output, sequences: &sequences, sequenceOffsets: &sequenceOffsets)
                }
            }
            if let known = seen[block] {
                blockIndex.append(known)
            } else {
                let number = UInt16(blocks.count / UnicodeTables.blockSize)
                seen[block] = number
                blocks.append(contentsOf: block)
                blockIndex.append(number)
            }
        }
        self.blockIndex = blockIndex
        self.blocks = blocks
        self.sequences = sequences
        self.ascii = Array(blocks[Int(blockIndex[0]) * UnicodeTables.blockSize..<Int(blockIndex[0] + 1) * UnicodeTables.blockSize])
    }

    @inline(__always)
    func entry(_ scalar: UInt32) -> UInt32 {
        if scalar < 0x80 { return ascii[Int(scalar)] }
        let block = Int(blockIndex[Int(scalar >> UInt32(UnicodeTables.blockShift))])
        return blocks[block << UnicodeTables.blockShift | Int(scalar & UInt32(UnicodeTables.blockSize - 1))]
    }

    /// One character through BertNormalizer, in the reference's order: clean_text, Chinese
    /// characters, NFD and nonspacing marks removed, lowercase. Each output character carries
    /// the class the pre-tokenizer will give it.
    static func normalize(_ scalar: UInt32, options: NormalizerOptions, tables: UnicodeTables) -> [(UInt32, CharacterClass)] {
        let flags = tables.flags(of: scalar)
        if flags.isEmpty { return [(scalar, .word)] }  // most characters: nothing to do
        if options.cleanText && flags.contains(.cleanRemoves) { return [] }
        var characters: [UInt32]
        if options.cleanText && flags.contains(.cleanToSpace) {
            characters = [0x20]
        } else if options.handleChineseChars && flags.contains(.chinese) {
            characters = [0x20, scalar, 0x20]
        } else {
            characters = [scalar]
        }
        let decomposes = options.stripsAccents
        if decomposes {
            characters = characters.flatMap { tables.decompose($0) }.filter { !tables.flags(of: $0).contains(.nonspacingMark) }
        }
        if options.lowercase {
            characters = characters.flatMap { tables.lowercase[$0] ?? [$0] }
        }
        return characters.map { character in
            let characterFlags = tables.flags(of: character)
            if characterFlags.contains(.whitespace) { return (character, .whitespace) }
            if characterFlags.contains(.punctuation) { return (character, .punctuation) }
            if decomposes && characterFlags.contains(.nonStarter) { return (character, .nonStarter) }
            return (character, .word)
        }
    }

    private static func entry(for scalar: UInt32, output: [(UInt32, CharacterClass)],
                              sequences: inout [UInt32], sequenceOffsets: inout [[UInt32]: UInt32]) -> UInt32 {
        func make(_ kind: Kind, _ payload: UInt32 = 0) -> UInt32 { kind.rawValue | payload << 3 }
        if output.isEmpty { return make(.removed) }
        if output.count == 1 {
            let (character, characterClass) = output[0]
            switch characterClass {
            case .whitespace: return make(.whitespace, character)
            case .word: return character == scalar ? make(.identity) : make(.mapped, character)
            case .punctuation where character == scalar: return make(.punctuation)
            case .nonStarter where character == scalar: return make(.nonStarter)
            default: break
            }
        }
        let entries = output.map { sequenceEntry($0.0, $0.1) }
        if let offset = sequenceOffsets[entries] { return make(.sequence, offset) }
        let offset = UInt32(sequences.count)
        sequences.append(UInt32(entries.count))
        sequences.append(contentsOf: entries)
        sequenceOffsets[entries] = offset
        return make(.sequence, offset)
    }
}

/// Normalized characters of one piece of text, each with the original character it came from.
struct NormalizedBuffer {
    var scalars: [UInt32] = []
    /// Index, in Unicode scalars of the original text, of the character each one comes from.
    var origins: [Int32] = []
    var classes: [CharacterClass] = []

    mutating func removeAll() {
        scalars.removeAll(keepingCapacity: true)
        origins.removeAll(keepingCapacity: true)
        classes.removeAll(keepingCapacity: true)
    }

    var count: Int { scalars.count }

    @inline(__always)
    mutating func append(_ scalar: UInt32, origin: Int32, class characterClass: CharacterClass) {
        scalars.append(scalar)
        origins.append(origin)
        classes.append(characterClass)
    }
}

extension NormalizedBuffer {
    mutating func truncate(to count: Int) {
        scalars.removeSubrange(count...)
        origins.removeSubrange(count...)
        classes.removeSubrange(count...)
    }
}

extension CompiledNormalizer {
    /// Normalizes `text[range]` (Unicode scalars) into `buffer`, after what it already holds.
    func normalize(_ text: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, into buffer: inout NormalizedBuffer) {
        let start = buffer.count
        for index in range {
            let scalar = text[index]
            let value = entry(scalar)
            let origin = Int32(truncatingIfNeeded: index)
            switch Kind(rawValue: value & 7) {
            case .identity: buffer.append(scalar, origin: origin, class: .word)
            case .removed: break
            case .whitespace: buffer.append(value >> 3, origin: origin, class: .whitespace)
            case .punctuation: buffer.append(scalar, origin: origin, class: .punctuation)
            case .mapped: buffer.append(value >> 3, origin: origin, class: .word)
            case .sequence:
                let offset = Int(value >> 3)
                for position in 0..<Int(sequences[offset]) {
                    let item = sequences[offset + 1 + position]
                    let characterClass = CharacterClass(rawValue: UInt8(item >> 21)) ?? .word
                    if characterClass == .nonStarter {
                        buffer.truncate(to: start)
                        normalizeWithReordering(text, range, into: &buffer)
                        return
                    }
                    buffer.append(item & 0x1FFFFF, origin: origin, class: characterClass)
                }
            case .nonStarter:
                buffer.truncate(to: start)
                normalizeWithReordering(text, range, into: &buffer)
                return
            case nil: preconditionFailure("corrupt normalizer entry \(value) for U+\(String(scalar, radix: 16))")
            }
        }
    }

    /// The reference's normalizer step by step, for a piece where NFD leaves a character with a
    /// nonzero combining class that strip_accents keeps (Balinese, Javanese and other viramas,
    /// musical symbols, ...): canonical ordering may then move it, and where it ends up decides
    /// both the ids and which original character its offsets point to.
    ///
    /// Offsets follow the reference's alignment bookkeeping: in the decomposed text, the first
    /// character of each decomposition "replaces" its source and the others are "inserted";
    /// after reordering (characters carry that mark with them), a replacing character takes the
    /// next source character's origin and an inserted one the previous source character's.
    private func normalizeWithReordering(_ text: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, into buffer: inout NormalizedBuffer) {
        precondition(options.stripsAccents, "only NFD reorders, and only strip_accents decomposes")
        let tables = UnicodeTables.shared
        // clean_text and Chinese characters: the text the NFD pass sees, with origins.
        var sources: [(scalar: UInt32, origin: Int32)] = []
        for index in range {
            let scalar = text[index]
            let flags = tables.flags(of: scalar)
            let origin = Int32(truncatingIfNeeded: index)
            if options.cleanText && flags.contains(.cleanRemoves) { continue }
            if options.cleanText && flags.contains(.cleanToSpace) {
                sources.append((0x20, origin))
            } else if options.handleChineseChars && flags.contains(.chinese) {
                sources.append((0x20, origin))
                sources.append((scalar, origin))
                sources.append((0x20, origin))
            } else {
                sources.append((scalar, origin))
            }
        }
        // NFD: full decompositions, then each run of non-starters in stable combining-class order.
        var decomposed: [(scalar: UInt32, inserted: Bool, combiningClass: UInt8)] = []
        for source in sources {
            for (position, part) in tables.decompose(source.scalar).enumerated() {
                decomposed.append((part, position > 0, tables.combiningClass[part] ?? 0))
            }
        }
        var runStart = 0
        while runStart < decomposed.count {
            guard decomposed[runStart].combiningClass != 0 else {
                runStart += 1
                continue
            }
            var runEnd = runStart
            while runEnd < decomposed.count && decomposed[runEnd].combiningClass != 0 { runEnd += 1 }
            let sorted = decomposed[runStart..<runEnd].enumerated()
                .sorted { ($0.element.combiningClass, $0.offset) < ($1.element.combiningClass, $1.offset) }.map(\.element)
            decomposed.replaceSubrange(runStart..<runEnd, with: sorted)
            runStart = runEnd
        }
        // Origins as the reference aligns them; then nonspacing marks go and the rest is lowercased.
        var nextSource = 0
        for item in decomposed {
            let origin: Int32
            if item.inserted {
                origin = sources[max(nextSource - 1, 0)].origin
            } else {
                origin = sources[nextSource].origin
                nextSource += 1
            }
            let flags = tables.flags(of: item.scalar)
            if flags.contains(.nonspacingMark) { continue }
            for character in options.lowercase ? (tables.lowercase[item.scalar] ?? [item.scalar]) : [item.scalar] {
                let characterFlags = tables.flags(of: character)
                let characterClass: CharacterClass = characterFlags.contains(.whitespace) ? .whitespace
                    : characterFlags.contains(.punctuation) ? .punctuation : .word
                buffer.append(character, origin: origin, class: characterClass)
            }
        }
    }
}
