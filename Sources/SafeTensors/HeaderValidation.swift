/// What a validated header says: tensors in data-offset order, the metadata map, and where the
/// data section starts in the file.
struct ValidatedHeader {
    let tensors: [TensorInfo]
    let metadata: [String: String]
    let dataStart: Int
}

/// Validates a whole safetensors buffer, in the order the reference implementation checks:
/// length prefix, header size cap, UTF-8, JSON, entries (duplicates, keys, dtype, integers),
/// then offsets (sorted, contiguous, gap-free, sized to shape x dtype) and full coverage of the
/// data section. Nothing is read from the data section itself.
enum HeaderValidation {
    /// The reference implementation's cap, so a corrupt prefix cannot demand gigabytes.
    static let maximumHeaderLength = 100_000_000
    static let metadataKey = "__metadata__"
    static let lengthPrefixSize = 8

    static func validate(_ buffer: UnsafeRawBufferPointer, file: String?) throws -> ValidatedHeader {
        guard buffer.count >= lengthPrefixSize else {
            throw SafeTensorsError.fileTooSmall(file: file, byteCount: buffer.count)
        }
        let headerLength = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard headerLength <= UInt64(maximumHeaderLength) else {
            throw SafeTensorsError.headerTooLarge(file: file, headerLength: headerLength, limit: maximumHeaderLength)
        }
        // Both terms are at most 100 MB here, so the sum cannot overflow.
        let dataStart = lengthPrefixSize + Int(headerLength)
        guard dataStart <= buffer.count else {
            throw SafeTensorsError.headerBeyondFile(file: file, headerLength: headerLength, fileSize: buffer.count)
        }
        let headerBytes = [UInt8](buffer[lengthPrefixSize..<dataStart])
        if let badOffset = firstInvalidUTF8Offset(headerBytes) {
            throw SafeTensorsError.headerNotUTF8(file: file, byteOffset: badOffset)
        }
        let root: HeaderJSONValue
        do {
            root = try HeaderJSONParser.parse(headerBytes)
        } catch let syntax as HeaderJSONSyntaxError {
            throw SafeTensorsError.headerNotJSON(file: file, byteOffset: syntax.byteOffset, reason: syntax.reason)
        }
        guard case .object(let members) = root else {
            throw SafeTensorsError.headerNotObject(file: file, found: root.kindName)
        }

        var metadata: [String: String]?
        var seenNames = Set<String>()
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(members.count)
        for member in members {
            if member.key == metadataKey {
                guard metadata == nil else {
                    throw SafeTensorsError.invalidMetadata(file: file, reason: "the key appears more than once")
                }
                metadata = try parseMetadata(member.value, file: file)
                continue
            }
            guard seenNames.insert(member.key).inserted else {
                throw SafeTensorsError.duplicateTensorName(file: file, tensor: member.key)
            }
            tensors.append(try parseEntry(name: member.key, member.value, file: file))
        }

        // Offset order, ties broken by name, as the reference does; JSON key order is free.
        tensors.sort { left, right in
            if left.byteRange.lowerBound != right.byteRange.lowerBound {
                return left.byteRange.lowerBound < right.byteRange.lowerBound
            }
            if left.byteRange.upperBound != right.byteRange.upperBound {
                return left.byteRange.upperBound < right.byteRange.upperBound
            }
            return Array(left.name.utf8).lexicographicallyPrecedes(Array(right.name.utf8))
        }
        let dataBytes = buffer.count - dataStart
        var expectedStart = 0
        for tensor in tensors {
            let start = tensor.byteRange.lowerBound
            let end = tensor.byteRange.upperBound
            if start > expectedStart {
                throw SafeTensorsError.offsetGap(file: file, tensor: tensor.name, expectedStart: expectedStart, actualStart: start)
            }
            if start < expectedStart {
                throw SafeTensorsError.offsetOverlap(file: file, tensor: tensor.name, expectedStart: expectedStart, actualStart: start)
            }
            // Same fold order as the reference, so the same shapes are refused as overflowing.
            var elementCount = 1
            for dimension in tensor.shape {
                let (product, overflow) = elementCount.multipliedReportingOverflow(by: dimension)
                guard !overflow else {
                    throw SafeTensorsError.arithmeticOverflow(file: file, tensor: tensor.name, reason: "the element count of shape \(tensor.shape)")
                }
                elementCount = product
            }
            let (byteCount, overflow) = elementCount.multipliedReportingOverflow(by: tensor.dtype.byteSize)
            guard !overflow else {
                throw SafeTensorsError.arithmeticOverflow(file: file, tensor: tensor.name, reason: "the byte size of \(tensor.dtype.rawValue) shape \(tensor.shape)")
            }
            guard end - start == byteCount else {
                throw SafeTensorsError.byteSizeMismatch(
                    file: file, tensor: tensor.name, dtype: tensor.dtype, shape: tensor.shape,
                    expectedBytes: byteCount, actualBytes: end - start)
            }
            guard end <= dataBytes else {
                throw SafeTensorsError.dataSectionTooShort(file: file, tensor: tensor.name, end: end, dataBytes: dataBytes)
            }
            expectedStart = end
        }
        guard expectedStart == dataBytes else {
            throw SafeTensorsError.trailingBytes(file: file, coveredBytes: expectedStart, dataBytes: dataBytes)
        }
        return ValidatedHeader(tensors: tensors, metadata: metadata ?? [:], dataStart: dataStart)
    }

    private static func parseMetadata(_ value: HeaderJSONValue, file: String?) throws -> [String: String] {
        guard case .object(let members) = value else {
            throw SafeTensorsError.invalidMetadata(file: file, reason: "found \(value.kindName)")
        }
        var metadata: [String: String] = [:]
        for member in members {
            guard case .string(let text) = member.value else {
                throw SafeTensorsError.invalidMetadata(file: file, reason: "key '\(member.key)' has \(member.value.kindName), not a string")
            }
            guard metadata.updateValue(text, forKey: member.key) == nil else {
                throw SafeTensorsError.invalidMetadata(file: file, reason: "key '\(member.key)' appears more than once")
            }
        }
        return metadata
    }

    private static func parseEntry(name: String, _ value: HeaderJSONValue, file: String?) throws -> TensorInfo {
        func malformed(_ reason: String) -> SafeTensorsError {
            .malformedTensorEntry(file: file, tensor: name, reason: reason)
        }
        guard case .object(let members) = value else {
            throw malformed("the entry is \(value.kindName), not an object")
        }
        var fields: [String: HeaderJSONValue] = [:]
        for member in members {
            guard ["dtype", "shape", "data_offsets"].contains(member.key) else {
                throw malformed("unexpected key '\(member.key)'")
            }
            guard fields.updateValue(member.value, forKey: member.key) == nil else {
                throw malformed("key '\(member.key)' appears more than once")
            }
        }
        guard let dtypeValue = fields["dtype"] else { throw malformed("missing key 'dtype'") }
        guard let shapeValue = fields["shape"] else { throw malformed("missing key 'shape'") }
        guard let offsetsValue = fields["data_offsets"] else { throw malformed("missing key 'data_offsets'") }

        guard case .string(let dtypeName) = dtypeValue else {
            throw malformed("'dtype' is \(dtypeValue.kindName), not a string")
        }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw SafeTensorsError.unsupportedDType(file: file, tensor: name, dtype: dtypeName)
        }
        guard case .array(let shapeElements) = shapeValue else {
            throw malformed("'shape' is \(shapeValue.kindName), not an array")
        }
        let shape = try shapeElements.enumerated().map { index, element in
            try nonNegativeInteger(element, what: "shape dimension \(index)", tensor: name, file: file)
        }
        guard case .array(let offsetElements) = offsetsValue else {
            throw malformed("'data_offsets' is \(offsetsValue.kindName), not an array")
        }
        guard offsetElements.count == 2 else {
            throw malformed("'data_offsets' has \(offsetElements.count) elements, not 2")
        }
        let start = try nonNegativeInteger(offsetElements[0], what: "data_offsets start", tensor: name, file: file)
        let end = try nonNegativeInteger(offsetElements[1], what: "data_offsets end", tensor: name, file: file)
        guard start <= end else {
            throw SafeTensorsError.offsetsReversed(file: file, tensor: name, start: start, end: end)
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, byteRange: start..<end)
    }

    /// A JSON integer literal in 0...Int.max. Fractions, exponents and signs are refused like
    /// serde_json refuses them for `usize`; a too-large integer is reported as overflow.
    private static func nonNegativeInteger(_ value: HeaderJSONValue, what: String, tensor: String, file: String?) throws -> Int {
        guard case .number(let literal) = value else {
            throw SafeTensorsError.malformedTensorEntry(file: file, tensor: tensor, reason: "\(what) is \(value.kindName), not an integer")
        }
        if literal.hasPrefix("-") {
            throw SafeTensorsError.malformedTensorEntry(file: file, tensor: tensor, reason: "\(what) is negative (\(literal))")
        }
        guard literal.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw SafeTensorsError.malformedTensorEntry(file: file, tensor: tensor, reason: "\(what) is \(literal), not an integer")
        }
        guard let integer = Int(literal) else {
            throw SafeTensorsError.arithmeticOverflow(file: file, tensor: tensor, reason: "\(what) \(literal)")
        }
        return integer
    }
}
