import ArgumentParser
import Foundation
import PluginHost

/// `polyhead plugins list | inspect | call`: what the plugin search path provides.
struct PluginsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugins",
        abstract: "List, inspect and call the plugins on the plugin search path.",
        discussion: """
            Plugins are found in, in order: each --plugin-path, the directories (or files) in \
            POLYHEAD_PLUGIN_PATH (colon-separated), and the plugins built with polyhead.
            """,
        subcommands: [List.self, Inspect.self, Call.self]
    )
}

/// The plugin search path options every command that loads plugins shares.
struct PluginPathOptions: ParsableArguments {
    @Option(name: .customLong("plugin-path"), help: ArgumentHelp("A plugin directory or file, searched first (repeatable; ':' separates several).", valueName: "path"))
    var pluginPaths: [String] = []

    /// Loads every plugin on the search path; refusals are kept in the registry.
    func loadRegistry() -> PluginRegistry {
        let registry = PluginRegistry()
        registry.load(searchPath: PluginSearchPath.resolve(commandLine: pluginPaths))
        return registry
    }
}

/// Refusals go to standard error, one line each, so a broken plugin never hides.
private func reportRefusals(_ registry: PluginRegistry) {
    for refusal in registry.refusals {
        FileHandle.standardError.write(Data("refused: \(refusal.description)\n".utf8))
    }
}

/// Pads columns to the widest cell.
private func table(_ rows: [[String]]) -> String {
    guard let columns = rows.map(\.count).max() else { return "" }
    let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
    return rows.map { row in
        row.enumerated().map { column, cell in
            column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }.joined(separator: "\n")
}

extension PluginsCommand {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the components of every loaded plugin, and refused files.")

        @OptionGroup var paths: PluginPathOptions

        func run() throws {
            let registry = paths.loadRegistry()
            var rows = [["COMPONENT", "VERSION", "KIND", "FILE", "NAME"]]
            for plugin in registry.plugins {
                for component in plugin.components {
                    rows.append([component.id, component.version, component.kind.rawValue, plugin.path, component.name])
                }
            }
            print(registry.plugins.isEmpty ? "no plugins found on the plugin path" : table(rows))
            reportRefusals(registry)
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a plugin's components, versions, parameters and extension functions.",
            discussion: "ID is a component id (polyhead.classification) or a plugin id (polyhead.heads.classification). Parameters depend on the config: each component is created once from its example config, or from --config.")

        @Argument(help: "A component id or plugin id.")
        var id: String

        @Option(help: "A JSON config to create the component with (instead of its example config).")
        var config: String?

        @Option(help: "The encoder hidden size the parameters are shaped for.")
        var hiddenSize: Int = 384

        @OptionGroup var paths: PluginPathOptions

        func run() throws {
            let registry = paths.loadRegistry()
            reportRefusals(registry)
            let plugin = try registry.plugin(id: id)
            let components = plugin.components.filter { $0.id == id || plugin.id == id }
            print("plugin \(plugin.id) \(plugin.version): \(plugin.name)")
            print("  file       \(plugin.path)")
            print("  ABI        \(plugin.abiMajor).\(plugin.abiMinor)")
            print("  toolchain  \(plugin.swiftToolchain ?? "none (no Swift runtime)")")
            for component in components {
                print("")
                print("component \(component.id) \(component.version) (\(component.kind.rawValue)): \(component.name)")
                if !component.summary.isEmpty { print("  \(component.summary)") }
                let configText = config ?? component.exampleConfig
                print("  config     \(configText)")
                do {
                    print(try describe(component, config: configText))
                } catch {
                    print("  parameters unavailable: \(error)")
                }
            }
            if !plugin.extensionFunctions.isEmpty {
                print("")
                print("extension functions (polyhead plugins call \(plugin.id).NAME ARGS...):")
                print(table(plugin.extensionFunctions.map { ["  \($0.name)", $0.signature, $0.summary] }))
            }
        }

        /// Creates the component once to list what it declares.
        private func describe(_ component: Component, config: String) throws -> String {
            let parameters: ParameterBlock
            var lines: [String] = []
            switch component.kind {
            case .taskHead:
                let head = try HeadInstance(component: component, name: "inspect", configJSON: config, inputWidth: hiddenSize)
                let layout = head.layout
                let unit = layout.targetsAreIndices ? "class index" : "number"
                let targets = layout.targetWidth == 1 ? "one \(unit)" : "\(layout.targetWidth) \(unit == "number" ? "numbers" : "class indices")"
                lines.append("  layout     one output row per \(layout.granularity == .token ? "token" : "sequence"), \(layout.outputWidth) outputs; targets: \(targets) per row")
                parameters = head.parameters
            case .router:
                let router = try RouterInstance(component: component, name: "inspect", configJSON: config, inputWidth: hiddenSize, taskNames: ["task_a", "task_b"])
                lines.append("  output width \(router.outputWidth) (created for two tasks)")
                parameters = router.parameters
            case .encoderAdapter:
                let sites = bertSites(hiddenSize: hiddenSize)
                let adapter = try AdapterInstance(component: component, name: "inspect", configJSON: config, inputWidth: hiddenSize, sites: sites)
                lines.append("  hooks      \(adapter.hookedSites.map { sites[$0].name }.joined(separator: ", ")) (of one BERT layer)")
                parameters = adapter.parameters
            }
            lines.append("  parameters (hidden size \(hiddenSize), \(parameters.count) values):")
            let rows = parameters.parameters.map { parameter -> [String] in
                var flags = [parameter.trainable ? "trainable" : "buffer"]
                if parameter.noDecay { flags.append("no decay") }
                return ["    \(parameter.name)", "[" + parameter.shape.map(String.init).joined(separator: ", ") + "]",
                        parameter.initializer.text, flags.joined(separator: ", ")]
            }
            lines.append(rows.isEmpty ? "    none" : table(rows))
            return lines.joined(separator: "\n")
        }

        /// The linear layers of one BERT layer, as the encoder offers them to adapters.
        private func bertSites(hiddenSize: Int) -> [LinearSite] {
            let prefix = "encoder.layer.0."
            return [("attention.self.query", hiddenSize, hiddenSize), ("attention.self.key", hiddenSize, hiddenSize),
                    ("attention.self.value", hiddenSize, hiddenSize), ("attention.output.dense", hiddenSize, hiddenSize),
                    ("intermediate.dense", hiddenSize, 4 * hiddenSize), ("output.dense", 4 * hiddenSize, hiddenSize)]
                .map { LinearSite(name: prefix + $0.0, inFeatures: $0.1, outFeatures: $0.2) }
        }
    }

    struct Call: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Call a plugin's extension function.",
            discussion: """
                Arguments follow the function's signature: i and l integers, f and d numbers, \
                s strings, t tensors written as JSON arrays of numbers ("[[1,2],[3,4]]"). A function \
                taking a pointer (p) can only be called from a run config. Example:
                  polyhead plugins call polyhead.regression.huber 2.5 1 1
                """)

        @Argument(help: "PLUGIN.FUNCTION, where PLUGIN is a plugin id or one of its component ids.")
        var function: String

        @Argument(parsing: .allUnrecognized, help: "The function's arguments.")
        var arguments: [String] = []

        @OptionGroup var paths: PluginPathOptions

        func run() throws {
            let registry = paths.loadRegistry()
            let extensionFunction: ExtensionFunction
            do {
                extensionFunction = try registry.extensionFunction(named: function)
            } catch {
                reportRefusals(registry)
                throw error
            }
            let result = try extensionFunction.call(extensionFunction.arguments(fromCommandLine: arguments))
            if result != .void { print(result.text) }
        }
    }
}
