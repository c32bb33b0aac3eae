/// A JSON value from a safetensors header. Object members keep their order and their
/// duplicates: JSONSerialization silently keeps one of two equal keys, which would let a file
/// with two tensors of the same name load as one.
indirect enum HeaderJSONValue: Equatable {
    case object([HeaderJSONMember])
    case array([HeaderJSONValue])
    case string(String)
    /// The literal text, already checked against the JSON number grammar.
    case number(String)
    case bool(Bool)
    case null

    /// How an error message refers to a value of this kind.
    var kindName: String {
        switch self {
        case .object: "an object"
        case .array: "an array"
        case .string: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        case .null: "null"
        }
    }
}

struct HeaderJSONMember: Equatable {
    let key: String
    let value: HeaderJSONValue
}

struct HeaderJSONSyntaxError: Error {
    let byteOffset: Int
    let reason: String
}

/// A strict RFC 8259 parser over UTF-8 bytes that were validated beforehand. Strict where
/// serde_json (used by the reference implementation) is strict: no trailing commas, no
/// comments, no control characters or lone surrogates in strings, no trailing garbage.
struct HeaderJSONParser {
    /// serde_json's default recursion limit; also keeps a hostile header from exhausting the stack.
    static let maximumDepth = 128

    private let bytes: [UInt8]
    private var position = 0
    private var depth = 0

    static func parse(_ bytes: [UInt8]) throws -> HeaderJSONValue {
        var parser = HeaderJSONParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue()
        parser.skipWhitespace()
        if parser.position != bytes.count {
            throw parser.error("unexpected characters after the top-level value")
        }
        return value
    }

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    private func error(_ reason: String) -> HeaderJSONSyntaxError {
        HeaderJSONSyntaxError(byteOffset: position, reason: reason)
    }

    private var current: UInt8? {
        position < bytes.count ? bytes[position] : nil
    }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D {
            position += 1
        }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws {
        guard current == byte else {
            throw error(current == nil ? "header ends where \(what) was expected" : "expected \(what)")
        }
        position += 1
    }

    private mutating func parseValue() throws -> HeaderJSONValue {
        guard let byte = current else { throw error("header ends where a value was expected") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try parseLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try parseLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try parseLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("expected a value")
        }
    }

    private mutating func enterContainer() throws {
        depth += 1
        if depth > Self.maximumDepth {
            throw error("nesting deeper than \(Self.maximumDepth) levels")
        }
    }

    private mutating func parseObject() throws -> HeaderJSONValue {
        try enterContainer()
        defer { depth -= 1 }
        position += 1  // "{"
        var members: [HeaderJSONMember] = []
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "':' after an object key")
            skipWhitespace()
            members.append(HeaderJSONMember(key: key, value: try parseValue()))
            skipWhitespace()
            if current == UInt8(ascii: ",") {
                position += 1
                continue
            }
            try expect(UInt8(ascii: "}"), "',' or '}' in an object")
            return .object(members)
        }
    }

    private mutating func parseArray() throws -> HeaderJSONValue {
        try enterContainer()
        defer { depth -= 1 }
        position += 1  // "["
        var elements: [HeaderJSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue())
            skipWhitespace()
            if current == UInt8(ascii: ",") {
                position += 1
                continue
            }
            try expect(UInt8(ascii: "]"), "',' or ']' in an array")
            return .array(elements)
        }
    }

    private mutating func parseLiteral(_ literal: String) throws {
        let expected = Array(literal.utf8)
        let end = position + expected.count
        guard end <= bytes.count, bytes[position..<end].elementsEqual(expected) else {
            throw error("invalid literal, expected '\(literal)'")
        }
        position = end
    }

    private mutating func parseDigits() -> Int {
        let start = position
        while let byte = current, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
            position += 1
        }
        return position - start
    }

    private mutating func parseNumber() throws -> String {
        let start = position
        if current == UInt8(ascii: "-") { position += 1 }
        if current == UInt8(ascii: "0") {
            position += 1
            if let byte = current, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                throw error("numbers must not have leading zeros")
            }
        } else if parseDigits() == 0 {
            throw error("expected digits in a number")
        }
        if current == UInt8(ascii: ".") {
            position += 1
            if parseDigits() == 0 { throw error("expected digits after a decimal point") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            if parseDigits() == 0 { throw error("expected digits in an exponent") }
        }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    private mutating func parseHexQuad() throws -> UInt32 {
        guard position + 4 <= bytes.count else { throw error("header ends inside a \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid hex digit in a \\u escape")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    private mutating func parseString() throws -> String {
        position += 1  // opening quote
        var utf8: [UInt8] = []
        while true {
            guard let byte = current else { throw error("header ends inside a string") }
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                position += 1
                guard let escaped = current else { throw error("header ends inside an escape") }
                position += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escaped)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"): try appendUnicodeEscape(to: &utf8)
                default:
                    position -= 1
                    throw error("invalid escape character")
                }
            case 0x00..<0x20:
                throw error("unescaped control character in a string")
            default:
                utf8.append(byte)
                position += 1
            }
        }
    }

    private mutating func appendUnicodeEscape(to utf8: inout [UInt8]) throws {
        let first = try parseHexQuad()
        var scalarValue = first
        if (0xD800...0xDBFF).contains(first) {
            guard position + 2 <= bytes.count,
                  bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u")
            else { throw error("lone leading surrogate in a \\u escape") }
            position += 2
            let second = try parseHexQuad()
            guard (0xDC00...0xDFFF).contains(second) else {
                throw error("leading surrogate not followed by a trailing surrogate")
            }
            scalarValue = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(first) {
            throw error("lone trailing surrogate in a \\u escape")
        }
        guard let scalar = Unicode.Scalar(scalarValue) else {
            throw error("\\u escape is not a Unicode scalar")
        }
        UTF8.encode(scalar) { utf8.append($0) }
    }
}

/// The first byte offset at which `bytes` stops being valid UTF-8, or nil when all of it is.
/// The standard library's parser rejects overlong forms, surrogates and values past U+10FFFF.
func firstInvalidUTF8Offset(_ bytes: [UInt8]) -> Int? {
    var parser = Unicode.UTF8.ForwardParser()
    var iterator = bytes.makeIterator()
    var offset = 0
    while true {
        switch parser.parseScalar(from: &iterator) {
        case .valid(let encoded): offset += encoded.count
        case .error: return offset
        case .emptyInput: return nil
        }
    }
}
