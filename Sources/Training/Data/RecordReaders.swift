import Foundation

/// Data file formats, chosen by file extension.
public enum DataFormat: String, Sendable, CaseIterable {
    /// One JSON object per line (`.jsonl`, `.ndjson`); blank lines are ignored.
    case jsonLines = "jsonl"
    /// RFC 4180: a header row, commas, double-quoted fields with `""` for a quote; quoted
    /// fields may contain commas and line breaks.
    case csv
    /// A header row, fields separated by tabs, no quoting (a field cannot hold a tab or a
    /// line break).
    case tsv

    /// The format named by the path's extension, nil when it names none of them.
    public init?(path: String) {
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "jsonl", "ndjson": self = .jsonLines
        case "csv": self = .csv
        case "tsv": self = .tsv
        default: return nil
        }
    }
}

/// One field of a row as written: a JSON value (JSONL) or the text of a cell (CSV, TSV).
/// Cells have no types, so the label readers interpret them (see `LabelReader`).
public enum FieldValue: Sendable, Equatable {
    case json(JSONNode)
    case cell(String)
}

/// One row of a data file, with the line it starts on.
public struct DataRecord: Sendable {
    public var line: Int
    /// JSONL: the row's object; CSV/TSV: header name -> cell.
    var values: [String: FieldValue]

    /// The field, or nil when the row lacks it.
    public subscript(field: String) -> FieldValue? { values[field] }
}

/// The rows of one file, and the rows that could not be read when skipping was allowed.
public struct DataFileContents: Sendable {
    public var file: String
    public var format: DataFormat
    public var records: [DataRecord]
    /// Rows that are not valid JSON objects / have the wrong number of cells.
    public var malformed: [DataIssue]
    /// CSV/TSV: the header's field names; JSONL: empty.
    public var header: [String]
}

/// Reads JSONL, CSV and TSV files into records.
public enum DataFileReader {
    /// Reads a whole file.
    /// - Parameters:
    ///   - path: the file as named in the config (errors name it so).
    ///   - skipMalformed: collect malformed rows in `malformed` instead of throwing.
    /// - Throws: `DataError` for an unreadable file, an unknown extension, a bad header, an
    ///   unterminated quote (which swallows the rest of the file), or, unless skipping,
    ///   the first malformed row.
    public static func read(path: String, skipMalformed: Bool) throws -> DataFileContents {
        guard let format = DataFormat(path: path) else {
            throw DataError(file: path, line: nil, message: "cannot tell the format from the extension", hint: "name the file .jsonl, .csv or .tsv")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw DataError(file: path, line: nil, message: "cannot read the file (\(error.localizedDescription))",
                            hint: "check the path in the config; relative paths start at the current directory")
        }
        var bytes = [UInt8](data)
        // A UTF-8 byte order mark is not part of the first field's name or value.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        return try read(bytes: bytes, format: format, file: path, skipMalformed: skipMalformed)
    }

    /// Reads file contents already in memory (tests, or files from elsewhere).
    public static func read(bytes: [UInt8], format: DataFormat, file: String, skipMalformed: Bool) throws -> DataFileContents {
        var contents = DataFileContents(file: file, format: format, records: [], malformed: [], header: [])
        func malformed(_ line: Int, _ message: String, hint: String? = nil) throws {
            if skipMalformed {
                contents.malformed.append(DataIssue(file: file, line: line, message: message))
            } else {
                throw DataError(file: file, line: line, message: message, hint: hint ?? "fix the row, or set training.skip_malformed_rows: true to skip such rows")
            }
        }
        switch format {
        case .jsonLines:
            for (index, lineBytes) in splitLines(bytes).enumerated() {
                let line = index + 1
                guard let text = String(validating: lineBytes, as: UTF8.self) else {
                    try malformed(line, "the line is not valid UTF-8")
                    continue
                }
                if text.allSatisfy(\.isWhitespace) { continue }
                let value: JSONNode
                do {
                    value = try JSONNode.parse(text)
                } catch let error as JSONSyntaxError {
                    try malformed(line, "invalid JSON at column \(error.column): \(error.message)")
                    continue
                }
                guard case .object(let object) = value else {
                    try malformed(line, "expected a JSON object per line, got \(value.kindDescription)")
                    continue
                }
                var values: [String: FieldValue] = [:]
                for (key, fieldValue) in object.entries { values[key] = .json(fieldValue) }
                contents.records.append(DataRecord(line: line, values: values))
            }
        case .csv, .tsv:
            let rows = try format == .csv ? CSVParser.rows(bytes, file: file) : tsvRows(bytes)
            var header: [String]?
            for row in rows {
                if let problem = row.problem {
                    if header == nil {
                        throw DataError(file: file, line: row.line, message: "the header row is malformed: \(problem)")
                    }
                    try malformed(row.line, problem)
                    continue
                }
                // A row of one empty field is a blank line.
                if row.fields.count == 1, row.fields[0].isEmpty { continue }
                guard let names = header else {
                    try checkHeader(row.fields, file: file, line: row.line)
                    header = row.fields
                    contents.header = row.fields
                    continue
                }
                guard row.fields.count == names.count else {
                    let separator = format == .csv ? "comma" : "tab"
                    try malformed(row.line, "expected \(names.count) fields as in the header, got \(row.fields.count)",
                                  hint: format == .csv ? "quote fields that contain a \(separator) (\"a, b\")" : "a TSV field cannot contain a tab; use CSV or JSONL for such text")
                    continue
                }
                var values: [String: FieldValue] = [:]
                for (name, cell) in zip(names, row.fields) { values[name] = .cell(cell) }
                contents.records.append(DataRecord(line: row.line, values: values))
            }
            if header == nil {
                throw DataError(file: file, line: nil, message: "the file is empty; expected a header row naming the fields")
            }
        }
        return contents
    }

    static func checkHeader(_ names: [String], file: String, line: Int) throws {
        var seen = Set<String>()
        for name in names {
            if name.isEmpty { throw DataError(file: file, line: line, message: "the header has an empty field name", hint: "name every column") }
            if !seen.insert(name).inserted { throw DataError(file: file, line: line, message: "the header names '\(name)' twice", hint: "column names must be unique") }
        }
    }

    /// Lines without their terminators ("\n" or "\r\n"); a final terminator does not start
    /// another line.
    static func splitLines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        for index in bytes.indices where bytes[index] == 0x0A {
            var end = index
            if end > start, bytes[end - 1] == 0x0D { end -= 1 }
            lines.append(bytes[start..<end])
            start = index + 1
        }
        if start < bytes.count {
            var end = bytes.count
            if bytes[end - 1] == 0x0D { end -= 1 }
            lines.append(bytes[start..<end])
        }
        return lines
    }

    static func tsvRows(_ bytes: [UInt8]) -> [CSVParser.Row] {
        splitLines(bytes).enumerated().map { index, lineBytes in
            guard let text = String(validating: lineBytes, as: UTF8.self) else {
                return CSVParser.Row(line: index + 1, fields: [], problem: "the line is not valid UTF-8")
            }
            return CSVParser.Row(line: index + 1, fields: text.split(separator: "\t", omittingEmptySubsequences: false).map(String.init), problem: nil)
        }
    }
}

/// RFC 4180 CSV, tolerant of LF-only line endings and of a missing final line break.
enum CSVParser {
    struct Row {
        /// Line the row starts on.
        var line: Int
        var fields: [String]
        /// Set when the row is malformed; `fields` is then incomplete.
        var problem: String?
    }

    /// - Throws: `DataError` for a quoted field still open at the end of the file: everything
    ///   after the quote would be one field, so no later row can be trusted.
    static func rows(_ bytes: [UInt8], file: String) throws -> [Row] {
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), newline: UInt8 = 0x0A, carriageReturn: UInt8 = 0x0D
        var rows: [Row] = []
        var position = 0
        var line = 1
        while position < bytes.count {
            let rowLine = line
            var fields: [String] = []
            var problem: String?
            var field: [UInt8] = []
            var rowDone = false
            while !rowDone {
                // One field, starting at `position`.
                field.removeAll(keepingCapacity: true)
                if position < bytes.count, bytes[position] == quote {
                    let quoteLine = line
                    position += 1
                    var closed = false
                    while position < bytes.count {
                        let byte = bytes[position]
                        if byte == quote {
                            if position + 1 < bytes.count, bytes[position + 1] == quote {
                                field.append(quote)
                                position += 2
                                continue
                            }
                            position += 1
                            closed = true
                            break
                        }
                        if byte == newline { line += 1 }
                        field.append(byte)
                        position += 1
                    }
                    if !closed {
                        throw DataError(file: file, line: quoteLine, message: "a quoted field opened here is never closed",
                                        hint: "close the quote; a quote inside a quoted field is written \"\"")
                    }
                    // After the closing quote only a separator or the end of the row may follow.
                    if position < bytes.count, ![comma, newline, carriageReturn].contains(bytes[position]) {
                        problem = "unexpected text after the closing quote of field \(fields.count + 1) (a quote inside a quoted field is written \"\")"
                    }
                } else {
                    while position < bytes.count, ![comma, newline, carriageReturn].contains(bytes[position]) {
                        if bytes[position] == quote, problem == nil {
                            problem = "a quote inside unquoted field \(fields.count + 1) (put the field in double quotes and write the quote as \"\")"
                        }
                        field.append(bytes[position])
                        position += 1
                    }
                }
                if let text = String(validating: field, as: UTF8.self) {
                    fields.append(text)
                } else if problem == nil {
                    problem = "field \(fields.count + 1) is not valid UTF-8"
                }
                if problem != nil {
                    // Resynchronise at the next line break.
                    while position < bytes.count, bytes[position] != newline { position += 1 }
                }
                if position >= bytes.count {
                    rowDone = true
                } else if bytes[position] == comma {
                    position += 1
                } else {
                    if bytes[position] == carriageReturn { position += 1 }
                    if position < bytes.count, bytes[position] == newline { position += 1 }
                    line += 1
                    rowDone = true
                }
            }
            rows.append(Row(line: rowLine, fields: fields, problem: problem))
        }
        return rows
    }
}
