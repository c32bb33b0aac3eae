import CPolyhead
import Foundation

/// The kinds of component a plugin can publish.
public enum ComponentKind: String, Sendable, CaseIterable {
    case taskHead = "task head"
    case router = "router"
    case encoderAdapter = "encoder adapter"

    /// "head", "router" or "adapter", as head manifests record the kind.
    public var shortName: String {
        switch self {
        case .taskHead: return "head"
        case .router: return "router"
        case .encoderAdapter: return "adapter"
        }
    }

    init?(code: Int32) {
        switch code {
        case PH_COMPONENT_TASK_HEAD: self = .taskHead
        case PH_COMPONENT_ROUTER: self = .router
        case PH_COMPONENT_ENCODER_ADAPTER: self = .encoderAdapter
        default: return nil
        }
    }
}

/// A plugin file that loaded and passed every check. Never unloaded.
public final class LoadedPlugin: @unchecked Sendable {
    /// The file as found on the search path, and its resolved real path.
    public let path: String
    public let realPath: String
    public let id: String
    public let version: String
    public let name: String
    public let abiMajor: Int
    public let abiMinor: Int
    /// The Swift toolchain the plugin was built with, nil for C (and other non-Swift) plugins.
    public let swiftToolchain: String?
    public private(set) var components: [Component] = []
    public private(set) var extensionFunctions: [ExtensionFunction] = []

    /// The file name, for messages.
    public var fileName: String { (path as NSString).lastPathComponent }

    /// Reads and validates the table a plugin's entry returned.
    /// - Throws: PluginError(.refused) with a one-line reason.
    init(path: String, realPath: String, table: UnsafePointer<ph_plugin>) throws {
        self.path = path
        self.realPath = realPath
        let fileName = (path as NSString).lastPathComponent
        func refuse(_ reason: String) -> PluginError { PluginError(.refused, "\(fileName): \(reason)") }

        // The frozen prefix (size, abi_major, abi_minor) is readable in any ABI generation.
        let prefixSize = 8
        let size = Int(table.pointee.size)
        guard size >= prefixSize else {
            throw refuse("ph_plugin.size is \(size) bytes, less than the 8-byte version prefix; the plugin did not set the size field (set it to sizeof(ph_plugin))")
        }
        abiMajor = Int(table.pointee.abi_major)
        abiMinor = Int(table.pointee.abi_minor)
        let hostVersion = "\(PH_ABI_MAJOR).\(PH_ABI_MINOR)"
        guard abiMajor == Int(PH_ABI_MAJOR) else {
            throw refuse("the plugin implements ABI \(abiMajor).\(abiMinor) but this polyhead speaks ABI \(hostVersion); rebuild the plugin against the ABI \(PH_ABI_MAJOR).x headers")
        }
        guard abiMinor <= Int(PH_ABI_MINOR) else {
            throw refuse("the plugin needs ABI \(abiMajor).\(abiMinor) but this polyhead speaks only up to ABI \(hostVersion); upgrade polyhead, or build the plugin against the \(hostVersion) headers")
        }
        try requireSize(size, of: ph_plugin.self, "ph_plugin", refuse)

        let plugin = table.pointee
        id = try requireIdentifier(plugin.id, "plugin id", refuse)
        version = try requireVersion(plugin.version, "plugin \"\(id)\" version", refuse)
        name = plugin.name.map { String(cString: $0) } ?? id
        swiftToolchain = plugin.swift_toolchain.map { String(cString: $0) }
        if let swiftToolchain, swiftToolchain != hostSwiftToolchain {
            throw refuse("plugin \"\(id)\" was built with Swift toolchain \"\(swiftToolchain)\" but polyhead with \"\(hostSwiftToolchain)\"; Swift has no stable ABI on Linux, so rebuild the plugin with polyhead's toolchain")
        }

        guard plugin.component_count >= 0, plugin.component_count <= 4096,
              plugin.component_count == 0 || plugin.components != nil else {
            throw refuse("plugin \"\(id)\" declares \(plugin.component_count) components but no valid component array")
        }
        var seen = Set<String>()
        for index in 0..<Int(plugin.component_count) {
            guard let pointer = plugin.components[index] else {
                throw refuse("plugin \"\(id)\" component \(index) is a NULL pointer")
            }
            let component = try Component(plugin: self, table: pointer, index: index, refuse)
            guard seen.insert(component.id).inserted else {
                throw refuse("plugin \"\(id)\" publishes component id \"\(component.id)\" twice; give each component its own id")
            }
            components.append(component)
        }

        guard plugin.extension_count >= 0, plugin.extension_count <= 4096,
              plugin.extension_count == 0 || plugin.extensions != nil else {
            throw refuse("plugin \"\(id)\" declares \(plugin.extension_count) extension functions but no valid array")
        }
        var seenFunctions = Set<String>()
        for index in 0..<Int(plugin.extension_count) {
            guard let pointer = plugin.extensions[index] else {
                throw refuse("plugin \"\(id)\" extension function \(index) is a NULL pointer")
            }
            let function = try ExtensionFunction(pluginID: id, pluginFile: fileName, table: pointer, refuse)
            guard seenFunctions.insert(function.name).inserted else {
                throw refuse("plugin \"\(id)\" publishes extension function \"\(function.name)\" twice")
            }
            extensionFunctions.append(function)
        }
    }
}

/// A component a plugin publishes: its descriptor and its function tables.
public final class Component: @unchecked Sendable {
    public let id: String
    public let version: String
    public let kind: ComponentKind
    public let name: String
    public let summary: String
    /// A config create() accepts, as published by the plugin ("{}" when it gave none).
    public let exampleConfig: String
    public unowned let plugin: LoadedPlugin

    let table: UnsafePointer<ph_component>
    let head: UnsafePointer<ph_head_methods>?
    let router: UnsafePointer<ph_router_methods>?
    let adapter: UnsafePointer<ph_adapter_methods>?

    /// "libClassificationHead.so: component polyhead.classification", for messages.
    public var qualifiedName: String { "\(plugin.fileName): component \(id)" }

    init(plugin: LoadedPlugin, table: UnsafePointer<ph_component>, index: Int,
         _ refuse: (String) -> PluginError) throws {
        self.plugin = plugin
        self.table = table
        let label = "plugin \"\(plugin.id)\" component \(index)"
        try requireSize(Int(table.pointee.size), of: ph_component.self, "\(label): ph_component", refuse)
        guard let descriptor = table.pointee.descriptor else { throw refuse("\(label) has no descriptor") }
        try requireSize(Int(descriptor.pointee.size), of: ph_component_descriptor.self, "\(label): ph_component_descriptor", refuse)
        id = try requireIdentifier(descriptor.pointee.id, "\(label) id", refuse)
        let named = "component \"\(id)\""
        version = try requireVersion(descriptor.pointee.version, "\(named) version", refuse)
        guard let kind = ComponentKind(code: descriptor.pointee.kind) else {
            throw refuse("\(named) has unknown kind \(descriptor.pointee.kind) (this polyhead knows 1 task head, 2 router, 3 encoder adapter)")
        }
        self.kind = kind
        name = descriptor.pointee.name.map { String(cString: $0) } ?? id
        summary = descriptor.pointee.description.map { String(cString: $0) } ?? ""
        exampleConfig = descriptor.pointee.example_config.map { String(cString: $0) } ?? "{}"
        let component = table.pointee
        guard component.create != nil, component.destroy != nil, component.bind_parameters != nil else {
            throw refuse("\(named) lacks create, destroy or bind_parameters")
        }

        func missing(_ functions: [(String, Bool)]) -> String? {
            let names = functions.filter { !$0.1 }.map(\.0)
            return names.isEmpty ? nil : names.joined(separator: ", ")
        }
        let tables = [component.head != nil, component.router != nil, component.adapter != nil].filter { $0 }.count
        guard tables == 1 else {
            throw refuse("\(named) must fill exactly one of head, router, adapter (it fills \(tables))")
        }
        head = component.head
        router = component.router
        adapter = component.adapter
        switch kind {
        case .taskHead:
            guard let methods = head else { throw refuse("\(named) is a task head but has no head methods") }
            try requireSize(Int(methods.pointee.size), of: ph_head_methods.self, "\(named): ph_head_methods", refuse)
            let m = methods.pointee
            if let names = missing([("layout", m.layout != nil), ("encode_target", m.encode_target != nil),
                                    ("forward", m.forward != nil), ("loss", m.loss != nil), ("backward", m.backward != nil),
                                    ("release_saved", m.release_saved != nil), ("decode", m.decode != nil)]) {
                throw refuse("\(named) head methods lack \(names)")
            }
        case .router:
            guard let methods = router else { throw refuse("\(named) is a router but has no router methods") }
            try requireSize(Int(methods.pointee.size), of: ph_router_methods.self, "\(named): ph_router_methods", refuse)
            let m = methods.pointee
            if let names = missing([("output_width", m.output_width != nil), ("forward", m.forward != nil),
                                    ("backward", m.backward != nil), ("release_saved", m.release_saved != nil)]) {
                throw refuse("\(named) router methods lack \(names)")
            }
        case .encoderAdapter:
            guard let methods = adapter else { throw refuse("\(named) is an encoder adapter but has no adapter methods") }
            try requireSize(Int(methods.pointee.size), of: ph_adapter_methods.self, "\(named): ph_adapter_methods", refuse)
            let m = methods.pointee
            if let names = missing([("hooks_site", m.hooks_site != nil), ("forward", m.forward != nil),
                                    ("backward", m.backward != nil), ("release_saved", m.release_saved != nil)]) {
                throw refuse("\(named) adapter methods lack \(names)")
            }
        }
    }
}

/// In ABI 1.0 every field of every plugin struct is required, so the size must cover the
/// whole 1.0 struct. A host of minor N > 0 will compare against the 1.0 size and read a
/// field added in minor M only when the size covers it.
func requireSize<T>(_ size: Int, of: T.Type, _ what: String, _ refuse: (String) -> PluginError) throws {
    let required = MemoryLayout<T>.size
    guard size >= required else {
        throw refuse("\(what).size is \(size) bytes but ABI \(PH_ABI_MAJOR).0 requires at least \(required); set it to sizeof() of the struct from the polyhead headers")
    }
}

/// Ids are what configs and checkpoints name, so they are restricted to [a-z0-9_.-].
func requireIdentifier(_ pointer: UnsafePointer<CChar>?, _ what: String, _ refuse: (String) -> PluginError) throws -> String {
    guard let pointer else { throw refuse("\(what) is NULL") }
    let value = String(cString: pointer)
    let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_.-")
    guard !value.isEmpty, value.count <= 128, value.allSatisfy({ allowed.contains($0) }),
          value.first != ".", value.last != "." else {
        throw refuse("\(what) \"\(value)\" is not a valid id (use 1 to 128 of a-z 0-9 _ . -, not starting or ending with a dot)")
    }
    return value
}

/// Versions are MAJOR.MINOR.PATCH so a checkpoint can compare majors.
func requireVersion(_ pointer: UnsafePointer<CChar>?, _ what: String, _ refuse: (String) -> PluginError) throws -> String {
    guard let pointer else { throw refuse("\(what) is NULL") }
    let value = String(cString: pointer)
    let parts = value.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) else {
        throw refuse("\(what) \"\(value)\" is not MAJOR.MINOR.PATCH (e.g. \"1.0.0\")")
    }
    return value
}
