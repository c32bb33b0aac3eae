/// The per-character Unicode data of the reference tokenizer (see UnicodeData.swift, generated
/// by scripts/reference/unicode_tables.py), parsed once into lookup tables.
///
/// Swift's own `Unicode.Scalar.Properties` are deliberately not used: the Rust crates behind
/// Hugging Face's BertNormalizer predate Unicode 11 for categories and decompositions, so a
/// newer table would drop, keep or split characters differently and change ids.
struct UnicodeTables: Sendable {
    /// Bits of `flags(of:)`; the first six come from the generated data.
    struct Flags: OptionSet, Sendable {
        let rawValue: UInt16
        static let cleanRemoves = Flags(rawValue: 1)
        static let cleanToSpace = Flags(rawValue: 2)
        static let whitespace = Flags(rawValue: 4)
        static let punctuation = Flags(rawValue: 8)
        static let chinese = Flags(rawValue: 16)
        static let nonspacingMark = Flags(rawValue: 32)
        // Derived while parsing, so one lookup says whether a character needs any work.
        static let hasLowercase = Flags(rawValue: 64)
        static let hasDecomposition = Flags(rawValue: 128)
        static let nonStarter = Flags(rawValue: 256)
    }

    static let blockShift = 7
    static let blockSize = 1 << blockShift
    static let scalarLimit: UInt32 = 0x110000

    /// Two-level table: `blocks[blockIndex[scalar >> 7] * 128 + scalar & 127]`.
    private let blockIndex: [UInt16]
    private let blocks: [UInt16]
    let lowercase: [UInt32: [UInt32]]
    let decomposition: [UInt32: [UInt32]]
    let combiningClass: [UInt32: UInt8]

    static let shared = UnicodeTables()

    private init() {
        var lowercase: [UInt32: [UInt32]] = [:]
        for (scalar, mapped) in Self.parseMappings(Self.lowercaseSource) { lowercase[scalar] = mapped }
        var decomposition: [UInt32: [UInt32]] = [:]
        for (scalar, mapped) in Self.parseMappings(Self.decompositionSource) { decomposition[scalar] = mapped }
        var combiningClass: [UInt32: UInt8] = [:]
        for (scalar, value) in Self.parseMappings(Self.combiningClassSource) { combiningClass[scalar] = UInt8(value[0]) }

        var flat = [UInt16](repeating: 0, count: Int(Self.scalarLimit))
        let runs = Self.parseRuns(Self.flagRunsSource)
        for (index, run) in runs.enumerated() {
            let end = index + 1 < runs.count ? Int(runs[index + 1].start) : flat.count
            for scalar in Int(run.start)..<end { flat[scalar] = run.flags }
        }
        for scalar in lowercase.keys { flat[Int(scalar)] |= Flags.hasLowercase.rawValue }
        for scalar in decomposition.keys { flat[Int(scalar)] |= Flags.hasDecomposition.rawValue }
        for scalar in 0xAC00..<0xD7A4 { flat[scalar] |= Flags.hasDecomposition.rawValue }  // Hangul syllables
        for scalar in combiningClass.keys { flat[Int(scalar)] |= Flags.nonStarter.rawValue }

        var blockIndex: [UInt16] = []
        var blocks: [UInt16] = []
        var seen: [ArraySlice<UInt16>: UInt16] = [:]
        for start in stride(from: 0, to: flat.count, by: Self.blockSize) {
            let block = flat[start..<start + Self.blockSize]
            if let known = seen[block] {
                blockIndex.append(known)
            } else {
                let number = UInt16(blocks.count / Self.blockSize)
                seen[block] = number
                blocks.append(contentsOf: block)
                blockIndex.append(number)
            }
        }
        self.blockIndex = blockIndex
        self.blocks = blocks
        self.lowercase = lowercase
        self.decomposition = decomposition
        self.combiningClass = combiningClass
    }

    @inline(__always)
    func flags(of scalar: UInt32) -> Flags {
        let block = Int(blockIndex[Int(scalar >> UInt32(Self.blockShift))])
        return Flags(rawValue: blocks[block << Self.blockShift | Int(scalar & UInt32(Self.blockSize - 1))])
    }

    /// Full canonical decomposition of one character, as the reference's NFD gives it.
    func decompose(_ scalar: UInt32) -> [UInt32] {
        if scalar >= 0xAC00 && scalar < 0xD7A4 {
            // Hangul syllables decompose by arithmetic (Unicode 3.12), not by table.
            let index = scalar - 0xAC00
            let lead = 0x1100 + index / 588
            let vowel = 0x1161 + (index % 588) / 28
            let trail = 0x11A7 + index % 28
            return trail == 0x11A7 ? [lead, vowel] : [lead, vowel, trail]
        }
        return decomposition[scalar] ?? [scalar]
    }

    // MARK: Parsing the generated text (it is ours, so a malformed entry is a programming error).

    private static func parseRuns(_ source: String) -> [(start: UInt32, flags: UInt16)] {
        source.split(whereSeparator: { $0 == " " || $0 == "\n" }).map { entry in
            let parts = entry.split(separator: ":")
            guard parts.count == 2, let start = UInt32(parts[0], radix: 16), let flags = UInt16(parts[1], radix: 16) else {
                preconditionFailure("UnicodeData.swift: bad flag run \(entry); rerun scripts/reference/unicode_tables.py")
            }
            return (start, flags)
        }
    }

    private static func parseMappings(_ source: String) -> [(UInt32, [UInt32])] {
        source.split(whereSeparator: { $0 == " " || $0 == "\n" }).map { entry in
            let parts = entry.split(separator: "=")
            guard parts.count == 2, let scalar = UInt32(parts[0], radix: 16) else {
                preconditionFailure("UnicodeData.swift: bad entry \(entry); rerun scripts/reference/unicode_tables.py")
            }
            let mapped = parts[1].split(separator: ",").map { value -> UInt32 in
                guard let number = UInt32(value, radix: 16) else {
                    preconditionFailure("UnicodeData.swift: bad entry \(entry); rerun scripts/reference/unicode_tables.py")
                }
                return number
            }
            return (scalar, mapped)
        }
    }
}
