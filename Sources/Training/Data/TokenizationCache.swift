import Foundation

/// What a tokenizer is asked to encode for one example.
public struct TokenizerInput: Sendable, Equatable {
    public var text: String
    public var textPair: String?
    /// Token tasks: the words, already split; `wordIds` in the result must index into them
    /// (Hugging Face's `is_split_into_words=True`). Nil for sentence-level tasks.
    public var words: [String]?

    public init(text: String, textPair: String? = nil, words: [String]? = nil) {
        self.text = text
        self.textPair = textPair
        self.words = words
    }
}

/// One encoded example, special tokens included.
public struct TokenizedExample: Sendable, Equatable {
    /// (tokens) vocabulary ids.
    public var ids: [Int32]
    /// (tokens) segment ids: 0 for the first text, 1 for the pair.
    public var typeIds: [Int32]
    /// (tokens) index of the word each token belongs to, -1 for special tokens; all -1
    /// is fine for sentence-level tasks.
    public var wordIds: [Int32]

    public init(ids: [Int32], typeIds: [Int32], wordIds: [Int32]) {
        self.ids = ids
        self.typeIds = typeIds
        self.wordIds = wordIds
    }
}

/// A dataset's encoded examples, packed: example i owns tokens offsets[i]..<offsets[i+1].
public struct TokenizedDataset: Sendable, Equatable {
    /// (examples + 1) start of each example's tokens; the last entry is the token count.
    public var offsets: [Int]
    /// (tokens)
    public var ids: [Int32]
    /// (tokens)
    public var typeIds: [Int32]
    /// (tokens)
    public var wordIds: [Int32]
    /// (examples) the data-file line of each example, to check it still matches the dataset.
    public var lines: [Int32]

    public var count: Int { offsets.count - 1 }
    public var tokenCount: Int { ids.count }

    public subscript(example: Int) -> TokenizedExample {
        let range = offsets[example]..<offsets[example + 1]
        return TokenizedExample(ids: Array(ids[range]), typeIds: Array(typeIds[range]), wordIds: Array(wordIds[range]))
    }
}

/// Tokenised datasets cached on disk between runs, so a rerun skips tokenisation.
///
/// An entry is keyed by everything that changes the result: the data file's absolute path,
/// size and modification time, the tokenizer's vocabulary checksum, `max_length`, the task
/// type and the field names read. A stale or unreadable entry is rebuilt, never trusted; the
/// entry records its full key and the example lines it covers and both are compared on
/// reading.
///
/// File format (little-endian): "PHTOKEN1", UInt32 key length, key (UTF-8 JSON), UInt64
/// examples, UInt64 tokens, then Int32 lines[examples], Int64 offsets[examples + 1],
/// Int32 ids[tokens], typeIds[tokens], wordIds[tokens].
public struct TokenizationCache: Sendable {
    public enum Outcome: Sendable, Equatable {
        /// Read from an existing entry.
        case hit
        /// No entry existed; one was written.
        case miss
        /// An entry existed but did not match or could not be read; it was replaced.
        case rebuilt(reason: String)
    }

    public typealias Tokenize = (TokenizerInput) throws -> TokenizedExample

    static let magic = Array("PHTOKEN1".utf8)

    /// Where entries live; created when the first one is written.
    public var directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// The dataset's encoded examples, from the cache when an entry matches, otherwise by
    /// calling `tokenize` for every example and writing a new entry.
    /// - Parameters:
    ///   - dataset: the examples to encode.
    ///   - fields: the field names the task reads (part of the key).
    ///   - vocabularyChecksum: identifies the tokenizer (for example a SHA-256 of vocab.txt and
    ///     the tokenizer settings).
    ///   - maxLength: the tokenizer's truncation length; results longer than this are an error.
    ///   - tokenize: encodes one example.
    /// - Throws: `DataError` naming file:line when `tokenize` fails or returns inconsistent
    ///   lengths; errors from writing the entry.
    public func tokenized(_ dataset: TaskDataset, fields: FieldNames, vocabularyChecksum: String, maxLength: Int,
                          tokenize: Tokenize) throws -> (dataset: TokenizedDataset, outcome: Outcome) {
        let key = try cacheKey(dataset, fields: fields, vocabularyChecksum: vocabularyChecksum, maxLength: maxLength)
        let entry = URL(fileURLWithPath: directory).appendingPathComponent("tokens-\(Self.hexDigest(key)).bin")
        let lines = dataset.examples.map { Int32(clamping: $0.line) }
        var outcome = Outcome.miss
        if FileManager.default.fileExists(atPath: entry.path) {
            do {
                let cached = try Self.read(entry, key: key)
                guard cached.lines == lines else { throw CacheMismatch(reason: "its rows differ from the dataset's") }
                return (cached, .hit)
            } catch let mismatch as CacheMismatch {
                outcome = .rebuilt(reason: mismatch.reason)
            } catch {
                outcome = .rebuilt(reason: "it could not be read (\(error.localizedDescription))")
            }
        }
        var packed = TokenizedDataset(offsets: [0], ids: [], typeIds: [], wordIds: [], lines: lines)
        for example in dataset.examples {
            let input = TokenizerInput(text: example.text, textPair: example.textPair, words: example.words)
            let encoded: TokenizedExample
            do {
                encoded = try tokenize(input)
            } catch {
                throw DataError(file: dataset.file, line: example.line, message: "the tokenizer failed: \(error)")
            }
            guard encoded.ids.count == encoded.typeIds.count, encoded.ids.count == encoded.wordIds.count else {
                throw DataError(file: dataset.file, line: example.line,
                                message: "the tokenizer returned \(encoded.ids.count) ids, \(encoded.typeIds.count) type ids and \(encoded.wordIds.count) word ids; they must be equal")
            }
            guard encoded.ids.count <= maxLength else {
                throw DataError(file: dataset.file, line: example.line, message: "the tokenizer returned \(encoded.ids.count) tokens, more than max_length \(maxLength)")
            }
            packed.ids += encoded.ids
            packed.typeIds += encoded.typeIds
            packed.wordIds += encoded.wordIds
            packed.offsets.append(packed.ids.count)
        }
        try Self.write(packed, key: key, to: entry)
        return (packed, outcome)
    }

    struct CacheMismatch: Error {
        var reason: String
    }

    /// The key as canonical JSON text.
    func cacheKey(_ dataset: TaskDataset, fields: FieldNames, vocabularyChecksum: String, maxLength: Int) throws -> String {
        let url = URL(fileURLWithPath: dataset.file).standardizedFileURL
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        } catch {
            throw DataError(file: dataset.file, line: nil, message: "cannot read the file's size and date for the token cache (\(error.localizedDescription))")
        }
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? -1
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        var object = JSONObject()
        object["file"] = .string(url.path)
        object["size"] = .integer(Int(size))
        // Microseconds as an integer: exact in JSON, finer than any file system we meet.
        object["mtime_us"] = .integer(Int((modified * 1e6).rounded()))
        object["vocabulary"] = .string(vocabularyChecksum)
        object["max_length"] = .integer(maxLength)
        object["type"] = .string(dataset.type.rawValue)
        object["text"] = .string(fields.text)
        object["text_pair"] = fields.textPair.map(JSONNode.string) ?? .null
        object["label"] = .string(fields.label)
        object["words"] = fields.words.map(JSONNode.string) ?? .null
        return JSONNode.object(object).jsonText
    }

    /// FNV-1a, 64 bits: only names the file (the full key inside is what is checked).
    static func hexDigest(_ text: String) -> String {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    static func write(_ dataset: TokenizedDataset, key: String, to url: URL) throws {
        var bytes = magic
        func append<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }
        let keyBytes = Array(key.utf8)
        append(UInt32(keyBytes.count))
        bytes += keyBytes
        append(UInt64(dataset.count))
        append(UInt64(dataset.tokenCount))
        for line in dataset.lines { append(line) }
        for offset in dataset.offsets { append(Int64(offset)) }
        for array in [dataset.ids, dataset.typeIds, dataset.wordIds] { for value in array { append(value) } }
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            // Atomic so that an interrupted run never leaves half an entry behind.
            try Data(bytes).write(to: url, options: .atomic)
        } catch {
            throw DataError(file: url.path, line: nil, message: "cannot write the token cache (\(error.localizedDescription))",
                            hint: "check that cache_directory is writable")
        }
    }

    static func read(_ url: URL, key: String) throws -> TokenizedDataset {
        let data = try Data(contentsOf: url)
        var reader = ByteReader(bytes: [UInt8](data))
        guard try reader.bytes(magic.count) == magic else { throw CacheMismatch(reason: "it is not a token cache file") }
        let keyLength = Int(try reader.integer(UInt32.self))
        guard let storedKey = String(validating: try reader.bytes(keyLength), as: UTF8.self), storedKey == key else {
            throw CacheMismatch(reason: "its key differs")
        }
        let count = try reader.count(UInt64.self)
        let tokens = try reader.count(UInt64.self)
        let lines = try reader.array(Int32.self, count: count)
        let offsets = try reader.array(Int64.self, count: count + 1).map { Int($0) }
        guard offsets.first == 0, offsets.last == tokens, zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw CacheMismatch(reason: "its offsets are inconsistent")
        }
        let ids = try reader.array(Int32.self, count: tokens)
        let typeIds = try reader.array(Int32.self, count: tokens)
        let wordIds = try reader.array(Int32.self, count: tokens)
        guard reader.position == reader.bytes.count else { throw CacheMismatch(reason: "it has trailing bytes") }
        return TokenizedDataset(offsets: offsets, ids: ids, typeIds: typeIds, wordIds: wordIds, lines: lines)
    }
}

/// Bounds-checked little-endian reads.
struct ByteReader {
    let bytes: [UInt8]
    var position = 0

    mutating func bytes(_ count: Int) throws -> [UInt8] {
        guard count >= 0, count <= bytes.count - position else { throw TokenizationCache.CacheMismatch(reason: "it is truncated") }
        defer { position += count }
        return Array(bytes[position..<position + count])
    }

    mutating func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let raw = try bytes(MemoryLayout<T>.size)
        var value: T = 0
        for (index, byte) in raw.enumerated() { value |= T(truncatingIfNeeded: byte) << (8 * index) }
        return value
    }

    /// A count that must fit in memory: no more than the bytes left.
    mutating func count<T: FixedWidthInteger>(_ type: T.Type) throws -> Int {
        let value = try integer(type)
        guard value <= T(clamping: bytes.count) else { throw TokenizationCache.CacheMismatch(reason: "it is truncated") }
        return Int(value)
    }

    mutating func array<T: FixedWidthInteger>(_ type: T.Type, count: Int) throws -> [T] {
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<T>.size)
        guard !overflow, byteCount <= bytes.count - position else { throw TokenizationCache.CacheMismatch(reason: "it is truncated") }
        var values = [T]()
        values.reserveCapacity(count)
        for _ in 0..<count { values.append(try integer(type)) }
        return values
    }
}
