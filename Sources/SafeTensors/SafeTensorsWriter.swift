import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds a safetensors file. Output is deterministic: the same tensors and metadata give the
/// same bytes whatever order they were added in.
///
/// Layout follows the reference writer: `__metadata__` first (keys sorted), then tensors
/// ordered by element size (largest first, so every tensor stays aligned to its element size)
/// and then by name bytes; compact JSON; header padded with spaces to a multiple of 8 bytes.
///
/// ```swift
/// var writer = SafeTensorsWriter()
/// writer.metadata["format"] = "pt"
/// try writer.add("classifier.weight", shape: [4, 384], floats: weights)
/// try writer.write(to: headDirectory.appendingPathComponent("head.safetensors"))
/// ```
// The writer's own `write(to:)` hides the C function inside the type.
#if canImport(Glibc)
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
#endif

public struct SafeTensorsWriter: Sendable {
    private struct PendingTensor {
        let name: String
        let dtype: DType
        let shape: [Int]
        let bytes: [UInt8]
    }

    private var tensors: [PendingTensor] = []
    private var names: Set<String> = []
    /// Written as `__metadata__`; omitted from the header when empty.
    public var metadata: [String: String] = [:]

    public init() {}

    /// Adds an F32 tensor. - Throws: `SafeTensorsError` for a duplicate or reserved name, a
    /// negative or overflowing shape, or a value count that does not match the shape.
    public mutating func add(_ name: String, shape: [Int], floats: [Float]) throws {
        try checkNewTensor(name, shape: shape, valueCount: floats.count)
        append(name, .f32, shape, floats.withUnsafeBytes { [UInt8]($0) })
    }

    /// Adds an I64 tensor. - Throws: as `add(_:shape:floats:)`.
    public mutating func add(_ name: String, shape: [Int], int64s: [Int64]) throws {
        try checkNewTensor(name, shape: shape, valueCount: int64s.count)
        append(name, .i64, shape, int64s.withUnsafeBytes { [UInt8]($0) })
    }

    /// Adds an F32 tensor copied from a buffer (e.g. a slice of a parameter block).
    /// - Throws: as `add(_:shape:floats:)`.
    public mutating func add(_ name: String, shape: [Int], float32Buffer: UnsafeBufferPointer<Float>) throws {
        try checkNewTensor(name, shape: shape, valueCount: float32Buffer.count)
        append(name, .f32, shape, [UInt8](UnsafeRawBufferPointer(float32Buffer)))
    }

    private mutating func append(_ name: String, _ dtype: DType, _ shape: [Int], _ bytes: [UInt8]) {
        tensors.append(PendingTensor(name: name, dtype: dtype, shape: shape, bytes: bytes))
        names.insert(name)
    }

    private func checkNewTensor(_ name: String, shape: [Int], valueCount: Int) throws {
        guard name != HeaderValidation.metadataKey else {
            throw SafeTensorsError.writerReservedName(tensor: name)
        }
        guard !names.contains(name) else {
            throw SafeTensorsError.writerDuplicateName(tensor: name)
        }
        var elementCount = 1
        for dimension in shape {
            let (product, overflow) = elementCount.multipliedReportingOverflow(by: dimension)
            guard dimension >= 0, !overflow else {
                throw SafeTensorsError.writerInvalidShape(tensor: name, shape: shape)
            }
            elementCount = product
        }
        guard elementCount == valueCount else {
            throw SafeTensorsError.writerShapeMismatch(tensor: name, shape: shape, valueCount: valueCount)
        }
    }

    private var orderedTensors: [PendingTensor] {
        tensors.sorted { left, right in
            if left.dtype.byteSize != right.dtype.byteSize {
                return left.dtype.byteSize > right.dtype.byteSize
            }
            return Array(left.name.utf8).lexicographicallyPrecedes(Array(right.name.utf8))
        }
    }

    /// The length prefix and padded header for `ordered`.
    private func prefixAndHeader(_ ordered: [PendingTensor]) -> [UInt8] {
        var json = "{"
        var needsComma = false
        if !metadata.isEmpty {
            json += Self.quoted(HeaderValidation.metadataKey) + ":{"
            let keys = metadata.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            json += keys.map { Self.quoted($0) + ":" + Self.quoted(metadata[$0] ?? "") }.joined(separator: ",")
            json += "}"
            needsComma = true
        }
        var offset = 0
        for tensor in ordered {
            if needsComma { json += "," }
            needsComma = true
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            json += Self.quoted(tensor.name)
                + ":{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + tensor.bytes.count)]}"
            offset += tensor.bytes.count
        }
        json += "}"
        var header = Array(json.utf8)
        let padding = (8 - header.count % 8) % 8
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))
        var result = withUnsafeBytes(of: UInt64(header.count).littleEndian) { [UInt8]($0) }
        result.append(contentsOf: header)
        return result
    }

    /// A JSON string literal escaped as serde_json does: quote, backslash and the C escapes,
    /// other control characters as \u00XX, everything else as raw UTF-8.
    private static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\u{08}": result += "\\b"
            case "\u{0C}": result += "\\f"
            case "\u{00}"..."\u{1F}":
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    /// The complete file as bytes.
    public func data() throws -> [UInt8] {
        let ordered = orderedTensors
        var result = prefixAndHeader(ordered)
        result.reserveCapacity(result.count + ordered.reduce(0) { $0 + $1.bytes.count })
        for tensor in ordered {
            result.append(contentsOf: tensor.bytes)
        }
        return result
    }

    /// Writes the file atomically: a temporary file in the same directory, fsync, then rename,
    /// so a crash leaves either the old file or the complete new one. Tensor bytes are written
    /// one by one rather than joined into one buffer first.
    /// - Throws: `SafeTensorsError.writeFailed` naming the path.
    public func write(to url: URL) throws {
        let path = url.path
        let directory = url.deletingLastPathComponent().path
        let temporaryPath = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        func failure(_ what: String) -> SafeTensorsError {
            .writeFailed(file: path, reason: "\(what): \(String(cString: strerror(errno)))")
        }
        let descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw failure("creating temporary file \(temporaryPath)") }
        var isOpen = true
        var renamed = false
        defer {
            if isOpen { close(descriptor) }
            if !renamed { unlink(temporaryPath) }
        }
        let ordered = orderedTensors
        try Self.writeAll(prefixAndHeader(ordered), to: descriptor, failure: failure)
        for tensor in ordered {
            try Self.writeAll(tensor.bytes, to: descriptor, failure: failure)
        }
        guard fsync(descriptor) == 0 else { throw failure("fsync") }
        isOpen = false
        guard close(descriptor) == 0 else { throw failure("close") }
        guard rename(temporaryPath, path) == 0 else { throw failure("rename") }
        renamed = true
        // Persist the rename itself; best effort, since some file systems refuse to fsync directories.
        let directoryDescriptor = open(directory, O_RDONLY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32, failure: (String) -> SafeTensorsError) throws {
        try bytes.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            var written = 0
            while written < buffer.count {
                let result = systemWrite(descriptor, base + written, buffer.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    throw failure("write")
                }
                written += result
            }
        }
    }
}
