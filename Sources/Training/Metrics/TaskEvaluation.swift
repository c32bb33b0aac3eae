/// Gold labels and predictions that cannot be scored together.
public struct MetricError: Error, Sendable, Equatable, CustomStringConvertible {
    public var task: String
    public var message: String
    public var description: String { "task \(task): \(message)" }
}

/// One task's scores on one split.
public struct TaskScores: Sendable, Equatable {
    public var task: String
    /// In the order the task lists its metrics.
    public var values: [(metric: MetricName, value: Double)]
    public var primaryMetric: MetricName
    /// Metrics computed by plugin extension functions (`custom_metrics`), by qualified name.
    public var custom: [(name: String, value: Double)] = []

    public subscript(metric: MetricName) -> Double? { values.first { $0.metric == metric }?.value }
    public var primaryValue: Double { self[primaryMetric] ?? 0 }

    public static func == (lhs: TaskScores, rhs: TaskScores) -> Bool {
        lhs.task == rhs.task && lhs.primaryMetric == rhs.primaryMetric
            && lhs.values.map(\.metric) == rhs.values.map(\.metric) && lhs.values.map(\.value) == rhs.values.map(\.value)
            && lhs.custom.map(\.name) == rhs.custom.map(\.name) && lhs.custom.map(\.value) == rhs.custom.map(\.value)
    }
}

/// Every task's scores and the overall score, for logs and early stopping.
public struct EvaluationReport: Sendable, Equatable {
    public var tasks: [TaskScores]

    /// The mean of each task's primary metric (the first metric it lists), every task
    /// weighing the same whatever its size. Primary metrics are all higher-is-better (the
    /// config enforces it), so the mean is too.
    public var overall: Double {
        tasks.isEmpty ? 0 : tasks.reduce(0) { $0 + $1.primaryValue } / Double(tasks.count)
    }

    /// A value by the name early stopping uses: "overall" or "task.metric".
    public func value(named name: String) -> Double? {
        if name == "overall" { return overall }
        guard let dot = name.lastIndex(of: ".") else { return nil }
        let taskName = String(name[..<dot])
        guard let metric = MetricName(rawValue: String(name[name.index(after: dot)...])) else { return nil }
        return tasks.first { $0.task == taskName }?[metric]
    }
}

/// Scores a task's predictions with the metrics its config lists.
public enum TaskEvaluation {
    /// - Parameters:
    ///   - gold: the dataset's labels, in example order.
    ///   - predicted: one prediction per example, of the same kind as the gold label.
    ///   - labelNames: the task's label set (token tasks read tags from it).
    /// - Throws: `MetricError` when the counts or kinds of labels disagree.
    public static func score(task: String, type: TaskType, metrics: [MetricName], labelNames: [String],
                             gold: [LabelValue], predicted: [LabelValue]) throws -> TaskScores {
        guard gold.count == predicted.count else {
            throw MetricError(task: task, message: "\(gold.count) gold labels but \(predicted.count) predictions")
        }
        guard let primary = metrics.first else { throw MetricError(task: task, message: "no metrics to compute") }
        var values: [(MetricName, Double)] = []
        switch type {
        case .classification:
            let goldClasses = try gold.map { label throws(MetricError) in try classIndex(label, task: task) }
            let predictedClasses = try predicted.map { label throws(MetricError) in try classIndex(label, task: task) }
            for metric in metrics {
                switch metric {
                case .accuracy: values.append((metric, Metrics.accuracy(gold: goldClasses, predicted: predictedClasses)))
                case .macroF1: values.append((metric, Metrics.macroF1(gold: goldClasses, predicted: predictedClasses)))
                case .microF1: values.append((metric, Metrics.microF1(gold: goldClasses, predicted: predictedClasses)))
                case .mcc: values.append((metric, Metrics.matthewsCorrelation(gold: goldClasses, predicted: predictedClasses)))
                default: throw inapplicable(metric, type, task)
                }
            }
        case .multiLabel:
            let goldSets = try gold.map { label throws(MetricError) in try classSet(label, task: task) }
            let predictedSets = try predicted.map { label throws(MetricError) in try classSet(label, task: task) }
            for metric in metrics {
                switch metric {
                case .accuracy: values.append((metric, Metrics.subsetAccuracy(gold: goldSets, predicted: predictedSets)))
                case .macroF1: values.append((metric, Metrics.multiLabelMacroF1(gold: goldSets, predicted: predictedSets)))
                case .microF1: values.append((metric, Metrics.multiLabelMicroF1(gold: goldSets, predicted: predictedSets)))
                default: throw inapplicable(metric, type, task)
                }
            }
        case .regression:
            // Several outputs: each metric per output, then the mean over outputs.
            let goldValues = try gold.map { label throws(MetricError) in try numbers(label, task: task) }
            let predictedValues = try predicted.map { label throws(MetricError) in try numbers(label, task: task) }
            let outputs = goldValues.first?.count ?? 1
            guard zip(goldValues, predictedValues).allSatisfy({ $0.count == outputs && $1.count == outputs }) else {
                throw MetricError(task: task, message: "every gold label and prediction needs \(outputs) values")
            }
            for metric in metrics {
                let function: ([Double], [Double]) -> Double
                switch metric {
                case .pearson: function = Metrics.pearson
                case .spearman: function = Metrics.spearman
                case .mse: function = { Metrics.meanSquaredError(gold: $0, predicted: $1) }
                case .mae: function = { Metrics.meanAbsoluteError(gold: $0, predicted: $1) }
                default: throw inapplicable(metric, type, task)
                }
                let perOutput = (0..<outputs).map { output in
                    function(goldValues.map { Double($0[output]) }, predictedValues.map { Double($0[output]) })
                }
                values.append((metric, perOutput.reduce(0, +) / Double(outputs)))
            }
        case .tokenClassification:
            let goldTags = try gold.map { label throws(MetricError) in try tags(label, labelNames: labelNames, task: task) }
            let predictedTags = try predicted.map { label throws(MetricError) in try tags(label, labelNames: labelNames, task: task) }
            for (index, (goldSentence, predictedSentence)) in zip(goldTags, predictedTags).enumerated() where goldSentence.count != predictedSentence.count {
                throw MetricError(task: task, message: "example \(index): \(goldSentence.count) gold tags but \(predictedSentence.count) predicted")
            }
            let outside: String? = labelNames.contains("O") ? "O" : nil
            let scheme = Metrics.TagScheme.detect(labelNames: labelNames, outside: outside)
            for metric in metrics {
                switch metric {
                case .accuracy:
                    let flatGold = goldTags.flatMap { $0 }, flatPredicted = predictedTags.flatMap { $0 }
                    let correct = zip(flatGold, flatPredicted).filter { $0 == $1 }.count
                    values.append((metric, flatGold.isEmpty ? 0 : Double(correct) / Double(flatGold.count)))
                case .tokenF1: values.append((metric, Metrics.tokenF1(gold: goldTags, predicted: predictedTags, outside: outside)))
                case .entityF1: values.append((metric, Metrics.entityF1(gold: goldTags, predicted: predictedTags, scheme: scheme, outside: outside)))
                default: throw inapplicable(metric, type, task)
                }
            }
        }
        return TaskScores(task: task, values: values, primaryMetric: primary)
    }

    static func inapplicable(_ metric: MetricName, _ type: TaskType, _ task: String) -> MetricError {
        MetricError(task: task, message: "metric \(metric.rawValue) does not apply to a \(type.rawValue) task")
    }

    static func classIndex(_ label: LabelValue, task: String) throws(MetricError) -> Int {
        guard case .classIndex(let index) = label else { throw MetricError(task: task, message: "expected class labels, got \(label)") }
        return index
    }

    static func classSet(_ label: LabelValue, task: String) throws(MetricError) -> [Int] {
        guard case .classIndices(let indices) = label else { throw MetricError(task: task, message: "expected sets of classes, got \(label)") }
        return indices
    }

    static func numbers(_ label: LabelValue, task: String) throws(MetricError) -> [Float] {
        guard case .values(let values) = label else { throw MetricError(task: task, message: "expected numbers, got \(label)") }
        return values
    }

    static func tags(_ label: LabelValue, labelNames: [String], task: String) throws(MetricError) -> [String] {
        guard case .wordClasses(let indices) = label else { throw MetricError(task: task, message: "expected one class per word, got \(label)") }
        return try indices.map { index throws(MetricError) in
            guard labelNames.indices.contains(index) else {
                throw MetricError(task: task, message: "class index \(index) is outside the label set (\(labelNames.count) labels)")
            }
            return labelNames[index]
        }
    }
}
