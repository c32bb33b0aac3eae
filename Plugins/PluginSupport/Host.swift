// What a Swift plugin sees of the host: the services table, errors that become status
// codes at the boundary, and typed wrappers over tensor views and host-parsed JSON.
// Nothing here is a Swift type that crosses the boundary; everything is built on the C
// structs of polyhead.h.
import CPolyhead

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The host's services, set by the entry function (and again at each create).
nonisolated(unsafe) public var hostServices: UnsafePointer<ph_host_services>? = nil

/// A failure inside a plugin: becomes a status code and one message in the error sink.
public struct PluginFailure: Error {
    public let status: ph_status
    public let message: String
    public init(_ message: String, status: ph_status = PH_STATUS_INVALID_ARGUMENT) {
        self.status = status
        self.message = message
    }
}

/// Runs `body`, turning a thrown PluginFailure (or any error) into a status and a report.
/// Every @convention(c) function of a plugin goes through this, so no Swift error ever
/// unwinds into the host.
@inline(__always)
public func guarded(_ errors: UnsafeMutablePointer<ph_error_sink>?, _ body: () throws -> Void) -> ph_status {
    do {
        try body()
        return PH_STATUS_OK
    } catch let failure as PluginFailure {
        report(errors, failure.status, failure.message)
        return failure.status
    } catch {
        report(errors, PH_STATUS_ERROR, "\(error)")
        return PH_STATUS_ERROR
    }
}

public func report(_ errors: UnsafeMutablePointer<ph_error_sink>?, _ status: ph_status, _ message: String) {
    guard let errors, let function = errors.pointee.report else { return }
    message.withCString { function(errors, status, $0) }
}

/// Writes a log line through the host.
public func hostLog(_ level: Int32, _ source: String, _ message: String) {
    guard let log = hostServices?.pointee.log else { return }
    source.withCString { sourcePointer in message.withCString { log(level, sourcePointer, $0) } }
}

/// A host-owned tensor view, checked before use.
public struct Tensor {
    public let raw: UnsafePointer<ph_tensor>

    public init(_ raw: UnsafePointer<ph_tensor>?, _ what: String) throws {
        guard let raw else { throw PluginFailure("\(what) is missing (NULL tensor)") }
        guard raw.pointee.size >= UInt32(MemoryLayout<ph_tensor>.size) else {
            throw PluginFailure("\(what) has ph_tensor.size \(raw.pointee.size), expected \(MemoryLayout<ph_tensor>.size)")
        }
        self.raw = raw
    }

    public var dtype: Int32 { raw.pointee.dtype }
    public var rank: Int { Int(raw.pointee.ndim) }
    public func dimension(_ index: Int) -> Int {
        withUnsafeBytes(of: raw.pointee.shape) { Int($0.load(fromByteOffset: index * 8, as: Int64.self)) }
    }
    public var shape: [Int] { (0..<rank).map(dimension) }
    public var count: Int { shape.reduce(1, *) }

    /// Checks dtype, rank, contiguity and the dimensions given (nil = any).
    @discardableResult
    public func require(_ dtype: Int32, _ dimensions: [Int?], _ what: String) throws -> Tensor {
        let names = [PH_DTYPE_F32: "F32", PH_DTYPE_I32: "I32", PH_DTYPE_I64: "I64", PH_DTYPE_U8: "U8"]
        let expected = "\(names[dtype] ?? "?") [\(dimensions.map { $0.map(String.init) ?? "_" }.joined(separator: ", "))]"
        var ok = withUnsafePointer(to: raw.pointee) { ph_tensor_is($0, dtype, Int32(dimensions.count)) } == 1
        if ok {
            for (index, wanted) in dimensions.enumerated() where wanted != nil && dimension(index) != wanted! { ok = false }
        }
        guard ok else {
            throw PluginFailure("\(what) must be a contiguous \(expected) tensor, got \(names[self.dtype] ?? "dtype \(self.dtype)") \(shape)")
        }
        return self
    }

    public var floats: UnsafeMutablePointer<Float> { raw.pointee.data!.assumingMemoryBound(to: Float.self) }
    public var int64s: UnsafeMutablePointer<Int64> { raw.pointee.data!.assumingMemoryBound(to: Int64.self) }
    public var int32s: UnsafeMutablePointer<Int32> { raw.pointee.data!.assumingMemoryBound(to: Int32.self) }
    public var hasData: Bool { raw.pointee.data != nil }
}

/// A host-parsed JSON value (config or label), read through the services table.
public struct JSON {
    public let pointer: OpaquePointer?
    public init(_ pointer: OpaquePointer?) { self.pointer = pointer }

    private var services: ph_host_services { hostServices!.pointee }

    public var type: Int32 { services.json_type(pointer) }
    public var exists: Bool { type != PH_JSON_ABSENT }
    public var isNull: Bool { type == PH_JSON_NULL || type == PH_JSON_ABSENT }
    public subscript(key: String) -> JSON { JSON(key.withCString { services.json_member(pointer, $0) }) }
    public subscript(index: Int) -> JSON { JSON(services.json_element(pointer, Int64(index))) }
    public var count: Int { Int(services.json_count(pointer)) }
    public var keys: [String] {
        type == PH_JSON_OBJECT ? (0..<count).compactMap { services.json_key(pointer, Int64($0)).map { String(cString: $0) } } : []
    }
    public var string: String? {
        var value: UnsafePointer<CChar>? = nil
        guard services.json_string(pointer, &value) == PH_STATUS_OK, let value else { return nil }
        return String(cString: value)
    }
    public var number: Double? {
        var value = 0.0
        return services.json_number(pointer, &value) == PH_STATUS_OK ? value : nil
    }
    public var bool: Bool? {
        var value: Int32 = 0
        return services.json_bool(pointer, &value) == PH_STATUS_OK ? value != 0 : nil
    }

    public var typeName: String {
        switch type {
        case PH_JSON_NULL: return "null"
        case PH_JSON_BOOL: return "a boolean"
        case PH_JSON_NUMBER: return "a number"
        case PH_JSON_STRING: return "a string"
        case PH_JSON_ARRAY: return "an array"
        case PH_JSON_OBJECT: return "an object"
        default: return "absent"
        }
    }
}

/// Reads a component's config with one clear message per mistake.
public struct ConfigReader {
    public let json: JSON
    public init(_ json: JSON) { self.json = json }

    /// Refuses keys the component does not know (a typo would otherwise be ignored).
    public func requireOnly(_ known: [String]) throws {
        guard json.type == PH_JSON_OBJECT else { throw PluginFailure("config must be a JSON object") }
        for key in json.keys where !known.contains(key) {
            throw PluginFailure("unknown config key \"\(key)\" (known: \(known.joined(separator: ", ")))")
        }
    }

    public func string(_ key: String, default value: String, allowed: [String]) throws -> String {
        let member = json[key]
        guard member.exists else { return value }
        guard let text = member.string else { throw PluginFailure("config key \"\(key)\" must be a string, got \(member.typeName)") }
        guard allowed.contains(text) else {
            throw PluginFailure("config key \"\(key)\" must be one of \(allowed.joined(separator: ", ")) (got \"\(text)\")")
        }
        return text
    }

    public func bool(_ key: String, default value: Bool) throws -> Bool {
        let member = json[key]
        guard member.exists else { return value }
        guard let flag = member.bool else { throw PluginFailure("config key \"\(key)\" must be true or false, got \(member.typeName)") }
        return flag
    }

    public func number(_ key: String, default value: Double, range: ClosedRange<Double>) throws -> Double {
        let member = json[key]
        guard member.exists else { return value }
        guard let number = member.number else { throw PluginFailure("config key \"\(key)\" must be a number, got \(member.typeName)") }
        guard range.contains(number) else {
            throw PluginFailure("config key \"\(key)\" must be within \(range.lowerBound) ... \(range.upperBound) (got \(number))")
        }
        return number
    }

    public func integer(_ key: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        let member = json[key]
        guard member.exists else { return value }
        guard let number = member.number, number == number.rounded(), abs(number) < 1e9 else {
            throw PluginFailure("config key \"\(key)\" must be an integer, got \(member.typeName)")
        }
        guard range.contains(Int(number)) else {
            throw PluginFailure("config key \"\(key)\" must be within \(range.lowerBound) ... \(range.upperBound) (got \(Int(number)))")
        }
        return Int(number)
    }

    /// An array of distinct non-empty strings, or nil when absent.
    public func names(_ key: String) throws -> [String]? {
        let member = json[key]
        guard member.exists else { return nil }
        guard member.type == PH_JSON_ARRAY else { throw PluginFailure("config key \"\(key)\" must be an array of strings, got \(member.typeName)") }
        var names: [String] = []
        for index in 0..<member.count {
            guard let name = member[index].string, !name.isEmpty else {
                throw PluginFailure("config key \"\(key)\" element \(index) must be a non-empty string")
            }
            guard !names.contains(name) else { throw PluginFailure("config key \"\(key)\" names \"\(name)\" twice") }
            names.append(name)
        }
        return names
    }

    /// An array of numbers, or nil when absent.
    public func numbers(_ key: String) throws -> [Double]? {
        let member = json[key]
        guard member.exists, member.type != PH_JSON_STRING else { return nil }
        guard member.type == PH_JSON_ARRAY else { throw PluginFailure("config key \"\(key)\" must be an array of numbers, got \(member.typeName)") }
        return try (0..<member.count).map { index in
            guard let number = member[index].number else { throw PluginFailure("config key \"\(key)\" element \(index) must be a number") }
            return number
        }
    }
}

/// Minimal JSON text building for decode().
public func jsonQuoted(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\t": result += "\\t"
        case "\r": result += "\\r"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
    }
    return result + "\""
}

/// A number as JSON (non-finite values become null, which JSON has no number for).
public func jsonNumber(_ value: Float) -> String { value.isFinite ? "\(value)" : "null" }

public func write(_ text: String, to sink: UnsafeMutablePointer<ph_text_sink>?) throws {
    guard let sink, let append = sink.pointee.append else { throw PluginFailure("decode needs a text sink") }
    var copy = text
    copy.withUTF8 { bytes in
        bytes.withMemoryRebound(to: CChar.self) { append(sink, $0.baseAddress, Int64($0.count)) }
    }
}
