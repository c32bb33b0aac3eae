// Builds the static C tables a plugin publishes (plugin, components, head methods,
// extension functions) from Swift definitions, and the trampolines that turn each C call
// into a call on a Swift TaskHead, with every error caught at the boundary.
import CPolyhead

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The ABI minor this plugin support code is written against.
public let supportedABIMinor: UInt16 = 0

/// A C string that lives as long as the process (plugins are never unloaded).
public func permanentCString(_ text: String) -> UnsafePointer<CChar> {
    UnsafePointer(strdup(text)!)
}

/// A packed head input, checked against the instance's input width.
public struct HeadInput {
    public let training: Bool
    public let features: UnsafeMutablePointer<Float> // [T, H]
    public let offsets: UnsafeMutablePointer<Int64>  // [B + 1]
    public let wordIds: UnsafeMutablePointer<Int32>? // [T]
    public let tokens: Int
    public let sequences: Int
    public let width: Int

    public init(_ raw: UnsafePointer<ph_head_input>?, width: Int) throws {
        guard let raw, raw.pointee.size >= UInt32(MemoryLayout<ph_head_input>.size) else {
            throw PluginFailure("head input is missing or its size field is too small")
        }
        let features = try Tensor(raw.pointee.features, "features").require(PH_DTYPE_F32, [nil, width], "features")
        let offsets = try Tensor(raw.pointee.sequence_offsets, "sequence offsets").require(PH_DTYPE_I64, [nil], "sequence offsets")
        tokens = features.dimension(0)
        sequences = offsets.dimension(0) - 1
        guard sequences >= 1 else { throw PluginFailure("sequence offsets must hold at least 2 values") }
        let offsetValues = offsets.int64s
        guard offsetValues[0] == 0, offsetValues[sequences] == Int64(tokens) else {
            throw PluginFailure("sequence offsets must run from 0 to the token count \(tokens)")
        }
        for index in 0..<sequences where offsetValues[index + 1] <= offsetValues[index] {
            throw PluginFailure("sequence \(index) is empty or offsets decrease")
        }
        if raw.pointee.word_ids != nil {
            wordIds = try Tensor(raw.pointee.word_ids, "word ids").require(PH_DTYPE_I32, [tokens], "word ids").int32s
        } else {
            wordIds = nil
        }
        training = raw.pointee.training != 0
        self.features = features.floats
        self.offsets = offsetValues
        self.width = width
    }

    public func start(_ sequence: Int) -> Int { Int(offsets[sequence]) }
    public func end(_ sequence: Int) -> Int { Int(offsets[sequence + 1]) }
}

/// A task head written in Swift. One instance per task; the support code serialises nothing
/// itself because the host already never calls one instance concurrently.
public protocol TaskHead: AnyObject {
    var granularity: Int32 { get }
    var outputWidth: Int { get }
    var targetWidth: Int { get }
    var targetDtype: Int32 { get }
    var parameters: ParameterSet { get }
    /// After the host bound the parameters: derive buffers (class weights from config ...).
    func didBind() throws
    func encodeTarget(label: JSON, wordIds: Tensor?, into target: Tensor) throws
    func prepare(targets: Tensor) throws
    /// Returns the saved state for backward (nil when `input.training` is false).
    func forward(_ input: HeadInput, outputs: Tensor) throws -> AnyObject?
    func loss(outputs: Tensor, targets: Tensor, outputGradient: Tensor) throws -> Double
    func backward(_ saved: AnyObject?, _ input: HeadInput, outputGradient: Tensor, featureGradient: Tensor) throws
    func decode(outputs: Tensor, wordIds: Tensor?) throws -> String
}

extension TaskHead {
    public func didBind() throws {}
    public func prepare(targets: Tensor) throws {}
}

/// A parameter's host-owned memory once bound.
public final class BoundParameter {
    public let name: String
    public let shape: [Int]
    public let trainable: Bool
    public internal(set) var values: UnsafeMutablePointer<Float>? = nil
    public internal(set) var gradients: UnsafeMutablePointer<Float>? = nil
    public var count: Int { shape.reduce(1, *) }
    init(name: String, shape: [Int], trainable: Bool) {
        self.name = name
        self.shape = shape
        self.trainable = trainable
    }
    /// Values, after binding (the host binds before any other call).
    public var value: UnsafeMutablePointer<Float> { values! }
}

/// The parameters an instance declared, in declaration order.
public final class ParameterSet {
    public private(set) var all: [BoundParameter] = []
    public init() {}
    func append(_ parameter: BoundParameter) { all.append(parameter) }
}

/// What create() gives a head's initialiser.
public struct CreateContext {
    public let config: ConfigReader
    public let inputWidth: Int
    public let instanceName: String
    public let random: OpaquePointer?
    let args: UnsafePointer<ph_create_args>
    let errors: UnsafeMutablePointer<ph_error_sink>?

    /// Declares a parameter to the host and returns its handle (memory arrives at bind).
    public func declare(_ name: String, shape: [Int], initializer: Int32, a: Double = 0, b: Double = 0,
                        trainable: Bool = true, noDecay: Bool = false, into set: ParameterSet) throws -> BoundParameter {
        guard let declareFunction = args.pointee.declare_parameter else { throw PluginFailure("the host offers no declare_parameter") }
        var spec = ph_parameter_spec()
        spec.size = UInt32(MemoryLayout<ph_parameter_spec>.size)
        spec.flags = (trainable ? PH_PARAMETER_TRAINABLE : 0) | (noDecay ? PH_PARAMETER_NO_DECAY : 0)
        spec.ndim = Int32(shape.count)
        spec.initializer = initializer
        spec.a = a
        spec.b = b
        withUnsafeMutableBytes(of: &spec.shape) { bytes in
            for (index, size) in shape.enumerated() where index < Int(PH_MAX_DIMS) {
                bytes.storeBytes(of: Int64(size), toByteOffset: index * 8, as: Int64.self)
            }
        }
        let status = name.withCString { namePointer -> ph_status in
            spec.name = namePointer
            return declareFunction(args.pointee.declarer, &spec, errors)
        }
        guard status == PH_STATUS_OK else { throw PluginFailure("the host refused parameter \"\(name)\"", status: status) }
        let parameter = BoundParameter(name: name, shape: shape, trainable: trainable)
        set.append(parameter)
        return parameter
    }
}

/// Boxes a Swift head behind the opaque ph_instance pointer.
final class HeadBox {
    let head: TaskHead
    let inputWidth: Int
    init(head: TaskHead, inputWidth: Int) {
        self.head = head
        self.inputWidth = inputWidth
    }
}

final class SavedBox {
    let state: AnyObject
    init(_ state: AnyObject) { self.state = state }
}

@inline(__always)
func box(_ instance: OpaquePointer?) throws -> HeadBox {
    guard let instance else { throw PluginFailure("NULL instance") }
    return Unmanaged<HeadBox>.fromOpaque(UnsafeRawPointer(instance)).takeUnretainedValue()
}

/// The body of a component's create(): builds the head and hands its box to the host.
public func createHead(_ args: UnsafePointer<ph_create_args>?, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                       _ errors: UnsafeMutablePointer<ph_error_sink>?,
                       _ make: (CreateContext) throws -> TaskHead) -> ph_status {
    out?.pointee = nil
    return guarded(errors) {
        guard let args, let out, args.pointee.size >= UInt32(MemoryLayout<ph_create_args>.size) else {
            throw PluginFailure("create needs arguments and an output pointer (size field too small?)")
        }
        if hostServices == nil, let services = args.pointee.services { hostServices = services } // normally set by the entry
        let context = CreateContext(config: ConfigReader(JSON(args.pointee.config)), inputWidth: Int(args.pointee.input_width),
                                    instanceName: args.pointee.instance_name.map { String(cString: $0) } ?? "",
                                    random: args.pointee.rng, args: args, errors: errors)
        let head = try make(context)
        out.pointee = OpaquePointer(Unmanaged.passRetained(HeadBox(head: head, inputWidth: context.inputWidth)).toOpaque())
    }
}

let destroyInstance: @convention(c) (OpaquePointer?) -> Void = { instance in
    guard let instance else { return }
    Unmanaged<HeadBox>.fromOpaque(UnsafeRawPointer(instance)).release()
}

let bindParameters: @convention(c) (OpaquePointer?, Int64, UnsafePointer<UnsafePointer<ph_tensor>?>?,
                                    UnsafePointer<UnsafePointer<ph_tensor>?>?, UnsafeMutablePointer<ph_error_sink>?) -> ph_status = { instance, count, values, gradients, errors in
    guarded(errors) {
        let head = try box(instance).head
        let declared = head.parameters.all
        guard count == Int64(declared.count), declared.isEmpty || (values != nil && gradients != nil) else {
            throw PluginFailure("bind_parameters got \(count) parameters, \(declared.count) were declared")
        }
        for (index, parameter) in declared.enumerated() {
            let shape = parameter.shape.map { Optional($0) }
            let value = try Tensor(values![index], "parameter \(parameter.name)").require(PH_DTYPE_F32, shape, "parameter \(parameter.name)")
            parameter.values = value.floats
            let gradient = try Tensor(gradients![index], "gradient of \(parameter.name)")
            if parameter.trainable {
                try gradient.require(PH_DTYPE_F32, shape, "gradient of \(parameter.name)")
                parameter.gradients = gradient.floats
            }
        }
        try head.didBind()
    }
}

nonisolated(unsafe) let headMethods: UnsafePointer<ph_head_methods> = {
    var methods = ph_head_methods()
    methods.size = UInt32(MemoryLayout<ph_head_methods>.size)
    methods.layout = { instance, out, errors in
        guarded(errors) {
            let head = try box(instance).head
            guard let out, out.pointee.size >= UInt32(MemoryLayout<ph_head_layout>.size) else {
                throw PluginFailure("layout needs an output struct of at least \(MemoryLayout<ph_head_layout>.size) bytes")
            }
            out.pointee.granularity = head.granularity
            out.pointee.output_width = Int64(head.outputWidth)
            out.pointee.target_width = Int64(head.targetWidth)
            out.pointee.target_dtype = head.targetDtype
        }
    }
    methods.encode_target = { instance, label, wordIds, target, errors in
        guarded(errors) {
            let head = try box(instance).head
            let words = wordIds == nil ? nil : try Tensor(wordIds, "word ids").require(PH_DTYPE_I32, [nil], "word ids")
            let rows = head.granularity == PH_GRANULARITY_TOKEN ? words?.dimension(0) : 1
            guard let rows else { throw PluginFailure("a token head needs the example's word ids to encode its label") }
            let target = try Tensor(target, "target").require(head.targetDtype, [rows, head.targetWidth], "target")
            try head.encodeTarget(label: JSON(label), wordIds: words, into: target)
        }
    }
    methods.prepare = { instance, targets, errors in
        guarded(errors) {
            let head = try box(instance).head
            try head.prepare(targets: try Tensor(targets, "targets").require(head.targetDtype, [nil, head.targetWidth], "targets"))
        }
    }
    methods.forward = { instance, input, outputs, saved, errors in
        saved?.pointee = nil
        return guarded(errors) {
            let box = try box(instance)
            let head = box.head
            let input = try HeadInput(input, width: box.inputWidth)
            let rows = head.granularity == PH_GRANULARITY_TOKEN ? input.tokens : input.sequences
            let outputs = try Tensor(outputs, "outputs").require(PH_DTYPE_F32, [rows, head.outputWidth], "outputs")
            let state = try head.forward(input, outputs: outputs)
            if let state, let saved, input.training {
                saved.pointee = OpaquePointer(Unmanaged.passRetained(SavedBox(state)).toOpaque())
            }
        }
    }
    methods.loss = { instance, outputs, targets, gradient, loss, errors in
        guarded(errors) {
            let head = try box(instance).head
            let outputs = try Tensor(outputs, "outputs").require(PH_DTYPE_F32, [nil, head.outputWidth], "outputs")
            let rows = outputs.dimension(0)
            let targets = try Tensor(targets, "targets").require(head.targetDtype, [rows, head.targetWidth], "targets")
            let gradient = try Tensor(gradient, "output gradient").require(PH_DTYPE_F32, [rows, head.outputWidth], "output gradient")
            guard let loss else { throw PluginFailure("loss needs an output pointer") }
            loss.pointee = try head.loss(outputs: outputs, targets: targets, outputGradient: gradient)
        }
    }
    methods.backward = { instance, saved, input, outputGradient, featureGradient, errors in
        guarded(errors) {
            let box = try box(instance)
            let head = box.head
            let input = try HeadInput(input, width: box.inputWidth)
            let rows = head.granularity == PH_GRANULARITY_TOKEN ? input.tokens : input.sequences
            let outputGradient = try Tensor(outputGradient, "output gradient").require(PH_DTYPE_F32, [rows, head.outputWidth], "output gradient")
            let featureGradient = try Tensor(featureGradient, "feature gradient").require(PH_DTYPE_F32, [input.tokens, input.width], "feature gradient")
            let state = saved.map { Unmanaged<SavedBox>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue().state }
            try head.backward(state, input, outputGradient: outputGradient, featureGradient: featureGradient)
        }
    }
    methods.release_saved = { _, saved in
        guard let saved else { return }
        Unmanaged<SavedBox>.fromOpaque(UnsafeRawPointer(saved)).release()
    }
    methods.decode = { instance, outputs, wordIds, sink, errors in
        guarded(errors) {
            let head = try box(instance).head
            let outputs = try Tensor(outputs, "outputs").require(PH_DTYPE_F32, [nil, head.outputWidth], "outputs")
            let words = wordIds == nil ? nil : try Tensor(wordIds, "word ids").require(PH_DTYPE_I32, [outputs.dimension(0)], "word ids")
            try write(try head.decode(outputs: outputs, wordIds: words), to: sink)
        }
    }
    let table = UnsafeMutablePointer<ph_head_methods>.allocate(capacity: 1)
    table.initialize(to: methods)
    return UnsafePointer(table)
}()

public typealias CreateFunction = @convention(c) (UnsafePointer<ph_create_args>?, UnsafeMutablePointer<OpaquePointer?>?,
                                                  UnsafeMutablePointer<ph_error_sink>?) -> ph_status

/// Describes one task-head component of a Swift plugin.
public struct HeadDefinition {
    public let id: String
    public let version: String
    public let name: String
    public let summary: String
    public let exampleConfig: String
    public let create: CreateFunction
    public init(id: String, version: String, name: String, summary: String, exampleConfig: String, create: CreateFunction) {
        self.id = id
        self.version = version
        self.name = name
        self.summary = summary
        self.exampleConfig = exampleConfig
        self.create = create
    }
}

/// Describes one extension function: `function` must have the C type `signature` spells.
public struct ExtensionDefinition {
    public let name: String
    public let signature: String
    public let summary: String
    public let function: ph_generic_function
    public init(name: String, signature: String, summary: String, function: ph_generic_function) {
        self.name = name
        self.signature = signature
        self.summary = summary
        self.function = function
    }
}

/// Builds the plugin table once (static storage for the life of the process).
public func makePluginTable(id: String, version: String, name: String, heads: [HeadDefinition],
                            extensions: [ExtensionDefinition]) -> UnsafePointer<ph_plugin> {
    let components = UnsafeMutablePointer<UnsafePointer<ph_component>?>.allocate(capacity: max(heads.count, 1))
    for (index, definition) in heads.enumerated() {
        let descriptor = UnsafeMutablePointer<ph_component_descriptor>.allocate(capacity: 1)
        descriptor.initialize(to: ph_component_descriptor(
            size: UInt32(MemoryLayout<ph_component_descriptor>.size), kind: PH_COMPONENT_TASK_HEAD,
            id: permanentCString(definition.id), version: permanentCString(definition.version),
            name: permanentCString(definition.name), description: permanentCString(definition.summary),
            example_config: permanentCString(definition.exampleConfig)))
        var component = ph_component()
        component.size = UInt32(MemoryLayout<ph_component>.size)
        component.descriptor = UnsafePointer(descriptor)
        component.create = definition.create
        component.destroy = destroyInstance
        component.bind_parameters = bindParameters
        component.head = headMethods
        let pointer = UnsafeMutablePointer<ph_component>.allocate(capacity: 1)
        pointer.initialize(to: component)
        components[index] = UnsafePointer(pointer)
    }
    let functions = UnsafeMutablePointer<UnsafePointer<ph_extension_function>?>.allocate(capacity: max(extensions.count, 1))
    for (index, definition) in extensions.enumerated() {
        let pointer = UnsafeMutablePointer<ph_extension_function>.allocate(capacity: 1)
        pointer.initialize(to: ph_extension_function(
            size: UInt32(MemoryLayout<ph_extension_function>.size), reserved: 0,
            name: permanentCString(definition.name), signature: permanentCString(definition.signature),
            description: permanentCString(definition.summary), function: definition.function))
        functions[index] = UnsafePointer(pointer)
    }
    var plugin = ph_plugin()
    plugin.size = UInt32(MemoryLayout<ph_plugin>.size)
    plugin.abi_major = UInt16(PH_ABI_MAJOR)
    plugin.abi_minor = supportedABIMinor
    plugin.id = permanentCString(id)
    plugin.version = permanentCString(version)
    plugin.name = permanentCString(name)
    plugin.swift_toolchain = permanentCString(String(cString: ph_swift_toolchain()))
    plugin.component_count = Int64(heads.count)
    plugin.components = UnsafePointer(components)
    plugin.extension_count = Int64(extensions.count)
    plugin.extensions = UnsafePointer(functions)
    let table = UnsafeMutablePointer<ph_plugin>.allocate(capacity: 1)
    table.initialize(to: plugin)
    return UnsafePointer(table)
}

/// The body of a Swift plugin's entry function: checks the host's offer, keeps its
/// services, and answers with the plugin table.
public func answerEntry(_ host: UnsafePointer<ph_host>?, _ out: UnsafeMutablePointer<UnsafePointer<ph_plugin>?>?,
                        _ errors: UnsafeMutablePointer<ph_error_sink>?, table: () -> UnsafePointer<ph_plugin>) -> ph_status {
    guarded(errors) {
        guard let host, let out, host.pointee.size >= 8 else { throw PluginFailure("the entry function needs the host's offer and an output pointer") }
        guard host.pointee.abi_major == UInt16(PH_ABI_MAJOR) else {
            throw PluginFailure("this plugin implements ABI \(PH_ABI_MAJOR).\(supportedABIMinor) but the host offers ABI \(host.pointee.abi_major).\(host.pointee.abi_minor); use a matching polyhead", status: PH_STATUS_UNSUPPORTED)
        }
        guard host.pointee.size >= UInt32(MemoryLayout<ph_host>.size), let services = host.pointee.services,
              services.pointee.size >= UInt32(MemoryLayout<ph_host_services>.size) else {
            throw PluginFailure("the host's ph_host or ph_host_services is smaller than ABI 1.0 requires", status: PH_STATUS_UNSUPPORTED)
        }
        hostServices = services
        out.pointee = table()
    }
}
