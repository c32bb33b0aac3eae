import Foundation

/// One parsed line of a JSONL input file.
struct JSONLRecord {
    let lineNumber: Int
    let object: [String: Any]

    /// The string at `field`, or an error naming the file, line and field; `hint` says how
    /// to name another field.
    func string(_ field: String, in source: String, hint: String = "use --text-field to name another") throws -> String {
        guard let value = object[field] else {
            throw JSONLError("\(source):\(lineNumber): no field \"\(field)\" (\(hint))")
        }
        guard let text = value as? String else {
            throw JSONLError("\(source):\(lineNumber): field \"\(field)\" is not a string")
        }
        return text
    }
}

struct JSONLError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Reads a whole JSONL file (or standard input for "-") before anything is written, so a
/// bad line stops the command before any output exists. Lines are split on "\n" only:
/// a raw "\r" inside a JSON string is still part of that line's text.
func readJSONLines(_ path: String) throws -> [JSONLRecord] {
    var data: Data
    if path == "-" {
        data = FileHandle.standardInput.readDataToEndOfFile()
    } else {
        guard let contents = FileManager.default.contents(atPath: path) else {
            throw JSONLError("\(path): cannot read the file (does it exist?)")
        }
        data = contents
    }
    var records: [JSONLRecord] = []
    var lineNumber = 0
    if data.starts(with: [0xEF, 0xBB, 0xBF]) { data.removeFirst(3) }  // a byte order mark before the first line
    for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
        lineNumber += 1
        var bytes = line
        if bytes.last == UInt8(ascii: "\r") { bytes = bytes.dropLast() }
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw JSONLError("\(path):\(lineNumber): the line is not valid UTF-8")
        }
        let parsed: Any
        do {
            let json = bytes.contains(0xEF) ? Data(escapingByteOrderMarks(bytes)) : Data(bytes)
            parsed = try JSONSerialization.jsonObject(with: json, options: [.fragmentsAllowed])
        } catch {
            throw JSONLError("\(path):\(lineNumber): not valid JSON (\(jsonProblem(error)))")
        }
        guard let object = parsed as? [String: Any] else {
            throw JSONLError("\(path):\(lineNumber): expected a JSON object like {\"text\": \"...\"}")
        }
        records.append(JSONLRecord(lineNumber: lineNumber, object: object))
    }
    return records
}

/// What the JSON parser said, without Foundation's boilerplate around it.
private func jsonProblem(_ error: Error) -> String {
    (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? error.localizedDescription
}

/// A copy of `line` with every raw U+FEFF written as the escape `\ufeff`.
/// JSONSerialization drops a raw U+FEFF that starts a string value (it takes it for a byte
/// order mark); escaped, it is kept. Outside strings a raw U+FEFF is invalid JSON either way.
private func escapingByteOrderMarks(_ line: Data) -> [UInt8] {
    var escaped: [UInt8] = []
    escaped.reserveCapacity(line.count + 8)
    var index = line.startIndex
    while index < line.endIndex {
        if line[index] == 0xEF, index + 2 < line.endIndex, line[index + 1] == 0xBB, line[index + 2] == 0xBF {
            escaped.append(contentsOf: "\\ufeff".utf8)
            index += 3
        } else {
            escaped.append(line[index])
            index += 1
        }
    }
    return escaped
}

/// Collects output lines and writes them in one go: to `path` atomically (a crash leaves no
/// half-written file), or to standard output when `path` is nil.
struct JSONLWriter {
    private var buffer = Data()

    mutating func append(_ object: Any) throws {
        buffer.append(try JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes]))
        buffer.append(UInt8(ascii: "\n"))
    }

    /// Appends one line already serialized as JSON by the caller (no newline inside); for
    /// output made of numbers only, where building it by hand is much faster.
    mutating func append(serializedLine line: [UInt8]) {
        buffer.append(contentsOf: line)
        buffer.append(UInt8(ascii: "\n"))
    }

    func finish(to path: String?) throws {
        if let path {
            try buffer.write(to: URL(fileURLWithPath: path), options: .atomic)
        } else {
            FileHandle.standardOutput.write(buffer)
        }
    }
}
