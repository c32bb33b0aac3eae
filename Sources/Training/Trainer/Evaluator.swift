import Encoder
import Foundation
import PluginHost

/// One task's rows to score: the task as the run config defines it (type, metrics), its label
/// set in the head's output order, and the tokenised rows.
public struct EvaluationInput {
    public let task: TaskConfig
    public let labelNames: [String]
    public let split: PreparedSplit

    public init(task: TaskConfig, labelNames: [String], split: PreparedSplit) {
        self.task = task
        self.labelNames = labelNames
        self.split = split
    }
}

extension PreparedTask {
    /// The task's rows of `split` to score, nil when the task has no such split.
    public func evaluationInput(_ split: DataSplit) -> EvaluationInput? {
        self.split(split).map { EvaluationInput(task: data.config, labelNames: data.labelNames, split: $0) }
    }
}

/// Scores heads' predictions on their tasks' dev or test rows. Training (dev and test) and
/// `polyhead eval` both score through here.
public struct Evaluator {
    public let model: MultiTaskModel
    private let predictor: Predictor

    public init(model: MultiTaskModel) throws {
        self.model = model
        predictor = try Predictor(model: model, maxLength: model.encoder.config.maxPositionEmbeddings)
    }

    /// The task's metrics on its rows, predicted by the model's head of the same name.
    public func score(_ input: EvaluationInput) throws -> TaskScores {
        let config = input.task
        guard let head = model.head(named: config.name) else {
            throw TrainerError.headMismatch(task: config.name, message: "the model has no head for it")
        }
        let wordCounts = input.split.examples.map { $0.words?.count }
        let decoded = try predictor.decode(heads: [head], tokens: input.split.tokens, wordCounts: wordCounts)[0]
        let gold = input.split.examples.map(\.label)
        let predicted = try decoded.map { json in try PredictionReader.label(from: json, head: head) }
        var scores = try TaskEvaluation.score(task: config.name, type: config.type, metrics: config.metrics,
                                              labelNames: input.labelNames, gold: gold, predicted: predicted)
        if !config.customMetrics.isEmpty {
            scores.custom = try customMetrics(config.customMetrics, head: head, input: input)
        }
        return scores
    }

    /// Plugin metric functions (called through libffi) over the head's raw outputs and the
    /// gold labels as the head encodes them.
    private func customMetrics(_ names: [String], head: TaskHead, input: EvaluationInput) throws -> [(name: String, value: Double)] {
        let outputs = try predictor.outputs(head: head, tokens: input.split.tokens)
        let targets = try HeadTargets.concatenating(input.split.examples.enumerated().map { index, example in
            try head.instance.encodeTarget(label: JSONValue(parsing: example.label.jsonNode(labelNames: input.labelNames).jsonText),
                                           wordIds: head.isTokenLevel ? input.split.tokens[index].wordIds : nil)
        })
        return try names.map { name in
            let function = try model.registry.extensionFunction(named: name)
            return (name, try function.metric(outputs: outputs, width: head.instance.layout.outputWidth, targets: targets))
        }
    }

    /// Every input's scores, in order, and their overall score.
    public func evaluate(_ inputs: [EvaluationInput]) throws -> EvaluationReport {
        EvaluationReport(tasks: try inputs.map(score))
    }

    /// Every task that has the split; tasks without it are left out of the report.
    public func evaluate(_ tasks: [PreparedTask], split: DataSplit) throws -> EvaluationReport {
        try evaluate(tasks.compactMap { $0.evaluationInput(split) })
    }
}
