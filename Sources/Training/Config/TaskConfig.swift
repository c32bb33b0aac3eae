/// What a task predicts, which decides how its labels are read and which metrics apply.
public enum TaskType: String, CaseIterable, Sendable {
    /// One class per example (`label: "noun.animal"` or a class index).
    case classification
    /// A set of classes per example (`label: ["a", "b"]`, possibly empty).
    case multiLabel = "multi_label"
    /// One number or a fixed-length list of numbers per example.
    case regression
    /// One class per word (`words: [...]`, `labels: [...]` of equal length).
    case tokenClassification = "token_classification"

    /// Whether labels are class names drawn from a label set.
    public var hasClasses: Bool { self != .regression }

    /// The built-in head plugin a task of this type uses unless `head` says otherwise.
    public var defaultHeadPlugin: String {
        switch self {
        case .classification: return "polyhead.classification"
        case .multiLabel: return "polyhead.multi_label_classification"
        case .regression: return "polyhead.regression"
        case .tokenClassification: return "polyhead.token_classification"
        }
    }
}

/// A plugin component named by id, with the options passed to its `create` as a JSON object.
public struct ComponentSettings: Sendable, Equatable {
    /// Plugin component id, e.g. "polyhead.classification".
    public var plugin: String
    /// Free-form options, given to the plugin unchanged (keys in the order written).
    public var options: JSONObject
    public var location: ConfigLocation

    public init(plugin: String, options: JSONObject = JSONObject(), location: ConfigLocation) {
        self.plugin = plugin
        self.options = options
        self.location = location
    }
}

/// A router or adapter declared once at the top level and referred to by tasks by name.
public struct NamedComponent: Sendable, Equatable {
    public var name: String
    public var settings: ComponentSettings
}

/// The data files of one task. Paths are kept as written; relative ones are relative to the
/// working directory of the run.
public struct DataFiles: Sendable, Equatable {
    public var train: String
    public var dev: String?
    public var test: String?

    /// The files that are set, by split name.
    public var bySplit: [(split: DataSplit, path: String)] {
        [(.train, train), dev.map { (.dev, $0) }, test.map { (.test, $0) }].compactMap { $0 }
    }
}

public enum DataSplit: String, Sendable, CaseIterable {
    case train, dev, test
}

/// Which fields of a data row a task reads.
public struct FieldNames: Sendable, Equatable, Hashable {
    /// The text (for token tasks: the sentence as a string; the words come from `words`).
    public var text: String
    /// The second segment of a sentence pair; nil when the task has none.
    public var textPair: String?
    /// The label; a row without it (or with null) does not train this task.
    public var label: String
    /// Token tasks only: the list of words the labels align with.
    public var words: String?

    public init(text: String = "text", textPair: String? = nil, label: String = "label", words: String? = nil) {
        self.text = text
        self.textPair = textPair
        self.label = label
        self.words = words
    }
}

/// Per-class loss weights for imbalanced labels.
public enum ClassWeightSetting: Sendable, Equatable {
    case none
    /// n_samples / (n_classes * count_c), as scikit-learn's `compute_class_weight("balanced")`.
    case balanced
    /// Named weights; classes not listed weigh 1. Names are checked against the label set
    /// once the data is read, which is why each keeps its location.
    case explicit([ExplicitClassWeight])
}

public struct ExplicitClassWeight: Sendable, Equatable {
    public var label: String
    public var weight: Double
    public var location: ConfigLocation
}

/// How often a task's examples are drawn relative to its size.
public struct TaskSamplingSettings: Sendable, Equatable {
    /// Multiplies the task's size for sampling weights and epoch length (2 = seen twice as
    /// often as its size alone would give).
    public var oversample: Double = 1
    /// Upper bound on the task's effective size, applied after oversampling; nil = none.
    public var cap: Int?
}

/// One task of the run.
public struct TaskConfig: Sendable, Equatable {
    /// Unique, made of letters, digits, '_' and '-' (metric names are "task.metric").
    public var name: String
    public var type: TaskType
    public var head: ComponentSettings
    public var data: DataFiles
    public var fields: FieldNames
    /// The label set in index order; nil means inferred from the training file (sorted
    /// unique names).
    public var labels: [String]?
    /// Metrics computed on dev/test; the first is the task's primary metric.
    public var metrics: [MetricName]
    /// The task's weight under static loss weighting.
    public var lossWeight: Double
    public var sampling: TaskSamplingSettings
    public var classWeights: ClassWeightSetting
    /// Name of a router declared under `routers`, or nil for none.
    public var router: String?
    /// Name of an adapter declared under `adapters`, or nil for none.
    public var adapter: String?
    /// Plugin extension functions scored as extra metrics, by qualified name
    /// ("PLUGIN.FUNCTION", signature d(tt) or d(tte): outputs and targets to a number).
    public var customMetrics: [String] = []
    /// Where the task is declared.
    public var location: ConfigLocation

    /// The metric that stands for the task in the overall score and early stopping.
    public var primaryMetric: MetricName { metrics[0] }
}
