import CFFI
import CFFIShims
import CPolyhead
import Foundation

/// One letter of an extension function's signature (docs/abi.md, "Extension functions").
public enum ExtensionType: Character, Sendable, CaseIterable {
    case void = "v"
    case int32 = "i"
    case int64 = "l"
    case float = "f"
    case double = "d"
    case string = "s"
    case tensor = "t"
    case pointer = "p"
    case errorSink = "e"

    static let returnTypes: Set<ExtensionType> = [.void, .int32, .int64, .float, .double, .string]
    static let argumentTypes: Set<ExtensionType> = [.int32, .int64, .float, .double, .string, .tensor, .pointer, .errorSink]

    var ffiType: UnsafeMutablePointer<ffi_type> {
        switch self {
        case .void: return ph_ffi_type_void()
        case .int32: return ph_ffi_type_sint32()
        case .int64: return ph_ffi_type_sint64()
        case .float: return ph_ffi_type_float()
        case .double: return ph_ffi_type_double()
        case .string, .tensor, .pointer, .errorSink: return ph_ffi_type_pointer()
        }
    }
}

/// An argument for an extension function call. `e` arguments are never passed: the host
/// supplies the error sink.
public enum ExtensionArgument {
    case int32(Int32)
    case int64(Int64)
    case float(Float)
    case double(Double)
    case string(String)
    /// An F32 tensor with the given shape (row-major).
    case tensor(values: [Float], shape: [Int])
    /// An I64 tensor with the given shape (row-major), e.g. class-index targets.
    case indexTensor(values: [Int64], shape: [Int])
    case pointer(UnsafeMutableRawPointer?)
}

/// What an extension function returned.
public enum ExtensionResult: Equatable {
    case void
    case int32(Int32)
    case int64(Int64)
    case float(Float)
    case double(Double)
    case string(String?)

    /// The value as the CLI prints it (nothing for void).
    public var text: String {
        switch self {
        case .void: return ""
        case .int32(let value): return String(value)
        case .int64(let value): return String(value)
        case .float(let value): return "\(value)"
        case .double(let value): return "\(value)"
        case .string(let value): return value ?? "null"
        }
    }
}

/// A validated extension function with its libffi call interface, prepared once at load.
public final class ExtensionFunction: @unchecked Sendable {
    public let pluginID: String
    public let name: String
    public let signature: String
    public let summary: String
    public let returnType: ExtensionType
    public let argumentTypes: [ExtensionType]
    /// Argument types the caller supplies (every one except `e`).
    public var callerArgumentTypes: [ExtensionType] { argumentTypes.filter { $0 != .errorSink } }
    /// "polyhead.classification.macro_f1"
    public var qualifiedName: String { "\(pluginID).\(name)" }

    private let pluginFile: String
    private let function: ph_generic_function
    private let callInterface: UnsafeMutablePointer<ffi_cif>
    private let ffiArgumentTypes: UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>

    init(pluginID: String, pluginFile: String, table: UnsafePointer<ph_extension_function>,
         _ refuse: (String) -> PluginError) throws {
        self.pluginID = pluginID
        self.pluginFile = pluginFile
        try requireSize(Int(table.pointee.size), of: ph_extension_function.self,
                        "plugin \"\(pluginID)\" ph_extension_function", refuse)
        let entry = table.pointee
        guard let namePointer = entry.name else { throw refuse("plugin \"\(pluginID)\" has an extension function with a NULL name") }
        name = String(cString: namePointer)
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_")
        guard !name.isEmpty, name.count <= 64, name.allSatisfy({ allowed.contains($0) }) else {
            throw refuse("plugin \"\(pluginID)\" extension function name \"\(name)\" is not [a-z0-9_]+ (at most 64 characters)")
        }
        let label = "plugin \"\(pluginID)\" extension function \"\(name)\""
        guard let signaturePointer = entry.signature else { throw refuse("\(label) has a NULL signature") }
        signature = String(cString: signaturePointer)
        summary = entry.description.map { String(cString: $0) } ?? ""
        guard let function = entry.function else { throw refuse("\(label) has a NULL function pointer") }
        self.function = function
        do {
            (returnType, argumentTypes) = try ExtensionFunction.parse(signature: signature)
        } catch let reason as SignatureError {
            throw refuse("\(label) has bad signature \"\(signature)\": \(reason.text)")
        }

        ffiArgumentTypes = .allocate(capacity: max(argumentTypes.count, 1))
        for (index, type) in argumentTypes.enumerated() { ffiArgumentTypes[index] = type.ffiType }
        callInterface = .allocate(capacity: 1)
        let prepared = ffi_prep_cif(callInterface, ph_ffi_default_abi(), UInt32(argumentTypes.count),
                                    returnType.ffiType, ffiArgumentTypes)
        guard prepared == FFI_OK else {
            throw refuse("\(label): libffi could not prepare signature \"\(signature)\" (status \(prepared.rawValue))")
        }
    }

    struct SignatureError: Error { let text: String }

    /// Parses "r(abc)" against the alphabet.
    static func parse(signature: String) throws -> (ExtensionType, [ExtensionType]) {
        let letters = Array(signature)
        guard letters.count >= 3, letters[1] == "(", letters.last == ")" else {
            throw SignatureError(text: "expected a return letter then argument letters in parentheses, e.g. \"d(tte)\"")
        }
        guard let returned = ExtensionType(rawValue: letters[0]), ExtensionType.returnTypes.contains(returned) else {
            throw SignatureError(text: "'\(letters[0])' is not a return type (use one of v i l f d s)")
        }
        var arguments: [ExtensionType] = []
        for letter in letters[2..<(letters.count - 1)] {
            guard let type = ExtensionType(rawValue: letter), ExtensionType.argumentTypes.contains(type) else {
                throw SignatureError(text: "'\(letter)' is not an argument type (use i l f d s t p e)")
            }
            arguments.append(type)
        }
        guard arguments.count <= Int(PH_EXTENSION_MAX_ARGUMENTS) else {
            throw SignatureError(text: "\(arguments.count) arguments, more than \(PH_EXTENSION_MAX_ARGUMENTS)")
        }
        guard arguments.filter({ $0 == .errorSink }).count <= 1 else {
            throw SignatureError(text: "more than one error sink 'e'")
        }
        return (returned, arguments)
    }

    /// Calls the function through libffi.
    /// - Parameter arguments: one per argument letter except `e`, in order.
    /// - Throws: PluginError(.invalidRequest) when the arguments do not fit the signature,
    ///   PluginError(.callFailed) when the function reported an error through `e`.
    public func call(_ arguments: [ExtensionArgument]) throws -> ExtensionResult {
        let expected = callerArgumentTypes
        guard arguments.count == expected.count else {
            throw PluginError(.invalidRequest, "\(qualifiedName) (\(signature)) takes \(expected.count) argument(s), got \(arguments.count)")
        }
        // Storage that outlives ffi_call: one 8-byte slot per argument, tensors, strings.
        let slots = UnsafeMutableRawPointer.allocate(byteCount: max(argumentTypes.count, 1) * 8, alignment: 8)
        let valuePointers = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: max(argumentTypes.count, 1))
        var ownedStrings: [UnsafeMutablePointer<CChar>] = []
        var ownedTensors: [TensorStorage] = []
        defer {
            slots.deallocate()
            valuePointers.deallocate()
            ownedStrings.forEach { free($0) }
        }
        let collector = ErrorCollector()
        return try withExtendedLifetime(collector) {
            do {
                let sinkPointer = collector.sink
                var next = arguments.makeIterator()
                for (index, type) in argumentTypes.enumerated() {
                    let slot = slots + index * 8
                    valuePointers[index] = slot
                    if type == .errorSink {
                        slot.storeBytes(of: UnsafeMutableRawPointer(sinkPointer), as: UnsafeMutableRawPointer.self)
                        continue
                    }
                    let argument = next.next()!
                    let position = index + 1
                    func mismatch(_ got: String) -> PluginError {
                        PluginError(.invalidRequest, "\(qualifiedName) (\(signature)) argument \(position) must be \(describe(type)), got \(got)")
                    }
                    switch (type, argument) {
                    case (.int32, .int32(let value)): slot.storeBytes(of: value, as: Int32.self)
                    case (.int64, .int64(let value)): slot.storeBytes(of: value, as: Int64.self)
                    case (.int64, .int32(let value)): slot.storeBytes(of: Int64(value), as: Int64.self)
                    case (.float, .float(let value)): slot.storeBytes(of: value, as: Float.self)
                    case (.double, .double(let value)): slot.storeBytes(of: value, as: Double.self)
                    case (.double, .float(let value)): slot.storeBytes(of: Double(value), as: Double.self)
                    case (.string, .string(let value)):
                        let copy = strdup(value)!
                        ownedStrings.append(copy)
                        slot.storeBytes(of: UnsafeRawPointer(copy), as: UnsafeRawPointer.self)
                    case (.tensor, .tensor(let values, let shape)):
                        let storage = try TensorStorage(floats: values, shape: shape, what: "\(qualifiedName) argument \(position)")
                        ownedTensors.append(storage)
                        slot.storeBytes(of: UnsafeRawPointer(storage.view), as: UnsafeRawPointer.self)
                    case (.tensor, .indexTensor(let values, let shape)):
                        let storage = try TensorStorage(indices: values, shape: shape, what: "\(qualifiedName) argument \(position)")
                        ownedTensors.append(storage)
                        slot.storeBytes(of: UnsafeRawPointer(storage.view), as: UnsafeRawPointer.self)
                    case (.pointer, .pointer(let value)): slot.storeBytes(of: value, as: UnsafeMutableRawPointer?.self)
                    default: throw mismatch(String(describing: argument).components(separatedBy: "(").first ?? "another type")
                    }
                }
                let returned = UnsafeMutableRawPointer.allocate(byteCount: ph_ffi_return_capacity(), alignment: 16)
                defer { returned.deallocate() }
                withExtendedLifetime(ownedTensors) {
                    ffi_call(callInterface, function, returned, valuePointers)
                }
                if collector.message != nil || collector.status != PH_STATUS_OK {
                    throw PluginError(.callFailed, "\(pluginFile): \(qualifiedName) failed: \(oneLine(collector.message ?? "status \(collector.status)"))")
                }
                switch returnType {
                case .void: return .void
                // libffi widens integral returns narrower than ffi_arg to a full ffi_arg.
                case .int32: return .int32(Int32(truncatingIfNeeded: returned.load(as: Int64.self)))
                case .int64: return .int64(returned.load(as: Int64.self))
                case .float: return .float(returned.load(as: Float.self))
                case .double: return .double(returned.load(as: Double.self))
                case .string: return .string(returned.load(as: UnsafePointer<CChar>?.self).map { String(cString: $0) })
                default: return .void
                }
            }
        }
    }

    func describe(_ type: ExtensionType) -> String {
        switch type {
        case .void: return "void"
        case .int32: return "a 32-bit integer (i)"
        case .int64: return "a 64-bit integer (l)"
        case .float: return "a float (f)"
        case .double: return "a double (d)"
        case .string: return "a string (s)"
        case .tensor: return "a tensor (t)"
        case .pointer: return "a pointer (p)"
        case .errorSink: return "an error sink (e)"
        }
    }

    /// Whether the function can serve as a metric: `d(tt)` or `d(tte)`.
    public var isMetric: Bool { returnType == .double && callerArgumentTypes == [.tensor, .tensor] }

    /// Calls a metric named in a run config over a head's outputs and encoded targets.
    /// - Parameters:
    ///   - outputs: [rows, width] row-major, as the head's forward wrote them.
    ///   - targets: the same rows' targets, as the head's encode_target wrote them.
    /// - Throws: PluginError(.invalidRequest) when the signature is not a metric's or the
    ///   shapes disagree; PluginError(.callFailed) when the function reports an error.
    public func metric(outputs: [Float], width: Int, targets: HeadTargets) throws -> Double {
        guard isMetric else {
            throw PluginError(.invalidRequest, "\(qualifiedName) has signature \(signature), but a metric must be d(tt) or d(tte): (outputs, targets) -> double")
        }
        let rows = width > 0 ? outputs.count / width : 0
        guard width > 0, rows * width == outputs.count, targets.rows == rows else {
            throw PluginError(.invalidRequest, "\(qualifiedName): \(outputs.count) outputs of width \(width) do not match \(targets.rows) target rows")
        }
        let targetArgument: ExtensionArgument
        switch targets.storage {
        case .indices(let values): targetArgument = .indexTensor(values: values, shape: [rows, targets.width])
        case .values(let values): targetArgument = .tensor(values: values, shape: [rows, targets.width])
        }
        guard case .double(let value) = try call([.tensor(values: outputs, shape: [rows, width]), targetArgument]) else {
            throw PluginError(.callFailed, "\(qualifiedName) did not return a double")
        }
        return value
    }

    /// Converts command-line words into arguments by the signature's letters: integers,
    /// numbers, strings, and tensors written as JSON arrays of numbers ("[[1,2],[3,4]]").
    /// - Throws: PluginError(.invalidRequest) for a wrong count, an unparsable word, or a
    ///   pointer argument (only a run config can supply one).
    public func arguments(fromCommandLine words: [String]) throws -> [ExtensionArgument] {
        let expected = callerArgumentTypes
        if let position = expected.firstIndex(of: .pointer) {
            throw PluginError(.invalidRequest, "\(qualifiedName) (\(signature)) takes a pointer as argument \(position + 1), which only a run config can supply; it cannot be called from the command line")
        }
        guard words.count == expected.count else {
            let letters = expected.map { String($0.rawValue) }.joined(separator: " ")
            throw PluginError(.invalidRequest, "\(qualifiedName) (\(signature)) takes \(expected.count) argument(s) [\(letters)], got \(words.count)")
        }
        return try zip(expected, words).enumerated().map { index, pair in
            let (type, word) = pair
            func bad() -> PluginError {
                PluginError(.invalidRequest, "\(qualifiedName) argument \(index + 1) \"\(word)\" is not \(describe(type))")
            }
            switch type {
            case .int32: guard let value = Int32(word) else { throw bad() }; return .int32(value)
            case .int64: guard let value = Int64(word) else { throw bad() }; return .int64(value)
            case .float: guard let value = Float(word) else { throw bad() }; return .float(value)
            case .double: guard let value = Double(word) else { throw bad() }; return .double(value)
            case .string: return .string(word)
            case .tensor:
                guard let parsed = try? JSONValue(parsing: word), let (values, shape) = numericArray(parsed) else {
                    throw PluginError(.invalidRequest, "\(qualifiedName) argument \(index + 1) must be a JSON array of numbers such as [1,2] or [[1,2],[3,4]], got \(word)")
                }
                return .tensor(values: values, shape: shape)
            default: throw bad()
            }
        }
    }
}

/// A rectangular JSON array of numbers, flattened row-major, with its shape.
func numericArray(_ value: JSONValue) -> ([Float], [Int])? {
    switch value {
    case .number(let number): return ([Float(number)], [])
    case .array(let elements):
        let parts = elements.compactMap(numericArray)
        guard parts.count == elements.count, let first = parts.first else { return elements.isEmpty ? ([], [0]) : nil }
        guard parts.allSatisfy({ $0.1 == first.1 }), first.1.count < Int(PH_MAX_DIMS) else { return nil }
        return (parts.flatMap(\.0), [elements.count] + first.1)
    default: return nil
    }
}
