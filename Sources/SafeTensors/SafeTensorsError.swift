/// Every way reading or writing a safetensors file can fail. One case per failure so tests and
/// callers can tell them apart; `file` is the path when reading from disk, nil for in-memory
/// buffers. `description` names the file and tensor, says what is wrong and what to do.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    // Opening.
    case cannotOpen(file: String, reason: String)

    // Framing: the 8-byte length prefix and the header bytes.
    case fileTooSmall(file: String?, byteCount: Int)
    case headerTooLarge(file: String?, headerLength: UInt64, limit: Int)
    case headerBeyondFile(file: String?, headerLength: UInt64, fileSize: Int)
    case headerNotUTF8(file: String?, byteOffset: Int)
    case headerNotJSON(file: String?, byteOffset: Int, reason: String)
    case headerNotObject(file: String?, found: String)

    // Header entries.
    case duplicateTensorName(file: String?, tensor: String)
    case malformedTensorEntry(file: String?, tensor: String, reason: String)
    case unsupportedDType(file: String?, tensor: String, dtype: String)
    case invalidMetadata(file: String?, reason: String)
    case arithmeticOverflow(file: String?, tensor: String, reason: String)

    // Data layout.
    case offsetsReversed(file: String?, tensor: String, start: Int, end: Int)
    case offsetGap(file: String?, tensor: String, expectedStart: Int, actualStart: Int)
    case offsetOverlap(file: String?, tensor: String, expectedStart: Int, actualStart: Int)
    case byteSizeMismatch(file: String?, tensor: String, dtype: DType, shape: [Int], expectedBytes: Int, actualBytes: Int)
    case dataSectionTooShort(file: String?, tensor: String, end: Int, dataBytes: Int)
    case trailingBytes(file: String?, coveredBytes: Int, dataBytes: Int)

    // Access.
    case unknownTensor(file: String?, tensor: String)
    case dtypeMismatch(file: String?, tensor: String, dtype: DType, requested: String)
    case elementCountMismatch(file: String?, tensor: String, tensorCount: Int, destinationCount: Int)

    // Writing.
    case writerDuplicateName(tensor: String)
    case writerReservedName(tensor: String)
    case writerInvalidShape(tensor: String, shape: [Int])
    case writerShapeMismatch(tensor: String, shape: [Int], valueCount: Int)
    case writeFailed(file: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(file, reason):
            return "\(file): cannot open safetensors file (\(reason)); check the path and permissions."
        case let .fileTooSmall(file, byteCount):
            return "\(Self.location(file)): only \(byteCount) bytes, shorter than the 8-byte header length prefix; the file is truncated or not a safetensors file."
        case let .headerTooLarge(file, headerLength, limit):
            return "\(Self.location(file)): header length prefix says \(headerLength) bytes, over the \(limit)-byte limit; the file is corrupt or not a safetensors file."
        case let .headerBeyondFile(file, headerLength, fileSize):
            return "\(Self.location(file)): header length prefix says \(headerLength) bytes but the whole file has only \(fileSize) bytes; the file is truncated or corrupt."
        case let .headerNotUTF8(file, byteOffset):
            return "\(Self.location(file)): header is not valid UTF-8 (first bad byte at header offset \(byteOffset)); the file is corrupt."
        case let .headerNotJSON(file, byteOffset, reason):
            return "\(Self.location(file)): header is not valid JSON at header offset \(byteOffset): \(reason); the file is corrupt."
        case let .headerNotObject(file, found):
            return "\(Self.location(file)): header must be a JSON object mapping tensor names to entries, found \(found); the file is corrupt."
        case let .duplicateTensorName(file, tensor):
            return "\(Self.location(file)): tensor '\(tensor)' appears more than once in the header; rewrite the file with unique names."
        case let .malformedTensorEntry(file, tensor, reason):
            return "\(Self.location(file)): tensor '\(tensor)': malformed header entry: \(reason). An entry must be {\"dtype\": string, \"shape\": [non-negative integers], \"data_offsets\": [start, end]} and nothing else."
        case let .unsupportedDType(file, tensor, dtype):
            let kind = DType.knownButUnsupported.contains(dtype)
                ? "a valid safetensors dtype that Polyhead does not load" : "not a safetensors dtype"
            return "\(Self.location(file)): tensor '\(tensor)' has dtype '\(dtype)', \(kind); convert it to one of \(DType.allCases.map(\.rawValue).joined(separator: ", "))."
        case let .invalidMetadata(file, reason):
            return "\(Self.location(file)): '__metadata__' must be an object of string keys to string values: \(reason)."
        case let .arithmeticOverflow(file, tensor, reason):
            return "\(Self.location(file)): tensor '\(tensor)': \(reason) overflows a 64-bit integer; the header is corrupt."
        case let .offsetsReversed(file, tensor, start, end):
            return "\(Self.location(file)): tensor '\(tensor)' has data_offsets [\(start), \(end)] with end before start; the header is corrupt."
        case let .offsetGap(file, tensor, expectedStart, actualStart):
            return "\(Self.location(file)): tensor '\(tensor)' starts at data offset \(actualStart) but the previous tensor ends at \(expectedStart), leaving unused bytes; tensors must be contiguous from offset 0."
        case let .offsetOverlap(file, tensor, expectedStart, actualStart):
            return "\(Self.location(file)): tensor '\(tensor)' starts at data offset \(actualStart), inside the previous tensor which ends at \(expectedStart); tensors must not overlap."
        case let .byteSizeMismatch(file, tensor, dtype, shape, expectedBytes, actualBytes):
            return "\(Self.location(file)): tensor '\(tensor)' is \(dtype.rawValue) \(shape), which needs \(expectedBytes) bytes, but its data_offsets span \(actualBytes) bytes."
        case let .dataSectionTooShort(file, tensor, end, dataBytes):
            return "\(Self.location(file)): tensor '\(tensor)' ends at data offset \(end) but the data section has only \(dataBytes) bytes; the file is truncated."
        case let .trailingBytes(file, coveredBytes, dataBytes):
            return "\(Self.location(file)): tensors cover \(coveredBytes) bytes of a \(dataBytes)-byte data section; the trailing bytes belong to no tensor, so the file is corrupt."
        case let .unknownTensor(file, tensor):
            return "\(Self.location(file)): no tensor named '\(tensor)'; check the name against the file's tensor list."
        case let .dtypeMismatch(file, tensor, dtype, requested):
            return "\(Self.location(file)): tensor '\(tensor)' is \(dtype.rawValue) and cannot be read as \(requested)."
        case let .elementCountMismatch(file, tensor, tensorCount, destinationCount):
            return "\(Self.location(file)): tensor '\(tensor)' has \(tensorCount) elements but the destination holds \(destinationCount); size the destination from the tensor's shape."
        case let .writerDuplicateName(tensor):
            return "safetensors writer: tensor '\(tensor)' was added twice; tensor names must be unique."
        case let .writerReservedName(tensor):
            return "safetensors writer: '\(tensor)' is reserved for the metadata map; set the writer's metadata property instead."
        case let .writerInvalidShape(tensor, shape):
            return "safetensors writer: tensor '\(tensor)' has shape \(shape); dimensions must be non-negative and their product must fit in 64 bits."
        case let .writerShapeMismatch(tensor, shape, valueCount):
            return "safetensors writer: tensor '\(tensor)' has shape \(shape) but \(valueCount) values were given; pass exactly as many values as the shape holds."
        case let .writeFailed(file, reason):
            return "\(file): cannot write safetensors file (\(reason)); check that the directory exists, is writable and has space."
        }
    }

    private static func location(_ file: String?) -> String {
        file ?? "<in-memory safetensors>"
    }
}
