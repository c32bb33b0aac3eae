// The router and encoder-adapter counterparts of Tables.swift: Swift protocols for the two
// other component kinds, the trampolines that turn each C call into a Swift method with
// every error caught at the boundary, and a plugin table that publishes them.
import CPolyhead

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A router written in Swift (router.h): one instance serves every task that names it.
public protocol SharedRouter: AnyObject {
    var parameters: ParameterSet { get }
    /// H', the width of the features the router produces.
    var outputWidth: Int { get }
    func didBind() throws
    /// Writes outputs [T, H'] for task `taskIndex`; returns the saved state for backward
    /// (only kept when `input.training`). The state must remember the task.
    func forward(taskIndex: Int, _ input: HeadInput, outputs: Tensor) throws -> AnyObject?
    /// Overwrites featureGradient [T, H] and adds parameter gradients.
    func backward(_ saved: AnyObject?, _ input: HeadInput, outputGradient: Tensor, featureGradient: Tensor) throws
}

/// An encoder adapter written in Swift (adapter.h).
public protocol EncoderAdapter: AnyObject {
    var parameters: ParameterSet { get }
    func didBind() throws
    /// Whether the adapter adds a term at site `site` (fixed after create).
    func hooks(site: Int) -> Bool
    /// Adds the adapter's term into y [T, out] given x [T, in]; returns the saved state for
    /// backward (only kept when `training`).
    func forward(site: Int, training: Bool, x: Tensor, y: Tensor) throws -> AnyObject?
    /// Adds the adapter's contribution into inputGradient [T, in] and parameter gradients.
    func backward(_ saved: AnyObject?, site: Int, x: Tensor, outputGradient: Tensor, inputGradient: Tensor) throws
    /// Adds the adapter's weight delta into weight [out, in].
    func merge(site: Int, weight: Tensor) throws
}

extension SharedRouter { public func didBind() throws {} }
extension EncoderAdapter { public func didBind() throws {} }

/// An encoder linear layer offered to an adapter (ph_linear_site).
public struct LinearSiteInfo: Equatable {
    /// Hugging Face parameter prefix, e.g. "encoder.layer.0.attention.self.query".
    public let name: String
    public let inFeatures: Int
    public let outFeatures: Int
    public init(name: String, inFeatures: Int, outFeatures: Int) {
        self.name = name
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
    }
}

extension CreateContext {
    /// Routers: the tasks sharing the instance, in task-index order.
    public var taskNames: [String] {
        let count = Int(args.pointee.task_count)
        guard count > 0, let names = args.pointee.task_names else { return [] }
        return (0..<count).map { names[$0].map { String(cString: $0) } ?? "" }
    }

    /// Adapters: the encoder's linear layers, in site-index order.
    public func linearSites() throws -> [LinearSiteInfo] {
        let count = Int(args.pointee.site_count)
        guard count > 0, let sites = args.pointee.sites else { return [] }
        return try (0..<count).map { index in
            guard let site = sites[index], site.pointee.size >= UInt32(MemoryLayout<ph_linear_site>.size), let name = site.pointee.name else {
                throw PluginFailure("linear site \(index) is missing, has no name, or its size field is too small")
            }
            return LinearSiteInfo(name: String(cString: name), inFeatures: Int(site.pointee.in_features),
                                  outFeatures: Int(site.pointee.out_features))
        }
    }
}

/// Boxes a Swift router or adapter behind the opaque ph_instance pointer.
final class ComponentBox {
    let router: SharedRouter?
    let adapter: EncoderAdapter?
    let inputWidth: Int
    var parameters: ParameterSet { router?.parameters ?? adapter!.parameters }
    init(router: SharedRouter?, adapter: EncoderAdapter?, inputWidth: Int) {
        self.router = router
        self.adapter = adapter
        self.inputWidth = inputWidth
    }
}

@inline(__always)
func componentBox(_ instance: OpaquePointer?) throws -> ComponentBox {
    guard let instance else { throw PluginFailure("NULL instance") }
    return Unmanaged<ComponentBox>.fromOpaque(UnsafeRawPointer(instance)).takeUnretainedValue()
}

private func createComponent(_ args: UnsafePointer<ph_create_args>?, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                             _ errors: UnsafeMutablePointer<ph_error_sink>?,
                             _ make: (CreateContext) throws -> ComponentBox) -> ph_status {
    out?.pointee = nil
    return guarded(errors) {
        guard let args, let out, args.pointee.size >= UInt32(MemoryLayout<ph_create_args>.size) else {
            throw PluginFailure("create needs arguments and an output pointer (size field too small?)")
        }
        if hostServices == nil, let services = args.pointee.services { hostServices = services }
        let context = CreateContext(config: ConfigReader(JSON(args.pointee.config)), inputWidth: Int(args.pointee.input_width),
                                    instanceName: args.pointee.instance_name.map { String(cString: $0) } ?? "",
                                    random: args.pointee.rng, args: args, errors: errors)
        out.pointee = OpaquePointer(Unmanaged.passRetained(try make(context)).toOpaque())
    }
}

/// The body of a router component's create().
public func createRouter(_ args: UnsafePointer<ph_create_args>?, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                         _ errors: UnsafeMutablePointer<ph_error_sink>?, _ make: (CreateContext) throws -> SharedRouter) -> ph_status {
    createComponent(args, out, errors) { context in
        ComponentBox(router: try make(context), adapter: nil, inputWidth: context.inputWidth)
    }
}

/// The body of an adapter component's create().
public func createAdapter(_ args: UnsafePointer<ph_create_args>?, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                          _ errors: UnsafeMutablePointer<ph_error_sink>?, _ make: (CreateContext) throws -> EncoderAdapter) -> ph_status {
    createComponent(args, out, errors) { context in
        ComponentBox(router: nil, adapter: try make(context), inputWidth: context.inputWidth)
    }
}

let destroyComponent: @convention(c) (OpaquePointer?) -> Void = { instance in
    guard let instance else { return }
    Unmanaged<ComponentBox>.fromOpaque(UnsafeRawPointer(instance)).release()
}

let bindComponentParameters: @convention(c) (OpaquePointer?, Int64, UnsafePointer<UnsafePointer<ph_tensor>?>?,
                                             UnsafePointer<UnsafePointer<ph_tensor>?>?, UnsafeMutablePointer<ph_error_sink>?) -> ph_status = { instance, count, values, gradients, errors in
    guarded(errors) {
        let box = try componentBox(instance)
        let declared = box.parameters.all
        guard count == Int64(declared.count), declared.isEmpty || (values != nil && gradients != nil) else {
            throw PluginFailure("bind_parameters got \(count) parameters, \(declared.count) were declared")
        }
        for (index, parameter) in declared.enumerated() {
            let shape = parameter.shape.map { Optional($0) }
            parameter.values = try Tensor(values![index], "parameter \(parameter.name)")
                .require(PH_DTYPE_F32, shape, "parameter \(parameter.name)").floats
            if parameter.trainable {
                parameter.gradients = try Tensor(gradients![index], "gradient of \(parameter.name)")
                    .require(PH_DTYPE_F32, shape, "gradient of \(parameter.name)").floats
            }
        }
        if let router = box.router { try router.didBind() }
        if let adapter = box.adapter { try adapter.didBind() }
    }
}

private func savedState(_ saved: OpaquePointer?) -> AnyObject? {
    saved.map { Unmanaged<SavedBox>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue().state }
}

private let releaseSavedState: @convention(c) (OpaquePointer?, OpaquePointer?) -> Void = { _, saved in
    guard let saved else { return }
    Unmanaged<SavedBox>.fromOpaque(UnsafeRawPointer(saved)).release()
}

nonisolated(unsafe) let routerMethods: UnsafePointer<ph_router_methods> = {
    var methods = ph_router_methods()
    methods.size = UInt32(MemoryLayout<ph_router_methods>.size)
    methods.output_width = { instance, out, errors in
        guarded(errors) {
            guard let router = try componentBox(instance).router, let out else { throw PluginFailure("output_width needs a router and an output pointer") }
            out.pointee = Int64(router.outputWidth)
        }
    }
    methods.forward = { instance, taskIndex, input, outputs, saved, errors in
        saved?.pointee = nil
        return guarded(errors) {
            let box = try componentBox(instance)
            guard let router = box.router else { throw PluginFailure("the instance is not a router") }
            let input = try HeadInput(input, width: box.inputWidth)
            let outputs = try Tensor(outputs, "outputs").require(PH_DTYPE_F32, [input.tokens, router.outputWidth], "outputs")
            let state = try router.forward(taskIndex: Int(taskIndex), input, outputs: outputs)
            if let state, let saved, input.training {
                saved.pointee = OpaquePointer(Unmanaged.passRetained(SavedBox(state)).toOpaque())
            }
        }
    }
    methods.backward = { instance, saved, input, outputGradient, featureGradient, errors in
        guarded(errors) {
            let box = try componentBox(instance)
            guard let router = box.router else { throw PluginFailure("the instance is not a router") }
            let input = try HeadInput(input, width: box.inputWidth)
            let outputGradient = try Tensor(outputGradient, "output gradient")
                .require(PH_DTYPE_F32, [input.tokens, router.outputWidth], "output gradient")
            let featureGradient = try Tensor(featureGradient, "feature gradient")
                .require(PH_DTYPE_F32, [input.tokens, input.width], "feature gradient")
            try router.backward(savedState(saved), input, outputGradient: outputGradient, featureGradient: featureGradient)
        }
    }
    methods.release_saved = releaseSavedState
    let table = UnsafeMutablePointer<ph_router_methods>.allocate(capacity: 1)
    table.initialize(to: methods)
    return UnsafePointer(table)
}()

nonisolated(unsafe) let adapterMethods: UnsafePointer<ph_adapter_methods> = {
    var methods = ph_adapter_methods()
    methods.size = UInt32(MemoryLayout<ph_adapter_methods>.size)
    methods.hooks_site = { instance, site in
        guard let adapter = try? componentBox(instance).adapter else { return 0 }
        return adapter.hooks(site: Int(site)) ? 1 : 0
    }
    methods.forward = { instance, site, training, x, y, saved, errors in
        saved?.pointee = nil
        return guarded(errors) {
            guard let adapter = try componentBox(instance).adapter else { throw PluginFailure("the instance is not an adapter") }
            let x = try Tensor(x, "x").require(PH_DTYPE_F32, [nil, nil], "x")
            let y = try Tensor(y, "y").require(PH_DTYPE_F32, [x.dimension(0), nil], "y")
            let state = try adapter.forward(site: Int(site), training: training != 0, x: x, y: y)
            if let state, let saved, training != 0 {
                saved.pointee = OpaquePointer(Unmanaged.passRetained(SavedBox(state)).toOpaque())
            }
        }
    }
    methods.backward = { instance, saved, site, x, outputGradient, inputGradient, errors in
        guarded(errors) {
            guard let adapter = try componentBox(instance).adapter else { throw PluginFailure("the instance is not an adapter") }
            let x = try Tensor(x, "x").require(PH_DTYPE_F32, [nil, nil], "x")
            let rows = x.dimension(0)
            let outputGradient = try Tensor(outputGradient, "d(y)").require(PH_DTYPE_F32, [rows, nil], "d(y)")
            let inputGradient = try Tensor(inputGradient, "d(x)").require(PH_DTYPE_F32, [rows, x.dimension(1)], "d(x)")
            try adapter.backward(savedState(saved), site: Int(site), x: x, outputGradient: outputGradient, inputGradient: inputGradient)
        }
    }
    methods.release_saved = releaseSavedState
    methods.merge = { instance, site, weight, errors in
        guarded(errors) {
            guard let adapter = try componentBox(instance).adapter else { throw PluginFailure("the instance is not an adapter") }
            try adapter.merge(site: Int(site), weight: try Tensor(weight, "weight").require(PH_DTYPE_F32, [nil, nil], "weight"))
        }
    }
    let table = UnsafeMutablePointer<ph_adapter_methods>.allocate(capacity: 1)
    table.initialize(to: methods)
    return UnsafePointer(table)
}()

/// Describes one router or adapter component of a Swift plugin.
public struct ComponentDefinition {
    public enum Kind { case router, adapter }
    public let kind: Kind
    public let id: String
    public let version: String
    public let name: String
    public let summary: String
    public let exampleConfig: String
    public let create: CreateFunction
    public init(kind: Kind, id: String, version: String, name: String, summary: String, exampleConfig: String, create: CreateFunction) {
        self.kind = kind
        self.id = id
        self.version = version
        self.name = name
        self.summary = summary
        self.exampleConfig = exampleConfig
        self.create = create
    }
}

/// Builds the table of a plugin publishing routers and adapters (static storage for the
/// life of the process). Heads go through makePluginTable(id:version:name:heads:extensions:).
public func makePluginTable(id: String, version: String, name: String, components definitions: [ComponentDefinition],
                            extensions: [ExtensionDefinition]) -> UnsafePointer<ph_plugin> {
    // Start from the heads' builder (no heads) for the plugin fields and extensions, then
    // put the components in.
    let base = makePluginTable(id: id, version: version, name: name, heads: [], extensions: extensions)
    let components = UnsafeMutablePointer<UnsafePointer<ph_component>?>.allocate(capacity: max(definitions.count, 1))
    for (index, definition) in definitions.enumerated() {
        let descriptor = UnsafeMutablePointer<ph_component_descriptor>.allocate(capacity: 1)
        descriptor.initialize(to: ph_component_descriptor(
            size: UInt32(MemoryLayout<ph_component_descriptor>.size),
            kind: definition.kind == .router ? PH_COMPONENT_ROUTER : PH_COMPONENT_ENCODER_ADAPTER,
            id: permanentCString(definition.id), version: permanentCString(definition.version),
            name: permanentCString(definition.name), description: permanentCString(definition.summary),
            example_config: permanentCString(definition.exampleConfig)))
        var component = ph_component()
        component.size = UInt32(MemoryLayout<ph_component>.size)
        component.descriptor = UnsafePointer(descriptor)
        component.create = definition.create
        component.destroy = destroyComponent
        component.bind_parameters = bindComponentParameters
        switch definition.kind {
        case .router: component.router = routerMethods
        case .adapter: component.adapter = adapterMethods
        }
        let pointer = UnsafeMutablePointer<ph_component>.allocate(capacity: 1)
        pointer.initialize(to: component)
        components[index] = UnsafePointer(pointer)
    }
    let table = UnsafeMutablePointer(mutating: base)
    table.pointee.component_count = Int64(definitions.count)
    table.pointee.components = UnsafePointer(components)
    return base
}

/// A mutual-exclusion lock over pthreads (plugins do not link Foundation).
public final class Lock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    public init() { pthread_mutex_init(mutex, nil) }
    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }
    public func locked<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// Live instances by instance name, so extension functions (which get no instance pointer
/// from the command line or a run config) can find the instance a name refers to. An
/// instance registers in its initialiser and unregisters in its deinit. Thread-safe.
public final class InstanceRegistry<Instance: AnyObject>: @unchecked Sendable {
    private struct Entry { weak var instance: Instance? }
    private var entries: [String: Entry] = [:]
    private let lock = Lock()
    public init() {}

    /// The newest instance of a name wins: a run never has two routers of one name.
    public func register(_ instance: Instance, name: String) {
        lock.locked { entries[name] = Entry(instance: instance) }
    }

    /// Removes `name` if it still refers to `instance` (or to a released one).
    public func unregister(_ instance: Instance, name: String) {
        lock.locked {
            if let current = entries[name]?.instance, current !== instance { return }
            entries[name] = nil
        }
    }

    /// - Throws: PluginFailure naming the instance and the live ones.
    public func instance(named name: String, kind: String) throws -> Instance {
        try lock.locked {
            if let instance = entries[name]?.instance { return instance }
            let live = entries.filter { $0.value.instance != nil }.keys.sorted()
            throw PluginFailure("no \(kind) instance named \"\(name)\" (live: \(live.isEmpty ? "none" : live.joined(separator: ", ")))",
                                status: PH_STATUS_NOT_FOUND)
        }
    }
}

/// A string returned by an extension function: kept alive until the next call replaces it,
/// as the ABI wants returned strings in plugin-owned storage.
public final class ReturnedString: @unchecked Sendable {
    private var current: UnsafeMutablePointer<CChar>? = nil
    private var previous: UnsafeMutablePointer<CChar>? = nil
    private let lock = Lock()
    public init() {}

    /// Stores `text` and returns a pointer valid until the call after next (so a caller
    /// copying the previous result on another thread is never left dangling).
    public func keep(_ text: String) -> UnsafePointer<CChar> {
        lock.locked {
            free(previous)
            previous = current
            current = strdup(text)
            return UnsafePointer(current!)
        }
    }
}
