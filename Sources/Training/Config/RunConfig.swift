import Foundation
import Yams

/// A training run as described by a YAML file (see docs/config.md for every key).
///
/// Decoding walks the YAML node tree so that any error names the file, the line and the key
/// path: `run.yaml:14: training.optimizer.lr: expected a number, got "fast"`. Unknown keys
/// are errors (with a did-you-mean), never ignored; every key that may be left out has a
/// default, listed in docs/config.md.
///
/// ```swift
/// let config = try RunConfig.load(file: "examples/wordnet/run.yaml")
/// for task in config.tasks { print(task.name, task.type, task.data.train) }
/// ```
public struct RunConfig: Sendable, Equatable {
    /// The config file as named when loading it; errors found later refer to it.
    public var file: String
    /// The pretrained encoder's directory (config.json, model.safetensors, vocab.txt).
    public var model: String
    /// Directories searched for plugin libraries, before the built-in ones.
    public var pluginPaths: [String]
    /// Token limit per example, special tokens included.
    public var maxLength: Int
    /// Where checkpoints, logs and metrics go.
    public var output: String
    /// Where tokenised data is cached between runs.
    public var cacheDirectory: String
    public var tasks: [TaskConfig]
    /// Routers shared by tasks, in the order declared.
    public var routers: [NamedComponent]
    /// Encoder adapters, in the order declared.
    public var adapters: [NamedComponent]
    public var training: TrainingSettings

    public func task(named name: String) -> TaskConfig? { tasks.first { $0.name == name } }

    static let topLevelKeys = ["model", "plugin_path", "max_length", "output", "cache_directory", "tasks", "routers", "adapters", "training"]
    static let taskKeys = ["name", "type", "head", "data", "fields", "labels", "metrics", "loss_weight", "sampling", "class_weights", "router", "adapter", "custom_metrics"]
    static let trainingKeys = ["steps", "epochs", "batch_size", "sampling", "mixing", "loss_weighting", "optimizer", "schedule",
                               "clip_norm", "gradient_accumulation", "eval_interval", "log_interval", "early_stopping", "seed", "skip_malformed_rows",
                               "freeze_encoder"]

    /// Reads and decodes a config file.
    /// - Parameter path: the YAML file; errors name it as written here.
    /// - Throws: `ConfigError` naming file, line and key path.
    public static func load(file path: String) throws -> RunConfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigError(file: path, line: nil, keyPath: "", message: "cannot read the config file (\(error.localizedDescription))",
                              hint: "check the path; it is relative to the current directory")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: nil, keyPath: "", message: "the file is not UTF-8 text")
        }
        return try parse(yaml: text, file: path)
    }

    /// Decodes a config from YAML text.
    /// - Parameters:
    ///   - yaml: the document.
    ///   - file: the name used in errors and for the default output directory.
    /// - Throws: `ConfigError` naming file, line and key path.
    public static func parse(yaml: String, file: String) throws -> RunConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw syntaxError(error, file: file)
        }
        guard let root else {
            throw ConfigError(file: file, line: nil, keyPath: "", message: "the config is empty", hint: "see docs/config.md for a full example")
        }
        return try RunConfigDecoder(file: file).decodeRoot(ConfigNode(node: root, keyPath: "", file: file))
    }

    static func syntaxError(_ error: YamlError, file: String) -> ConfigError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _), .composer(let context, let problem, let mark, _):
            let contextText = context.map { " (\($0.text) at line \($0.mark.line))" } ?? ""
            return ConfigError(file: file, line: mark.line, keyPath: "", message: "YAML syntax error: \(problem)\(contextText)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigError(file: file, line: context.mark.line, keyPath: "",
                               message: "duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) in one mapping",
                               hint: "keep one of them")
        default:
            return ConfigError(file: file, line: nil, keyPath: "", message: "YAML error: \(error)")
        }
    }
}

/// The decoding logic, one function per section.
struct RunConfigDecoder {
    let file: String

    func decodeRoot(_ root: ConfigNode) throws -> RunConfig {
        let mapping = try root.mapping()
        try mapping.rejectUnknownKeys(RunConfig.topLevelKeys)

        let model = try mapping["model"]?.string() ?? "models/all-MiniLM-L6-v2"
        let pluginPaths = try mapping["plugin_path"]?.sequenceOrScalar().map { try $0.string() } ?? []
        let maxLength = try mapping["max_length"]?.positiveInteger() ?? 128
        if maxLength < 3, let node = mapping["max_length"] {
            throw node.error("\(maxLength) leaves no room for text next to [CLS] and [SEP]", hint: "use at least 3 (typically 128)")
        }
        let stem = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        let output = try mapping["output"]?.string() ?? "runs/\(stem)"
        let cacheDirectory = try mapping["cache_directory"]?.string()
            ?? parentDirectory(of: output) + ".polyhead-cache"

        let routers = try decodeComponents(mapping["routers"])
        let adapters = try decodeComponents(mapping["adapters"])
        let tasksNode = try mapping.required("tasks", hint: "declare at least one task; see docs/config.md")
        let tasks = try decodeTasks(tasksNode, routers: routers, adapters: adapters)
        let training = try decodeTraining(mapping["training"], tasks: tasks, location: mapping.location(of: "training"))

        return RunConfig(file: file, model: model, pluginPaths: pluginPaths, maxLength: maxLength, output: output,
                         cacheDirectory: cacheDirectory, tasks: tasks, routers: routers, adapters: adapters, training: training)
    }

    // MARK: Components

    /// A component is a plugin id (`polyhead.lora`) or `{plugin: id, options: {...}}`.
    func decodeComponent(_ node: ConfigNode, defaultPlugin: String?) throws -> ComponentSettings {
        if case .scalar = node.node {
            return ComponentSettings(plugin: try node.string(), location: node.location)
        }
        let mapping = try node.mapping()
        try mapping.rejectUnknownKeys(["plugin", "options"])
        let plugin: String
        if let pluginNode = mapping["plugin"] {
            plugin = try pluginNode.string()
        } else if let defaultPlugin {
            plugin = defaultPlugin
        } else {
            plugin = try mapping.required("plugin", hint: "name the plugin component id").string()
        }
        var options = JSONObject()
        if let optionsNode = mapping["options"] {
            guard case .object(let object) = try optionsNode.jsonNode() else {
                throw optionsNode.error("expected a mapping of options, got \(optionsNode.shownValue)")
            }
            options = object
        }
        return ComponentSettings(plugin: plugin, options: options, location: node.location)
    }

    func decodeComponents(_ node: ConfigNode?) throws -> [NamedComponent] {
        guard let node else { return [] }
        return try node.mapping().entries.map { entry in
            try validateName(entry.key, node: entry.value, what: "component")
            return NamedComponent(name: entry.key, settings: try decodeComponent(entry.value, defaultPlugin: nil))
        }
    }

    func validateName(_ name: String, node: ConfigNode, what: String) throws {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "_-"))
        guard !name.isEmpty, name.unicodeScalars.allSatisfy({ allowed.contains($0) && $0.isASCII }) else {
            throw node.error("\(what) name '\(name)' may only contain letters, digits, '_' and '-'",
                             hint: "metrics are named \"task.metric\", so names cannot contain '.'")
        }
    }

    // MARK: Tasks

    /// Tasks come as a mapping keyed by name or as a list of mappings with a `name` key.
    func decodeTasks(_ node: ConfigNode, routers: [NamedComponent], adapters: [NamedComponent]) throws -> [TaskConfig] {
        var named: [(name: String, node: ConfigNode, nameNode: ConfigNode)] = []
        switch node.node {
        case .mapping:
            for entry in try node.mapping().entries { named.append((entry.key, entry.value, entry.value)) }
        case .sequence:
            for element in try node.sequence() {
                let mapping = try element.mapping()
                let nameNode = try mapping.required("name", hint: "each task in a list needs a name")
                named.append((try nameNode.string(), element, nameNode))
            }
        default:
            throw node.error("expected a mapping of tasks by name or a list of tasks, got \(node.shownValue)")
        }
        guard !named.isEmpty else { throw node.error("no tasks", hint: "declare at least one task") }
        var tasks: [TaskConfig] = []
        for (name, taskNode, nameNode) in named {
            try validateName(name, node: nameNode, what: "task")
            if tasks.contains(where: { $0.name == name }) {
                throw nameNode.error("task '\(name)' is declared twice", hint: "task names must be unique")
            }
            tasks.append(try decodeTask(name: name, node: taskNode, isListEntry: node.node.sequence != nil, routers: routers, adapters: adapters))
        }
        return tasks
    }

    func decodeTask(name: String, node: ConfigNode, isListEntry: Bool, routers: [NamedComponent], adapters: [NamedComponent]) throws -> TaskConfig {
        let mapping = try node.mapping()
        try mapping.rejectUnknownKeys(isListEntry ? RunConfig.taskKeys : RunConfig.taskKeys.filter { $0 != "name" })

        let type = try mapping["type"]?.choice(TaskType.self) ?? .classification
        let head = try mapping["head"].map { try decodeComponent($0, defaultPlugin: type.defaultHeadPlugin) }
            ?? ComponentSettings(plugin: type.defaultHeadPlugin, location: mapping.location(of: "head"))

        let dataNode = try mapping.required("data", hint: "give at least data.train, a .jsonl, .csv or .tsv file")
        let data = try decodeDataFiles(dataNode)
        let fields = try decodeFields(mapping["fields"], type: type)

        var labels: [String]?
        if let labelsNode = mapping["labels"] {
            guard type.hasClasses else {
                throw labelsNode.error("a regression task has no label set", hint: "remove 'labels' or change 'type'")
            }
            let elements = try labelsNode.sequence()
            var names: [String] = []
            for element in elements {
                let label = try element.string()
                if names.contains(label) { throw element.error("label '\(label)' is listed twice") }
                names.append(label)
            }
            guard !names.isEmpty else { throw labelsNode.error("the label set is empty", hint: "list the labels or remove the key to infer them") }
            labels = names
        }

        var metrics = MetricName.defaults(for: type)
        if let metricsNode = mapping["metrics"] {
            metrics = []
            for element in try metricsNode.sequenceOrScalar() {
                let metric = try element.choice(MetricName.self)
                guard metric.applies(to: type) else {
                    let usable = MetricName.allCases.filter { $0.applies(to: type) }.map(\.rawValue).joined(separator: ", ")
                    throw element.error("metric '\(metric.rawValue)' does not apply to a \(type.rawValue) task", hint: "use one of \(usable)")
                }
                if metrics.contains(metric) { throw element.error("metric '\(metric.rawValue)' is listed twice") }
                metrics.append(metric)
            }
            guard let first = metrics.first else { throw metricsNode.error("no metrics", hint: "list at least one, or remove the key for the defaults") }
            if !first.higherIsBetter {
                throw metricsNode.error("the first metric is the task's primary metric and must be one where higher is better, got '\(first.rawValue)'",
                                        hint: "put pearson or spearman first; '\(first.rawValue)' can follow")
            }
        }

        let lossWeight = try mapping["loss_weight"]?.nonNegativeDouble() ?? 1

        var sampling = TaskSamplingSettings()
        if let samplingNode = mapping["sampling"] {
            let samplingMapping = try samplingNode.mapping()
            try samplingMapping.rejectUnknownKeys(["oversample", "cap"])
            sampling.oversample = try samplingMapping["oversample"]?.positiveDouble() ?? 1
            sampling.cap = try samplingMapping["cap"]?.positiveInteger()
        }

        var classWeights = ClassWeightSetting.none
        if let weightsNode = mapping["class_weights"] {
            guard type != .regression else {
                throw weightsNode.error("class weights need classes; this is a regression task", hint: "remove 'class_weights'")
            }
            classWeights = try decodeClassWeights(weightsNode)
        }

        let router = try mapping["router"].map { try reference($0, among: routers, section: "routers") }
        let adapter = try mapping["adapter"].map { try reference($0, among: adapters, section: "adapters") }

        var customMetrics: [String] = []
        if let customNode = mapping["custom_metrics"] {
            for element in try customNode.sequenceOrScalar() {
                let name = try element.string()
                let parts = name.split(separator: ".", omittingEmptySubsequences: false)
                guard parts.count >= 2, !parts.contains(where: \.isEmpty) else {
                    throw element.error("'\(name)' is not a plugin function name", hint: "write PLUGIN.FUNCTION, as `polyhead plugins inspect` lists them")
                }
                if customMetrics.contains(name) { throw element.error("custom metric '\(name)' is listed twice") }
                customMetrics.append(name)
            }
        }

        return TaskConfig(name: name, type: type, head: head, data: data, fields: fields, labels: labels, metrics: metrics,
                          lossWeight: lossWeight, sampling: sampling, classWeights: classWeights, router: router, adapter: adapter,
                          customMetrics: customMetrics, location: node.location)
    }

    func reference(_ node: ConfigNode, among components: [NamedComponent], section: String) throws -> String {
        let name = try node.string()
        guard components.contains(where: { $0.name == name }) else {
            let names = components.map(\.name)
            let declared = names.isEmpty ? "none are declared; add it under '\(section)'" : "declared: \(names.joined(separator: ", "))"
            let suggestion = NameSuggestion.didYouMean(name, among: names)
            throw node.error("'\(name)' is not declared under '\(section)'", hint: [suggestion, declared].compactMap { $0 }.joined(separator: " "))
        }
        return name
    }

    func decodeDataFiles(_ node: ConfigNode) throws -> DataFiles {
        let mapping = try node.mapping()
        try mapping.rejectUnknownKeys(DataSplit.allCases.map(\.rawValue))
        func path(_ key: String) throws -> String? {
            guard let valueNode = mapping[key] else { return nil }
            let value = try valueNode.string()
            guard DataFormat(path: value) != nil else {
                throw valueNode.error("cannot tell the format of '\(value)'", hint: "name the file .jsonl, .csv or .tsv")
            }
            return value
        }
        _ = try mapping.required("train", hint: "every task needs a training file")
        guard let train = try path("train") else { throw mapping.location(of: "train").error("required key is missing") }
        return DataFiles(train: train, dev: try path("dev"), test: try path("test"))
    }

    func decodeFields(_ node: ConfigNode?, type: TaskType) throws -> FieldNames {
        var fields = FieldNames(label: type == .tokenClassification ? "labels" : "label",
                                words: type == .tokenClassification ? "words" : nil)
        guard let node else { return fields }
        let mapping = try node.mapping()
        try mapping.rejectUnknownKeys(["text", "text_pair", "label", "words"])
        if let text = mapping["text"] { fields.text = try text.string() }
        if let pair = mapping["text_pair"] { fields.textPair = try pair.string() }
        if let label = mapping["label"] { fields.label = try label.string() }
        if let words = mapping["words"] {
            guard type == .tokenClassification else {
                throw words.error("only token_classification tasks read words", hint: "remove 'words' or set type: token_classification")
            }
            fields.words = try words.string()
        }
        return fields
    }

    func decodeClassWeights(_ node: ConfigNode) throws -> ClassWeightSetting {
        if case .scalar = node.node {
            let name = try node.string()
            switch name {
            case "none": return .none
            case "balanced": return .balanced
            default:
                throw node.error("unknown value \(node.shownValue); expected none, balanced or a mapping from label to weight",
                                 hint: NameSuggestion.didYouMean(name, among: ["none", "balanced"]))
            }
        }
        let mapping = try node.mapping()
        let weights = try mapping.entries.map { entry in
            ExplicitClassWeight(label: entry.key, weight: try entry.value.nonNegativeDouble(), location: entry.value.location)
        }
        return .explicit(weights)
    }

    // MARK: Training

    func decodeTraining(_ node: ConfigNode?, tasks: [TaskConfig], location: ConfigLocation) throws -> TrainingSettings {
        let mapping = try node?.mapping()
        try mapping?.rejectUnknownKeys(RunConfig.trainingKeys)
        let at = { (key: String) in mapping?[key] }

        var length = TrainingLength.epochs(3)
        switch (at("steps"), at("epochs")) {
        case (let steps?, nil): length = .steps(try steps.positiveInteger())
        case (nil, let epochs?): length = .epochs(try epochs.positiveInteger())
        case (let steps?, _?): throw steps.error("both steps and epochs are set", hint: "keep one of them")
        case (nil, nil): break
        }

        let batchSize = try at("batch_size")?.positiveInteger() ?? 32
        let sampling = try at("sampling").map(decodeSampling) ?? .proportional
        let mixing = try at("mixing")?.choice(BatchMixing.self) ?? .mixed
        let lossWeighting = try decodeLossWeighting(at("loss_weighting"), location: mapping?.location(of: "loss_weighting") ?? location)
        let optimizer = try decodeOptimizer(at("optimizer"))
        let schedule = try decodeSchedule(at("schedule"))
        let clipNorm: Double?
        if let clipNode = at("clip_norm") { clipNorm = try clipNode.positiveDouble() } else { clipNorm = mapping?.contains("clip_norm") == true ? nil : 1.0 }
        let accumulation = try at("gradient_accumulation")?.positiveInteger() ?? 1
        let evalInterval = try at("eval_interval")?.positiveInteger()
        let logInterval = try at("log_interval")?.positiveInteger() ?? 50
        let earlyStopping = try decodeEarlyStopping(at("early_stopping"), tasks: tasks)
        let seedValue = try at("seed")?.nonNegativeInteger() ?? 42
        let skip = try at("skip_malformed_rows")?.bool() ?? false
        let freezeEncoder = try at("freeze_encoder")?.bool()

        return TrainingSettings(length: length, batchSize: batchSize, sampling: sampling, mixing: mixing, lossWeighting: lossWeighting,
                                optimizer: optimizer, schedule: schedule, clipNorm: clipNorm, gradientAccumulation: accumulation,
                                evalInterval: evalInterval, logInterval: logInterval, earlyStopping: earlyStopping,
                                seed: UInt64(seedValue), skipMalformedRows: skip, freezeEncoder: freezeEncoder)
    }

    static let samplingNames = ["round_robin", "proportional", "temperature", "uniform"]

    /// `sampling: uniform` or `sampling: {strategy: temperature, temperature: 2}`.
    func decodeSampling(_ node: ConfigNode) throws -> SamplingStrategy {
        var strategyNode = node
        var temperatureNode: ConfigNode?
        if case .mapping = node.node {
            let mapping = try node.mapping()
            try mapping.rejectUnknownKeys(["strategy", "temperature"])
            strategyNode = try mapping.required("strategy", hint: "one of \(Self.samplingNames.joined(separator: ", "))")
            temperatureNode = mapping["temperature"]
        }
        let name = try strategyNode.string()
        guard Self.samplingNames.contains(name) else {
            throw strategyNode.error("unknown sampling strategy \(strategyNode.shownValue); expected one of \(Self.samplingNames.joined(separator: ", "))",
                                     hint: NameSuggestion.didYouMean(name, among: Self.samplingNames))
        }
        if let temperatureNode, name != "temperature" {
            throw temperatureNode.error("temperature applies only to strategy: temperature, not \(name)", hint: "remove it or change the strategy")
        }
        switch name {
        case "round_robin": return .roundRobin
        case "uniform": return .uniform
        case "temperature": return .temperature(try temperatureNode?.positiveDouble() ?? 2)
        default: return .proportional
        }
    }

    func decodeLossWeighting(_ node: ConfigNode?, location: ConfigLocation) throws -> LossWeightingSettings {
        guard let node else { return LossWeightingSettings(name: "static", options: JSONObject(), location: location) }
        var nameNode = node
        var options = JSONObject()
        if case .mapping = node.node {
            let mapping = try node.mapping()
            try mapping.rejectUnknownKeys(["name", "options"])
            nameNode = try mapping.required("name", hint: "one of \(LossWeightingRegistry.names.joined(separator: ", "))")
            if let optionsNode = mapping["options"] {
                guard case .object(let object) = try optionsNode.jsonNode() else {
                    throw optionsNode.error("expected a mapping of options, got \(optionsNode.shownValue)")
                }
                options = object
            }
        }
        let name = try nameNode.string()
        guard LossWeightingRegistry.names.contains(name) else {
            throw nameNode.error("unknown loss weighting \(nameNode.shownValue); expected one of \(LossWeightingRegistry.names.joined(separator: ", "))",
                                 hint: NameSuggestion.didYouMean(name, among: LossWeightingRegistry.names))
        }
        let settings = LossWeightingSettings(name: name, options: options, location: node.location)
        // Options are checked now so that a typo fails before any data is read.
        try LossWeightingRegistry.validate(settings)
        return settings
    }

    func decodeOptimizer(_ node: ConfigNode?) throws -> OptimizerSettings {
        var settings = OptimizerSettings(name: "adamw", learningRate: 5e-5, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, groups: [])
        let mapping = try node?.mapping()
        try mapping?.rejectUnknownKeys(["name", "lr", "weight_decay", "betas", "eps", "groups"])
        if let nameNode = mapping?["name"] {
            let name = try nameNode.string()
            guard name == "adamw" else { throw nameNode.error("unknown optimizer \(nameNode.shownValue); only adamw is available") }
        }
        if let lr = mapping?["lr"] { settings.learningRate = try lr.positiveDouble() }
        if let decay = mapping?["weight_decay"] { settings.weightDecay = try decay.nonNegativeDouble() }
        if let betasNode = mapping?["betas"] {
            let betas = try betasNode.sequence()
            guard betas.count == 2 else { throw betasNode.error("expected two betas [beta1, beta2], got \(betas.count) values") }
            for beta in betas {
                let value = try beta.double()
                guard value >= 0, value < 1 else { throw beta.error("expected a number in [0, 1), got \(beta.shownValue)") }
            }
            settings.beta1 = try betas[0].double()
            settings.beta2 = try betas[1].double()
        }
        if let eps = mapping?["eps"] { settings.epsilon = try eps.positiveDouble() }

        let groupsMapping = try mapping?["groups"]?.mapping()
        try groupsMapping?.rejectUnknownKeys(OptimizerSettings.groupNames)
        for name in OptimizerSettings.groupNames {
            // Log-variances must move freely: decaying them towards 0 would bias the weights.
            var group = ParameterGroupSettings(name: name, learningRate: settings.learningRate,
                                               weightDecay: name == "loss_weighting" ? 0 : settings.weightDecay)
            if let groupMapping = try groupsMapping?[name]?.mapping() {
                try groupMapping.rejectUnknownKeys(["lr", "weight_decay"])
                if let lr = groupMapping["lr"] { group.learningRate = try lr.positiveDouble() }
                if let decay = groupMapping["weight_decay"] { group.weightDecay = try decay.nonNegativeDouble() }
            }
            settings.groups.append(group)
        }
        return settings
    }

    /// `schedule: cosine` or `schedule: {name: linear, warmup_steps: 100}` / `warmup_ratio: 0.1`.
    func decodeSchedule(_ node: ConfigNode?) throws -> ScheduleSettings {
        var settings = ScheduleSettings(kind: .linear, warmup: .steps(0))
        guard let node else { return settings }
        if case .scalar = node.node {
            settings.kind = try node.choice(ScheduleSettings.Kind.self)
            return settings
        }
        let mapping = try node.mapping()
        try mapping.rejectUnknownKeys(["name", "warmup_steps", "warmup_ratio"])
        if let name = mapping["name"] { settings.kind = try name.choice(ScheduleSettings.Kind.self) }
        switch (mapping["warmup_steps"], mapping["warmup_ratio"]) {
        case (let steps?, nil): settings.warmup = .steps(try steps.nonNegativeInteger())
        case (nil, let ratio?):
            let value = try ratio.double()
            guard value >= 0, value <= 1 else { throw ratio.error("expected a fraction in [0, 1], got \(ratio.shownValue)") }
            settings.warmup = .ratio(value)
        case (let steps?, _?): throw steps.error("both warmup_steps and warmup_ratio are set", hint: "keep one of them")
        case (nil, nil): break
        }
        return settings
    }

    func decodeEarlyStopping(_ node: ConfigNode?, tasks: [TaskConfig]) throws -> EarlyStoppingSettings {
        var settings = EarlyStoppingSettings(metric: "overall", patience: nil, mode: .max, minimumDelta: 0)
        guard let node else { return settings }
        let mapping = try node.mapping()
        try mapping.rejectUnknownKeys(["metric", "patience", "mode", "min_delta"])
        var defaultMode = EarlyStoppingSettings.Mode.max
        if let metricNode = mapping["metric"] {
            let metric = try metricNode.string()
            if metric != "overall" {
                let candidates = ["overall"] + tasks.flatMap { task in task.metrics.map { "\(task.name).\($0.rawValue)" } }
                guard candidates.contains(metric) else {
                    throw metricNode.error("unknown metric '\(metric)'; expected overall or task.metric for a metric the task lists",
                                           hint: NameSuggestion.didYouMean(metric, among: candidates) ?? "known: \(candidates.joined(separator: ", "))")
                }
                if let metricName = metric.split(separator: ".").last.flatMap({ MetricName(rawValue: String($0)) }), !metricName.higherIsBetter {
                    defaultMode = .min
                }
            }
            settings.metric = metric
        }
        settings.patience = try mapping["patience"]?.positiveInteger()
        settings.mode = try mapping["mode"]?.choice(EarlyStoppingSettings.Mode.self) ?? defaultMode
        settings.minimumDelta = try mapping["min_delta"]?.nonNegativeDouble() ?? 0
        return settings
    }

    /// The directory part of a path as written ("runs/x" -> "runs/", "x" -> ""), kept
    /// relative so that defaults derived from relative paths stay relative.
    func parentDirectory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        return String(trimmed[...slash])
    }
}
