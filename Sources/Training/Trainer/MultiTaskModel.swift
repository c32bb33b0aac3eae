import Encoder
import Foundation
import Kernels
import PluginHost
import SafeTensors
import Tokenizers

/// A head plugin's host-allocated parameters, as the optimizer sees them.
final class HeadParameterStorage: ParameterStorage {
    let block: ParameterBlock
    init(_ block: ParameterBlock) { self.block = block }
    var parameterCount: Int { block.values.count }
    var parameterValues: UnsafeMutablePointer<Float> { block.values.baseAddress ?? UnsafeMutablePointer(mutating: emptyStorage) }
    var parameterGradients: UnsafeMutablePointer<Float> { block.gradients.baseAddress ?? UnsafeMutablePointer(mutating: emptyStorage) }
}
private nonisolated(unsafe) let emptyStorage = UnsafeMutablePointer<Float>.allocate(capacity: 1)

extension LossWeightingParameters: ParameterStorage {}

/// One task's head: the plugin instance and what the host knows about its task.
public struct TaskHead {
    public let task: String
    public let type: TaskType
    public let labelNames: [String]
    public let instance: HeadInstance
    /// The options the instance was created with (the config's, plus labels and class weights).
    public let optionsJSON: String

    var isTokenLevel: Bool { instance.layout.granularity == .token }
}

/// An encoder adapter plugin instance (e.g. polyhead.lora) shared by the tasks naming it.
public struct ModelAdapter {
    public let name: String
    public let instance: AdapterInstance
    /// What the encoder calls at the sites the instance hooks.
    public let encoderAdapter: PluginEncoderAdapter
    public let optionsJSON: String
    /// The tasks whose rows the adapter applies to; empty: every task (checkpoints written
    /// before per-task adapters).
    public let taskNames: [String]

    func applies(to task: String) -> Bool { taskNames.isEmpty || taskNames.contains(task) }
}

/// Tasks whose rows go through the encoder together because the same adapters apply to them.
/// Tasks with different adapters need separate encoder passes (an adapter changes every
/// layer above the one it hooks).
public struct EncoderPasses {
    /// Per pass, the adapters hooking the encoder (none for tasks without an adapter).
    public let adapters: [[EncoderAdapter]]
    /// Per task (in the order given), the index of its pass.
    public let passOfTask: [Int]
}

/// A router plugin instance (e.g. polyhead.mmoe) between the encoder and the heads of the
/// tasks naming it; a task's index is its position in `instance.taskNames`.
public struct ModelRouter {
    public let name: String
    public let instance: RouterInstance
    public let optionsJSON: String
}

/// The shared encoder and one plugin head per task: everything a checkpoint holds.
public final class MultiTaskModel {
    public let encoder: BertEncoder
    public let tokenizer: BertTokenizer
    /// Where the tokenizer files come from (copied into every checkpoint).
    public let tokenizerDirectory: URL
    public private(set) var heads: [TaskHead] = []
    /// Adapters hooking the encoder, one instance per adapter name, each for its tasks' rows.
    public private(set) var adapters: [ModelAdapter] = []
    public private(set) var routers: [ModelRouter] = []
    public let registry: PluginRegistry

    init(encoder: BertEncoder, tokenizer: BertTokenizer, tokenizerDirectory: URL, registry: PluginRegistry) {
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.tokenizerDirectory = tokenizerDirectory
        self.registry = registry
    }

    /// Loads an encoder directory (a Hugging Face checkpoint) and its tokenizer, and the plugins.
    /// - Returns: the model (no heads yet) and the checkpoint tensors it ignored, to report.
    public static func loadEncoder(directory: URL, pluginPaths: [String]) throws -> (MultiTaskModel, [IgnoredTensor]) {
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("config.json").path) else {
            throw TrainerError.missingFile(directory.appendingPathComponent("config.json").path, "the encoder's config")
        }
        let (encoder, ignored) = try BertEncoder.load(modelDirectory: directory)
        let tokenizer = try BertTokenizer(modelDirectory: directory)
        let registry = PluginRegistry()
        registry.load(searchPath: PluginSearchPath.resolve(commandLine: pluginPaths))
        return (MultiTaskModel(encoder: encoder, tokenizer: tokenizer, tokenizerDirectory: directory, registry: registry), ignored)
    }

    public func head(named task: String) -> TaskHead? { heads.first { $0.task == task } }

    /// The encoder passes `tasks` need: one per distinct set of adapters, numbered in order of
    /// first appearance (so a run whose tasks share one adapter, or use none, has one pass).
    public func encoderPasses(tasks: [String]) -> EncoderPasses {
        var keys: [[String]] = [], passes: [[EncoderAdapter]] = []
        let passOfTask = tasks.map { task in
            let used = adapters.filter { $0.applies(to: task) }
            let key = used.map(\.name)
            if let index = keys.firstIndex(of: key) { return index }
            keys.append(key)
            passes.append(used.map(\.encoderAdapter))
            return keys.count - 1
        }
        return EncoderPasses(adapters: passes, passOfTask: passOfTask)
    }

    /// The router a task's features go through, and the task's index among its tasks.
    public func route(of task: String) -> (router: ModelRouter, index: Int)? {
        for router in routers {
            if let index = router.instance.taskNames.firstIndex(of: task) { return (router, index) }
        }
        return nil
    }

    /// The width of the features a task's head receives: its router's output, or the encoder's.
    func headInputWidth(task: String) -> Int { route(of: task)?.router.instance.outputWidth ?? encoder.config.hiddenSize }

    private func component(_ id: String, kind: ComponentKind) throws -> Component {
        let component = try registry.component(id: id)
        guard component.kind == kind else {
            throw PluginError(.invalidRequest, "\(id) is a \(component.kind.rawValue), not a \(kind.rawValue)")
        }
        return component
    }

    /// Creates an adapter instance over the encoder's linear layers, applied to the rows of
    /// `taskNames` (empty: every task).
    public func addAdapter(name: String, plugin: String, optionsJSON: String, taskNames: [String], seed: UInt64) throws {
        let instance = try AdapterInstance(component: component(plugin, kind: .encoderAdapter), name: name, configJSON: optionsJSON,
                                           inputWidth: encoder.config.hiddenSize,
                                           sites: PluginEncoderAdapter.sites(for: encoder.config), seed: seed)
        guard !instance.hookedSites.isEmpty else {
            throw PluginError(.invalidRequest, "adapter \(name) (\(plugin)) hooks none of the encoder's linear layers")
        }
        adapters.append(ModelAdapter(name: name, instance: instance, encoderAdapter: PluginEncoderAdapter(instance), optionsJSON: optionsJSON,
                                     taskNames: taskNames))
    }

    /// Creates a router instance shared by `taskNames` (in that task index order).
    public func addRouter(name: String, plugin: String, optionsJSON: String, taskNames: [String], seed: UInt64) throws {
        let instance = try RouterInstance(component: component(plugin, kind: .router), name: name, configJSON: optionsJSON,
                                          inputWidth: encoder.config.hiddenSize, taskNames: taskNames, seed: seed)
        routers.append(ModelRouter(name: name, instance: instance, optionsJSON: optionsJSON))
    }

    /// The loaded plugin component a task's config names as its head.
    /// - Throws: `ConfigError` at the task's `head` naming the task and what is loaded.
    public func headComponent(for task: TaskConfig) throws -> Component {
        do {
            return try registry.component(id: task.head.plugin)
        } catch let error as PluginError {
            throw task.head.location.error("task \(task.name): \(error)")
        }
    }

    /// Creates a fresh head for a task of the run config.
    /// - Parameters:
    ///   - labelNames: the task's classes (empty for regression); the head receives them as "labels".
    ///   - classWeights: per-class loss weights in label order, passed as "class_weights".
    public func addHead(task: TaskConfig, labelNames: [String], outputCount: Int?, classWeights: [Float]?, seed: UInt64) throws {
        var options = task.head.options
        if task.type.hasClasses, options["labels"] == nil {
            options["labels"] = .array(labelNames.map { .string($0) })
        }
        if let classWeights, options["class_weights"] == nil {
            options["class_weights"] = .array(classWeights.map { .number(Double($0)) })
        }
        if task.type == .regression, let outputCount, outputCount > 1, options["outputs"] == nil {
            options["outputs"] = .integer(outputCount)
        }
        let component = try headComponent(for: task)
        let optionsJSON = JSONNode.object(options).jsonText
        let instance = try HeadInstance(component: component, name: task.name, configJSON: optionsJSON,
                                        inputWidth: headInputWidth(task: task.name), seed: seed)
        heads.append(TaskHead(task: task.name, type: task.type, labelNames: labelNames, instance: instance, optionsJSON: optionsJSON))
    }

    /// Recreates a trained head from its checkpoint folder: the same plugin, options and weights.
    public func addHead(_ loaded: LoadedHead) throws {
        let manifest = loaded.manifest
        guard manifest.encoderHiddenSize == encoder.config.hiddenSize else {
            throw TrainerError.headMismatch(task: manifest.task, message:
                "trained on an encoder with hidden size \(manifest.encoderHiddenSize), this encoder has \(encoder.config.hiddenSize)")
        }
        guard let type = TaskType(rawValue: manifest.taskType) else {
            throw TrainerError.headMismatch(task: manifest.task, message: "unknown task type \"\(manifest.taskType)\" in its manifest")
        }
        let component: Component
        do {
            component = try registry.component(id: manifest.pluginID)
        } catch let error as PluginError {
            throw TrainerError.headMismatch(task: manifest.task, message: "its head was made by plugin component \"\(manifest.pluginID)\" \(manifest.pluginVersion): \(error)")
        }
        let optionsJSON = String(decoding: try manifest.options.jsonData(), as: UTF8.self)
        let instance = try HeadInstance(component: component, name: manifest.task, configJSON: optionsJSON,
                                        inputWidth: headInputWidth(task: manifest.task))
        for parameter in instance.parameters.parameters {
            try loaded.weights.copyFloats(parameter.name, into: instance.parameters.values(of: parameter))
        }
        heads.append(TaskHead(task: manifest.task, type: type, labelNames: manifest.labelNames, instance: instance, optionsJSON: optionsJSON))
    }

    /// The optimizer's view of the encoder, the heads and (if it learns) the loss weighting.
    func parameterGroups(optimizer settings: OptimizerSettings, encoderGradients: FloatBuffer,
                         trainable: TrainableParameters, lossWeighting: LossWeightingParameters?) -> [ParameterGroup] {
        func group(_ name: String, _ parameters: [ParameterRange]) -> ParameterGroup {
            let chosen = settings.group(named: name)
            return ParameterGroup(name: name, learningRate: chosen?.learningRate ?? settings.learningRate,
                                  weightDecay: chosen?.weightDecay ?? settings.weightDecay, parameters: parameters)
        }
        let encoderStorage = FlatParameterStorage(wrapping: encoder.parameters, gradients: encoderGradients)
        var groups = [group("encoder", encoder.layout.views.enumerated().map { index, view in
            ParameterRange(name: view.name, storage: encoderStorage, range: view.range, trainable: trainable.flags[index])
        })]
        groups.append(group("heads", heads.flatMap { head -> [ParameterRange] in
            let storage = HeadParameterStorage(head.instance.parameters)
            return head.instance.parameters.parameters.map { parameter in
                ParameterRange(name: "heads.\(head.task).\(parameter.name)", storage: storage,
                               range: parameter.offset..<(parameter.offset + parameter.count),
                               appliesWeightDecay: !parameter.noDecay, trainable: parameter.trainable)
            }
        }))
        func componentRanges(_ prefix: String, _ block: ParameterBlock) -> [ParameterRange] {
            let storage = HeadParameterStorage(block)
            return block.parameters.map { parameter in
                ParameterRange(name: "\(prefix).\(parameter.name)", storage: storage,
                               range: parameter.offset..<(parameter.offset + parameter.count),
                               appliesWeightDecay: !parameter.noDecay, trainable: parameter.trainable)
            }
        }
        if !routers.isEmpty {
            groups.append(group("routers", routers.flatMap { componentRanges("routers.\($0.name)", $0.instance.parameters) }))
        }
        if !adapters.isEmpty {
            groups.append(group("adapters", adapters.flatMap { componentRanges("adapters.\($0.name)", $0.instance.parameters) }))
        }
        if let lossWeighting {
            groups.append(group(LossWeightingParameters.groupName, lossWeighting.names.enumerated().map { index, name in
                ParameterRange(name: "\(LossWeightingParameters.groupName).\(name)", storage: lossWeighting,
                               range: index..<(index + 1), appliesWeightDecay: false)
            }))
        }
        return groups
    }

    /// The checkpoint form of every head: manifest and weights.
    func headSnapshots() throws -> [HeadSnapshot] {
        try heads.map { head in
            let plugin = head.instance.component.plugin
            let manifest = HeadManifest(
                task: head.task, pluginID: head.instance.component.id, pluginVersion: head.instance.component.version,
                abiVersion: ABIVersion(major: plugin.abiMajor, minor: plugin.abiMinor),
                componentKind: head.instance.component.kind.shortName, taskType: head.type.rawValue,
                options: try ManifestJSON(jsonData: Data(head.optionsJSON.utf8)), labelNames: head.labelNames)
            let tensors = head.instance.parameters.parameters.map { parameter in
                NamedTensor(parameter.name, shape: parameter.shape, floats: Array(head.instance.parameters.values(of: parameter)))
            }
            return HeadSnapshot(manifest: manifest, tensors: tensors)
        }
    }

    /// Writes the encoder of a checkpoint: the weights in Hugging Face's names and layout,
    /// and `config.json` copied from the base model directory unchanged, so that
    /// `AutoModel.from_pretrained` loads the directory.
    static func encoderWriter(_ encoder: BertEncoder, configFrom baseModel: URL) -> (URL) throws -> Void {
        { directory in
            try encoder.saveWeights(to: directory.appendingPathComponent("model.safetensors"))
            let configData = try Data(contentsOf: baseModel.appendingPathComponent("config.json"))
            try configData.write(to: directory.appendingPathComponent("config.json"))
        }
    }

    // MARK: - Routers and adapters in checkpoints

    // A checkpoint's folders beside `encoder/` and `heads/` (CheckpointLayout):
    // `adapters/<name>/` holds the adapter's component folder (`manifest.json` with
    // component_kind "adapter", `weights.safetensors`; its `label_names` are the tasks it
    // applies to) and its PEFT export (`adapter_config.json`, `adapter_model.safetensors`);
    // `routers/<name>/` the router's component folder, whose manifest's `label_names` are the
    // tasks it serves in task index order.

    private func componentManifest(_ component: Component, name: String, optionsJSON: String, taskNames: [String]) throws -> HeadManifest {
        HeadManifest(task: name, pluginID: component.id, pluginVersion: component.version,
                     abiVersion: ABIVersion(major: component.plugin.abiMajor, minor: component.plugin.abiMinor),
                     componentKind: component.kind.shortName, taskType: component.kind.shortName,
                     options: try ManifestJSON(jsonData: Data(optionsJSON.utf8)), labelNames: taskNames,
                     encoderHiddenSize: encoder.config.hiddenSize)
    }

    private static func tensors(_ block: ParameterBlock) -> [NamedTensor] {
        block.parameters.map { NamedTensor($0.name, shape: $0.shape, floats: Array(block.values(of: $0))) }
    }

    /// Writes the encoder (as `encoderWriter`), then the routers' and adapters' folders beside
    /// it in the checkpoint being built, and each adapter's PEFT export.
    func checkpointWriter(configFrom baseModel: URL) -> (URL) throws -> Void {
        let writeEncoder = Self.encoderWriter(encoder, configFrom: baseModel)
        return { [self] directory in
            try writeEncoder(directory)
            guard !routers.isEmpty || !adapters.isEmpty else { return }
            let checkpoint = directory.deletingLastPathComponent()
            let checksum = try SHA256.hash(fileAt: directory.appendingPathComponent("model.safetensors")).hexString
            for router in routers {
                var manifest = try componentManifest(router.instance.component, name: router.name, optionsJSON: router.optionsJSON,
                                                     taskNames: router.instance.taskNames)
                manifest.encoderSHA256 = checksum
                try HeadFolder.write(manifest: manifest, tensors: Self.tensors(router.instance.parameters),
                                     to: checkpoint.appendingPathComponent(CheckpointLayout.routersDirectory).appendingPathComponent(router.name))
            }
            for adapter in adapters {
                var manifest = try componentManifest(adapter.instance.component, name: adapter.name, optionsJSON: adapter.optionsJSON,
                                                     taskNames: adapter.taskNames)
                manifest.encoderSHA256 = checksum
                let folder = checkpoint.appendingPathComponent(CheckpointLayout.adaptersDirectory).appendingPathComponent(adapter.name)
                try HeadFolder.write(manifest: manifest, tensors: Self.tensors(adapter.instance.parameters), to: folder)
                try PEFTAdapterFormat.export(adapter.instance, to: folder, baseModel: baseModel.path)
            }
        }
    }

    private static func copyWeights(_ folder: LoadedHead, into block: ParameterBlock) throws {
        for parameter in block.parameters {
            try folder.weights.copyFloats(parameter.name, into: block.values(of: parameter))
        }
    }

    /// Recreates the routers and adapters a checkpoint holds (before its heads, whose input
    /// width a router sets).
    func addComponents(from checkpoint: URL) throws {
        for folder in try HeadFolder.readAll(in: checkpoint, kind: CheckpointLayout.routersDirectory) {
            let manifest = folder.manifest
            try addRouter(name: manifest.task, plugin: manifest.pluginID, optionsJSON: String(decoding: try manifest.options.jsonData(), as: UTF8.self),
                          taskNames: manifest.labelNames, seed: 0)
            try Self.copyWeights(folder, into: routers[routers.count - 1].instance.parameters)
        }
        for folder in try HeadFolder.readAll(in: checkpoint, kind: CheckpointLayout.adaptersDirectory) {
            let manifest = folder.manifest
            try addAdapter(name: manifest.task, plugin: manifest.pluginID, optionsJSON: String(decoding: try manifest.options.jsonData(), as: UTF8.self),
                           taskNames: manifest.labelNames, seed: 0)
            try Self.copyWeights(folder, into: adapters[adapters.count - 1].instance.parameters)
        }
    }

    /// Puts the routers' and adapters' weights of a checkpoint back (resume).
    func restoreComponentWeights(from checkpoint: URL) throws {
        let routerFolders = try HeadFolder.readAll(in: checkpoint, kind: CheckpointLayout.routersDirectory)
        for router in routers {
            guard let folder = routerFolders.first(where: { $0.manifest.task == router.name }) else {
                throw TrainerError.resume("\(checkpoint.path) has no \(CheckpointLayout.routersDirectory)/\(router.name)/ for router \(router.name)")
            }
            try Self.copyWeights(folder, into: router.instance.parameters)
        }
        let adapterFolders = try HeadFolder.readAll(in: checkpoint, kind: CheckpointLayout.adaptersDirectory)
        for adapter in adapters {
            guard let folder = adapterFolders.first(where: { $0.manifest.task == adapter.name }) else {
                throw TrainerError.resume("\(checkpoint.path) has no \(CheckpointLayout.adaptersDirectory)/\(adapter.name)/ for adapter \(adapter.name)")
            }
            try Self.copyWeights(folder, into: adapter.instance.parameters)
        }
    }

    /// Loads a trained model directory: a checkpoint written by `polyhead train` (verified
    /// against its `checkpoint.json`), or a plain Hugging Face model directory with heads
    /// imported into `heads/<task>/`.
    /// - Parameter tasks: the heads to load (default: all); one the directory lacks is an error.
    public static func load(checkpoint directory: URL, pluginPaths: [String], tasks: [String]? = nil) throws -> MultiTaskModel {
        let layout = ModelDirectoryLayout(directory)
        let encoderDirectory: URL
        let heads: [LoadedHead]
        if try layout.checkpointManifest() != nil {
            let loaded = try CheckpointStore.load(directory: directory, verification: .full)
            (encoderDirectory, heads) = (loaded.encoderDirectory, loaded.heads)
        } else {
            encoderDirectory = try layout.encoderDirectory()
            heads = try layout.headTasks().sorted().map { task in
                let head = try HeadFolder.read(layout.headsDirectory.appendingPathComponent(task))
                guard head.manifest.task == task else {
                    throw CheckpointError.invalidHeadManifest(path: head.directory.appendingPathComponent(CheckpointLayout.headManifest).path,
                                                              reason: "task is '\(head.manifest.task)' but the folder is '\(task)'")
                }
                return head
            }
        }
        let (model, _) = try loadEncoder(directory: encoderDirectory, pluginPaths: pluginPaths)
        try model.addComponents(from: directory)
        for head in heads where tasks.map({ $0.contains(head.manifest.task) }) ?? true {
            try model.addHead(head)
        }
        if let tasks {
            let missing = tasks.filter { model.head(named: $0) == nil }
            guard missing.isEmpty else {
                throw CheckpointError.headNotFound(modelDirectory: directory.path, task: missing[0], available: heads.map(\.manifest.task))
            }
        }
        return model
    }
}
