import CPolyhead
import Foundation

/// A JSON value as configs and labels hold it. Object members keep the file's key order
/// only up to sorting: members are sorted by key so enumeration is deterministic.
public enum JSONValue: Equatable, Sendable, Decodable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses JSON text (any value, not only objects).
    /// - Throws: PluginError(.invalidRequest) naming `source` when the text is not JSON.
    public init(parsing text: String, source: String = "JSON") throws {
        do {
            self = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        } catch {
            throw PluginError(.invalidRequest, "\(source) is not valid JSON: \(text.prefix(80))")
        }
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// Compact JSON text.
    public var text: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .number(let value):
            if value.isFinite, value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
            return "\(value)"
        case .string(let value): return quoteJSON(value)
        case .array(let values): return "[" + values.map(\.text).joined(separator: ",") + "]"
        case .object(let members):
            return "{" + members.keys.sorted().map { quoteJSON($0) + ":" + members[$0]!.text }.joined(separator: ",") + "}"
        }
    }
}

func quoteJSON(_ string: String) -> String {
    var result = "\""
    for scalar in string.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        default:
            if scalar.value < 0x20 {
                result += String(format: "\\u%04x", scalar.value)
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
    }
    return result + "\""
}

/// The host-owned tree behind an opaque `ph_json *`. A node's C strings live as long as the
/// node; the caller keeps the root alive for the duration of the plugin call.
final class JSONNode {
    let type: Int32
    let boolValue: Bool
    let numberValue: Double
    let stringValue: UnsafeMutablePointer<CChar>?
    let children: [JSONNode]
    let keys: [UnsafeMutablePointer<CChar>]
    let memberIndex: [String: Int]

    init(_ value: JSONValue) {
        var boolValue = false, numberValue = 0.0
        var stringValue: UnsafeMutablePointer<CChar>? = nil
        var children: [JSONNode] = [], keys: [UnsafeMutablePointer<CChar>] = [], memberIndex: [String: Int] = [:]
        switch value {
        case .null: type = PH_JSON_NULL
        case .bool(let value): type = PH_JSON_BOOL; boolValue = value
        case .number(let value): type = PH_JSON_NUMBER; numberValue = value
        case .string(let value): type = PH_JSON_STRING; stringValue = strdup(value)
        case .array(let values): type = PH_JSON_ARRAY; children = values.map(JSONNode.init)
        case .object(let members):
            type = PH_JSON_OBJECT
            for (index, key) in members.keys.sorted().enumerated() {
                keys.append(strdup(key))
                children.append(JSONNode(members[key]!))
                memberIndex[key] = index
            }
        }
        self.boolValue = boolValue
        self.numberValue = numberValue
        self.stringValue = stringValue
        self.children = children
        self.keys = keys
        self.memberIndex = memberIndex
    }

    deinit {
        free(stringValue)
        keys.forEach { free($0) }
    }

    var opaque: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    static func from(_ pointer: OpaquePointer?) -> JSONNode? {
        guard let pointer else { return nil }
        return Unmanaged<JSONNode>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
    }
}

// The json_* services. Each accepts NULL so plugins can chain lookups.

let jsonType: @convention(c) (OpaquePointer?) -> Int32 = { value in
    JSONNode.from(value)?.type ?? PH_JSON_ABSENT
}
let jsonBool: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?) -> ph_status = { value, out in
    guard let node = JSONNode.from(value) else { return PH_STATUS_NOT_FOUND }
    guard node.type == PH_JSON_BOOL, let out else { return PH_STATUS_INVALID_ARGUMENT }
    out.pointee = node.boolValue ? 1 : 0
    return PH_STATUS_OK
}
let jsonNumber: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Double>?) -> ph_status = { value, out in
    guard let node = JSONNode.from(value) else { return PH_STATUS_NOT_FOUND }
    guard node.type == PH_JSON_NUMBER, let out else { return PH_STATUS_INVALID_ARGUMENT }
    out.pointee = node.numberValue
    return PH_STATUS_OK
}
let jsonString: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> ph_status = { value, out in
    guard let node = JSONNode.from(value) else { return PH_STATUS_NOT_FOUND }
    guard node.type == PH_JSON_STRING, let out else { return PH_STATUS_INVALID_ARGUMENT }
    out.pointee = UnsafePointer(node.stringValue)
    return PH_STATUS_OK
}
let jsonCount: @convention(c) (OpaquePointer?) -> Int64 = { value in
    Int64(JSONNode.from(value)?.children.count ?? 0)
}
let jsonElement: @convention(c) (OpaquePointer?, Int64) -> OpaquePointer? = { value, index in
    guard let node = JSONNode.from(value), node.type == PH_JSON_ARRAY, index >= 0, index < node.children.count else { return nil }
    return node.children[Int(index)].opaque
}
let jsonMember: @convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> OpaquePointer? = { value, key in
    guard let node = JSONNode.from(value), node.type == PH_JSON_OBJECT, let key,
          let index = node.memberIndex[String(cString: key)] else { return nil }
    return node.children[index].opaque
}
let jsonKey: @convention(c) (OpaquePointer?, Int64) -> UnsafePointer<CChar>? = { value, index in
    guard let node = JSONNode.from(value), node.type == PH_JSON_OBJECT, index >= 0, index < node.keys.count else { return nil }
    return UnsafePointer(node.keys[Int(index)])
}
