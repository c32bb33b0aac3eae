import CPolyhead
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where plugins are looked for, in order: `--plugin-path` entries, then
/// `POLYHEAD_PLUGIN_PATH`, then the plugins built with the package (next to the running
/// executable, or in ../lib/polyhead when installed). Each entry is a directory (every
/// lib*.so / *.so / *.dylib in it that exports the entry function) or a plugin file.
public struct PluginSearchPath: Sendable, Equatable {
    public var entries: [String]

    public init(entries: [String]) { self.entries = entries }

    /// - Parameters:
    ///   - commandLine: values of `--plugin-path` (each may hold several entries joined by ":").
    ///   - environment: the process environment (POLYHEAD_PLUGIN_PATH is read from it).
    ///   - includePackaged: whether to add the package's own plugin directory.
    public static func resolve(commandLine: [String] = [], environment: [String: String] = ProcessInfo.processInfo.environment,
                               includePackaged: Bool = true) -> PluginSearchPath {
        var entries: [String] = []
        for value in commandLine + [environment["POLYHEAD_PLUGIN_PATH"] ?? ""] {
            entries += value.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        }
        if includePackaged { entries += packagedDirectories() }
        return PluginSearchPath(entries: entries)
    }

    /// The running executable's directory (where `swift build` puts lib<Plugin>.so) and
    /// <prefix>/lib/polyhead for an installed `<prefix>/bin/polyhead`.
    public static func packagedDirectories() -> [String] {
        guard let executable = executablePath() else { return [] }
        let directory = (executable as NSString).deletingLastPathComponent
        let installed = ((directory as NSString).deletingLastPathComponent as NSString).appendingPathComponent("lib/polyhead")
        return [directory, installed].filter { FileManager.default.fileExists(atPath: $0) }
    }

    static func executablePath() -> String? {
        #if os(Linux)
        return try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        #else
        return Bundle.main.executablePath
        #endif
    }

    /// Plugin candidate files, in search order. Directories are listed sorted by name.
    func candidateFiles() -> [String] {
        var files: [String] = []
        for entry in entries {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: entry, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: entry)) ?? []
                files += names.filter { $0.hasSuffix(".so") || $0.hasSuffix(".dylib") }.sorted()
                    .map { (entry as NSString).appendingPathComponent($0) }
            } else {
                files.append(entry)
            }
        }
        return files
    }
}

/// The plugins one polyhead run uses: loaded from a search path, checked, with their
/// components indexed by id. Refusals are kept (not thrown) during a scan so one bad file
/// does not stop the others; asking for something a refused file would have provided
/// names the refusal.
public final class PluginRegistry: @unchecked Sendable {
    public private(set) var plugins: [LoadedPlugin] = []
    /// One-line reasons, one per refused file or component.
    public private(set) var refusals: [PluginError] = []
    private var componentsByID: [String: Component] = [:]
    private var loadedRealPaths: Set<String> = []

    public init() {}

    /// Loads every plugin on the search path; files that do not export the entry function
    /// are skipped when found in a directory (they are not plugins), refused when named.
    public func load(searchPath: PluginSearchPath) {
        var namedFiles = Set<String>()
        for entry in searchPath.entries {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: entry, isDirectory: &isDirectory), !isDirectory.boolValue {
                namedFiles.insert(entry)
            } else if !FileManager.default.fileExists(atPath: entry) {
                refusals.append(PluginError(.refused, "\(entry): plugin path entry does not exist"))
            }
        }
        for file in searchPath.candidateFiles() {
            if !namedFiles.contains(file), ELFSymbols.lookupIfELF(PH_ENTRY_SYMBOL, in: file) == .absent { continue }
            do {
                try load(file: file)
            } catch let error as PluginError {
                refusals.append(error)
            } catch {
                refusals.append(PluginError(.refused, "\(file): \(error)"))
            }
        }
    }

    /// Loads one plugin file (once per process; a second registry gets the same plugin)
    /// and registers its components.
    /// - Throws: PluginError(.refused) or (.duplicateComponent) with a one-line reason.
    @discardableResult
    public func load(file: String) throws -> LoadedPlugin {
        let plugin = try ProcessPlugins.shared.load(file: file)
        if loadedRealPaths.contains(plugin.realPath) { return plugin }
        for component in plugin.components {
            if let existing = componentsByID[component.id] {
                throw PluginError(.duplicateComponent, "\(plugin.fileName): component id \"\(component.id)\" is already provided by \(existing.plugin.path); remove one of the two files from the plugin path")
            }
        }
        for component in plugin.components { componentsByID[component.id] = component }
        loadedRealPaths.insert(plugin.realPath)
        plugins.append(plugin)
        return plugin
    }

    public var components: [Component] { plugins.flatMap(\.components) }

    /// - Throws: PluginError(.notFound) listing what is loaded and what was refused.
    public func component(id: String) throws -> Component {
        if let component = componentsByID[id] { return component }
        throw PluginError(.notFound, "no loaded plugin provides component \"\(id)\"\(availability())")
    }

    /// A plugin by id, or the plugin that provides the component with that id.
    public func plugin(id: String) throws -> LoadedPlugin {
        if let plugin = plugins.first(where: { $0.id == id }) { return plugin }
        if let component = componentsByID[id] { return component.plugin }
        throw PluginError(.notFound, "no loaded plugin or component has id \"\(id)\"\(availability())")
    }

    /// "PLUGIN.FUNCTION", where PLUGIN is a plugin id or a component id of that plugin.
    public func extensionFunction(named qualifiedName: String) throws -> ExtensionFunction {
        guard let dot = qualifiedName.lastIndex(of: "."), dot != qualifiedName.startIndex,
              qualifiedName.index(after: dot) != qualifiedName.endIndex else {
            throw PluginError(.invalidRequest, "\"\(qualifiedName)\" is not PLUGIN.FUNCTION (e.g. polyhead.regression.huber)")
        }
        let owner = String(qualifiedName[..<dot]), name = String(qualifiedName[qualifiedName.index(after: dot)...])
        let plugin = try self.plugin(id: owner)
        guard let function = plugin.extensionFunctions.first(where: { $0.name == name }) else {
            let known = plugin.extensionFunctions.map(\.name)
            throw PluginError(.notFound, "plugin \"\(plugin.id)\" (\(plugin.fileName)) has no extension function \"\(name)\"; it has: \(known.isEmpty ? "none" : known.joined(separator: ", "))")
        }
        return function
    }

    private func availability() -> String {
        let loaded = componentsByID.keys.sorted()
        var text = "; loaded: \(loaded.isEmpty ? "none" : loaded.joined(separator: ", "))"
        if !refusals.isEmpty { text += "; refused: " + refusals.map(\.description).joined(separator: " | ") }
        return text + " (add the plugin's directory with --plugin-path or POLYHEAD_PLUGIN_PATH)"
    }
}

extension ELFSymbols {
    /// Like lookup, but a non-ELF file (e.g. a Mach-O dylib) counts as a candidate.
    static func lookupIfELF(_ name: String, in path: String) -> ExportedSymbol {
        #if os(Linux)
        return lookup(name, in: path)
        #else
        return .function
        #endif
    }
}

/// Plugins loaded in this process, by real path: a file's entry function runs once, and a
/// refusal is remembered, since the library can never be unloaded.
final class ProcessPlugins: @unchecked Sendable {
    static let shared = ProcessPlugins()
    private let lock = NSLock()
    private var results: [String: Result<LoadedPlugin, PluginError>] = [:]

    func load(file: String) throws -> LoadedPlugin {
        let fileName = (file as NSString).lastPathComponent
        guard FileManager.default.fileExists(atPath: file) else {
            throw PluginError(.refused, "\(file): no such plugin file")
        }
        let realPath = URL(fileURLWithPath: file).standardizedFileURL.resolvingSymlinksInPath().path
        lock.lock()
        defer { lock.unlock() }
        if let result = results[realPath] { return try result.get() }
        let result: Result<LoadedPlugin, PluginError>
        do {
            result = .success(try ProcessPlugins.open(file: file, realPath: realPath, fileName: fileName))
        } catch let error as PluginError {
            result = .failure(error)
        } catch {
            result = .failure(PluginError(.refused, "\(fileName): \(error)"))
        }
        results[realPath] = result
        return try result.get()
    }

    private static func open(file: String, realPath: String, fileName: String) throws -> LoadedPlugin {
        #if os(Linux)
        switch ELFSymbols.lookup(PH_ENTRY_SYMBOL, in: realPath) {
        case .notELF:
            throw PluginError(.refused, "\(fileName): not a 64-bit ELF shared library; build the plugin with -shared -fPIC (or as a SwiftPM .dynamic library)")
        case .absent:
            throw PluginError(.refused, "\(fileName): exports no \(PH_ENTRY_SYMBOL) function, so it is not a Polyhead plugin; export one (PH_EXPORT in C, @_cdecl in Swift; see docs/writing-a-plugin.md)")
        case .data:
            throw PluginError(.refused, "\(fileName): \(PH_ENTRY_SYMBOL) is a data symbol, not a function; define it as the ph_entry_function in polyhead/plugin.h")
        case .function:
            break
        }
        #endif
        // RTLD_NOW: a missing symbol fails here, not in the middle of training.
        // RTLD_LOCAL: two plugins' private symbols never interpose each other.
        // RTLD_NODELETE: the image stays even if something calls dlclose; unloading a Swift
        // image crashes the Swift runtime's conformance cache, so plugins are never unloaded.
        guard let handle = dlopen(realPath, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
            throw PluginError(.refused, "\(fileName): cannot be loaded: \(oneLine(reason)); check its dependencies with ldd")
        }
        guard let symbol = dlsym(handle, PH_ENTRY_SYMBOL) else {
            throw PluginError(.refused, "\(fileName): exports no \(PH_ENTRY_SYMBOL) function, so it is not a Polyhead plugin; export one (PH_EXPORT in C, @_cdecl in Swift; see docs/writing-a-plugin.md)")
        }
        let entry = unsafeBitCast(symbol, to: ph_entry_function.self)
        var table: UnsafePointer<ph_plugin>? = nil
        let collector = ErrorCollector()
        let status = withExtendedLifetime(collector) { entry(HostTables.host, &table, collector.sink) }
        if status != PH_STATUS_OK {
            let detail = collector.message.map { oneLine($0) } ?? "status \(status) (\(statusName(status))) without a message"
            throw PluginError(.refused, "\(fileName): the plugin refused to load: \(detail)")
        }
        guard let table else {
            throw PluginError(.refused, "\(fileName): \(PH_ENTRY_SYMBOL) returned OK but no plugin table; set *out_plugin")
        }
        return try LoadedPlugin(path: file, realPath: realPath, table: table)
    }
}
