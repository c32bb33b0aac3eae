/// Per-class loss weights for imbalanced labels.
public enum ClassWeights {
    /// scikit-learn's "balanced" weights, n_samples / (n_classes * count_c), where n_classes
    /// counts the classes that occur: a class with weight w_c then contributes as much total
    /// weight as any other, and the mean weight per target stays 1. A class that never occurs
    /// gets weight 0 (it is never a target, so its weight is never used).
    /// - Parameter counts: occurrences per class (`TaskDataset.classCounts()`).
    public static func balanced(counts: [Int]) -> [Float] {
        let total = counts.reduce(0, +)
        let present = counts.filter { $0 > 0 }.count
        return counts.map { count in
            count > 0 ? Float(Double(total) / (Double(present) * Double(count))) : 0
        }
    }

    /// The weights a task's `class_weights` setting asks for.
    /// - Returns: one weight per label, or nil for `none`.
    /// - Throws: `ConfigError` at the entry naming a label that is not in the label set.
    public static func compute(_ setting: ClassWeightSetting, labelNames: [String], counts: [Int]) throws -> [Float]? {
        switch setting {
        case .none:
            return nil
        case .balanced:
            return balanced(counts: counts)
        case .explicit(let entries):
            var weights = [Float](repeating: 1, count: labelNames.count)
            for entry in entries {
                guard let index = labelNames.firstIndex(of: entry.label) else {
                    let suggestion = NameSuggestion.didYouMean(entry.label, among: labelNames)
                    throw entry.location.error("'\(entry.label)' is not a label of this task; known labels: \(labelNames.joined(separator: ", "))",
                                               hint: suggestion)
                }
                weights[index] = Float(entry.weight)
            }
            return weights
        }
    }
}
