import Foundation

/// Any JSON value, for manifest fields whose shape belongs to someone else (a plugin's
/// options). Integers are kept apart from other numbers so 64-bit values survive exactly.
public enum ManifestJSON: Codable, Equatable, Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    /// Integers above Int64.max (e.g. 64-bit seeds).
    case unsignedInteger(UInt64)
    case number(Double)
    case string(String)
    case array([ManifestJSON])
    case object([String: ManifestJSON])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(UInt64.self) {
            self = .unsignedInteger(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([ManifestJSON].self) {
            self = .array(value)
        } else if let value = try? container.decode([String: ManifestJSON].self) {
            self = .object(value)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case let .bool(value): try container.encode(value)
        case let .integer(value): try container.encode(value)
        case let .unsignedInteger(value): try container.encode(value)
        case let .number(value): try container.encode(value)
        case let .string(value): try container.encode(value)
        case let .array(value): try container.encode(value)
        case let .object(value): try container.encode(value)
        }
    }

    /// Parses JSON text (e.g. the options a plugin was created with).
    /// - Throws: `DecodingError` when `data` is not JSON.
    public init(jsonData data: Data) throws {
        self = try JSONDecoder().decode(ManifestJSON.self, from: data)
    }

    /// Compact JSON text with sorted keys, e.g. to hand options back to a plugin.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}
