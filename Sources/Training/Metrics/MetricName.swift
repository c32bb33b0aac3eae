/// The metrics a task can ask for in its config, by the name written there.
public enum MetricName: String, CaseIterable, Sendable {
    /// Single-label: fraction correct. Multi-label: exact-set match. Token tasks: fraction
    /// of words labelled correctly.
    case accuracy
    /// Unweighted mean of per-class F1 over the classes present in gold or predictions.
    case macroF1 = "macro_f1"
    /// F1 of the pooled counts over all classes (equals accuracy for single-label tasks).
    case microF1 = "micro_f1"
    /// Matthews correlation coefficient (multiclass form).
    case mcc
    case pearson
    /// Pearson correlation of the ranks, ties given their average rank.
    case spearman
    /// Mean squared error (lower is better).
    case mse
    /// Mean absolute error (lower is better).
    case mae
    /// Token tasks: micro F1 over words, counting every class except the outside tag "O".
    case tokenF1 = "token_f1"
    /// Token tasks: F1 over entity spans (BIO/IOB2 chunks, or runs of one plain tag).
    case entityF1 = "entity_f1"

    /// False for the error metrics, which early stopping minimises.
    public var higherIsBetter: Bool { self != .mse && self != .mae }

    /// Whether the metric is defined for the task type.
    public func applies(to type: TaskType) -> Bool {
        switch type {
        case .classification: return [.accuracy, .macroF1, .microF1, .mcc].contains(self)
        case .multiLabel: return [.accuracy, .macroF1, .microF1].contains(self)
        case .regression: return [.pearson, .spearman, .mse, .mae].contains(self)
        case .tokenClassification: return [.accuracy, .tokenF1, .entityF1].contains(self)
        }
    }

    /// The metrics a task gets when its config lists none; the first is the primary metric.
    public static func defaults(for type: TaskType) -> [MetricName] {
        switch type {
        case .classification: return [.accuracy, .macroF1]
        case .multiLabel: return [.microF1, .macroF1]
        case .regression: return [.pearson, .spearman, .mse]
        case .tokenClassification: return [.entityF1, .tokenF1, .accuracy]
        }
    }
}
