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

/// The shared encoder and one plugin head per task: everything a checkpoint holds.
public final class MultiTaskModel {
    public let encoder: BertEncoder
    public let tokenizer: BertTokenizer
    /// Where the tokenizer files come from (copied into every checkpoint).
    public let tokenizerDirectory: URL
    public private(set) var heads: [TaskHead] = []
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
                                        inputWidth: encoder.config.hiddenSize, seed: seed)
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
                                        inputWidth: encoder.config.hiddenSize)
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
