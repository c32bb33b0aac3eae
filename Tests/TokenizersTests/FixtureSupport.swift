import Foundation
import XCTest
@testable import Tokenizers

/// Paths and readers for the committed fixtures written by scripts/reference/tokenizer_fixtures.py.
enum Fixtures {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let directory = repositoryRoot.appendingPathComponent("Tests/Fixtures/tokenizer")

    struct Missing: Error, CustomStringConvertible {
        let description: String
    }

    /// The default model: `POLYHEAD_MODEL_DIR`, else `<repo>/models/all-MiniLM-L6-v2`.
    static func modelDirectory(file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        let directory = ProcessInfo.processInfo.environment["POLYHEAD_MODEL_DIR"].map { URL(fileURLWithPath: $0) }
            ?? repositoryRoot.appendingPathComponent("models/all-MiniLM-L6-v2")
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer.json").path) else {
            let message = "\(directory.path)/tokenizer.json not found: run scripts/setup (or set POLYHEAD_MODEL_DIR)"
            XCTFail(message, file: file, line: line)
            throw Missing(description: message)
        }
        return directory
    }

    static func modelTokenizer() throws -> BertTokenizer {
        try BertTokenizer(modelDirectory: modelDirectory())
    }

    /// Objects of a JSONL fixture, one per line.
    static func jsonLines(_ name: String) throws -> [[String: Any]] {
        let url = directory.appendingPathComponent(name)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw Missing(description: "\(url.path) missing: rerun scripts/reference/tokenizer_fixtures.py")
        }
        return try data.split(separator: UInt8(ascii: "\n")).enumerated().map { index, line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                throw Missing(description: "\(url.path):\(index + 1): not a JSON object")
            }
            return object
        }
    }

    static func json(_ name: String) throws -> [String: Any] {
        let url = directory.appendingPathComponent(name)
        guard let data = FileManager.default.contents(atPath: url.path),
              let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Missing(description: "\(url.path) missing or not a JSON object: rerun scripts/reference/tokenizer_fixtures.py")
        }
        return object
    }

    /// The corpus texts, in fixture order. Read with JSONDecoder: JSONSerialization drops a
    /// U+FEFF at the start of a string value, and one edge case starts with it.
    static func corpus() throws -> [String] {
        struct Line: Decodable { let text: String }
        let url = directory.appendingPathComponent("corpus.jsonl")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw Missing(description: "\(url.path) missing: rerun scripts/reference/tokenizer_fixtures.py")
        }
        let decoder = JSONDecoder()
        return try data.split(separator: UInt8(ascii: "\n")).map { try decoder.decode(Line.self, from: Data($0)).text }
    }

    static func ints(_ value: Any?) -> [Int] { (value as? [Any])?.compactMap { ($0 as? NSNumber)?.intValue } ?? [] }

    /// `[s0, e0, s1, e1, ...]` as ranges.
    static func ranges(_ value: Any?) -> [Range<Int>] {
        let flat = ints(value)
        return stride(from: 0, to: flat.count - 1, by: 2).map { flat[$0]..<flat[$0 + 1] }
    }

    static func optionalInts(_ value: Any?) -> [Int?] {
        (value as? [Any])?.map { ($0 as? NSNumber)?.intValue } ?? []
    }
}

/// A readable description of a text for failure messages (control characters escaped).
func describe(_ text: String) -> String {
    let escaped = text.unicodeScalars.map { scalar -> String in
        scalar.value < 0x20 || (scalar.value >= 0x7F && scalar.value < 0xA0) || scalar.properties.generalCategory == .format
            ? "\\u{\(String(scalar.value, radix: 16))}" : String(scalar)
    }.joined()
    return escaped.count > 120 ? String(escaped.prefix(120)) + "…" : escaped
}
