import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One tensor's header entry after validation.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Byte range relative to the start of the data section (just after the header).
    public let byteRange: Range<Int>

    /// Product of the dimensions (1 for a scalar). Validation guarantees it does not overflow.
    public var elementCount: Int {
        shape.reduce(1, *)
    }
}

/// A safetensors file, validated in full when opened and read lazily afterwards.
///
/// The file is memory-mapped read-only, so opening a 90 MB checkpoint costs a header parse;
/// tensor bytes are touched only when a tensor is read.
///
/// ```swift
/// let file = try SafeTensorsFile(contentsOf: modelDirectory.appendingPathComponent("model.safetensors"))
/// let embeddings = try file.floats("embeddings.word_embeddings.weight")  // [30522 * 384]
/// ```
public final class SafeTensorsFile: @unchecked Sendable {
    // Sendable because nothing is mutated after init and the mapping is read-only.

    /// The `__metadata__` map, empty when the header has none.
    public let metadata: [String: String]
    /// The path the file was opened from; nil for in-memory buffers.
    public let path: String?

    private let tensors: [TensorInfo]
    private let indexByName: [String: Int]
    private let bytes: UnsafeRawBufferPointer
    private let dataStart: Int
    private let isMapped: Bool

    /// Maps the file read-only and validates its header and layout.
    /// - Throws: `SafeTensorsError` naming the path and the fault.
    public convenience init(contentsOf url: URL) throws {
        let path = url.path
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw SafeTensorsError.cannotOpen(file: path, reason: String(cString: strerror(errno)))
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw SafeTensorsError.cannotOpen(file: path, reason: String(cString: strerror(errno)))
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError.cannotOpen(file: path, reason: "not a regular file")
        }
        let size = Int(status.st_size)
        // mmap refuses zero-length mappings; such a file is too small anyway.
        guard size >= HeaderValidation.lengthPrefixSize else {
            throw SafeTensorsError.fileTooSmall(file: path, byteCount: size)
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0),
              address != MAP_FAILED else {
            throw SafeTensorsError.cannotOpen(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        let mapping = UnsafeRawBufferPointer(start: address, count: size)
        do {
            try self.init(owning: mapping, isMapped: true, path: path)
        } catch {
            munmap(address, size)
            throw error
        }
    }

    /// Validates an in-memory buffer exactly as a file would be (for tests and fuzzing).
    /// - Throws: `SafeTensorsError` naming the fault.
    public convenience init(bytes: [UInt8]) throws {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        copy.copyBytes(from: bytes)
        let buffer = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(copy)[0..<bytes.count])
        do {
            try self.init(owning: buffer, isMapped: false, path: nil)
        } catch {
            copy.deallocate()
            throw error
        }
    }

    /// Takes ownership of `buffer` only when validation succeeds; the caller releases it otherwise.
    private init(owning buffer: UnsafeRawBufferPointer, isMapped: Bool, path: String?) throws {
        let header = try HeaderValidation.validate(buffer, file: path)
        self.tensors = header.tensors
        self.metadata = header.metadata
        self.dataStart = header.dataStart
        self.path = path
        self.bytes = buffer
        self.isMapped = isMapped
        var indexByName: [String: Int] = [:]
        for (index, tensor) in header.tensors.enumerated() {
            indexByName[tensor.name] = index
        }
        self.indexByName = indexByName
    }

    deinit {
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count)
        } else {
            bytes.deallocate()
        }
    }

    /// Tensor names in data-offset order (the order their bytes appear in the file).
    public var tensorNames: [String] {
        tensors.map(\.name)
    }

    /// - Throws: `SafeTensorsError.unknownTensor` naming `name`.
    public func info(_ name: String) throws -> TensorInfo {
        guard let index = indexByName[name] else {
            throw SafeTensorsError.unknownTensor(file: path, tensor: name)
        }
        return tensors[index]
    }

    /// The tensor's values as Float; F16 and BF16 are widened exactly.
    /// - Throws: `SafeTensorsError.unknownTensor`, or `.dtypeMismatch` for integer tensors.
    public func floats(_ name: String) throws -> [Float] {
        let tensor = try floatTensor(name)
        return [Float](unsafeUninitializedCapacity: tensor.elementCount) { buffer, initializedCount in
            convert(tensor, into: buffer)
            initializedCount = tensor.elementCount
        }
    }

    /// Writes the tensor's values as Float straight into `destination` (no intermediate array),
    /// e.g. into a slice of one parameter allocation.
    /// - Throws: `.elementCountMismatch` naming the tensor and both counts, or the errors of `floats`.
    public func copyFloats(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        let tensor = try floatTensor(name)
        guard destination.count == tensor.elementCount else {
            throw SafeTensorsError.elementCountMismatch(
                file: path, tensor: name, tensorCount: tensor.elementCount, destinationCount: destination.count)
        }
        convert(tensor, into: destination)
    }

    /// - Throws: `SafeTensorsError.unknownTensor`, or `.dtypeMismatch` unless the tensor is I64.
    public func int64s(_ name: String) throws -> [Int64] {
        let tensor = try info(name)
        guard tensor.dtype == .i64 else {
            throw SafeTensorsError.dtypeMismatch(file: path, tensor: name, dtype: tensor.dtype, requested: "Int64")
        }
        let source = tensorBytes(tensor)
        return [Int64](unsafeUninitializedCapacity: tensor.elementCount) { buffer, initializedCount in
            // copyMemory tolerates the unaligned offsets a valid file may have.
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
            initializedCount = tensor.elementCount
        }
    }

    private func floatTensor(_ name: String) throws -> TensorInfo {
        let tensor = try info(name)
        guard tensor.dtype != .i64 else {
            throw SafeTensorsError.dtypeMismatch(file: path, tensor: name, dtype: tensor.dtype, requested: "Float")
        }
        return tensor
    }

    private func tensorBytes(_ tensor: TensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[(dataStart + tensor.byteRange.lowerBound)..<(dataStart + tensor.byteRange.upperBound)])
    }

    /// `destination.count` equals the tensor's element count (checked by the callers).
    private func convert(_ tensor: TensorInfo, into destination: UnsafeMutableBufferPointer<Float>) {
        let source = tensorBytes(tensor)
        switch tensor.dtype {
        case .f32:
            UnsafeMutableRawBufferPointer(destination).copyMemory(from: source)
        case .f16:
            for index in 0..<destination.count {
                destination[index] = HalfPrecision.float(fromHalfBits: source.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self))
            }
        case .bf16:
            for index in 0..<destination.count {
                destination[index] = HalfPrecision.float(fromBFloat16Bits: source.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self))
            }
        case .i64:
            preconditionFailure("floatTensor refuses I64 tensors")
        }
    }
}
