import Encoder
import Foundation
import PluginHost

/// Scores heads' predictions on their tasks' dev or test splits.
public struct Evaluator {
    public let model: MultiTaskModel
    private let predictor: Predictor

    public init(model: MultiTaskModel) throws {
        self.model = model
        predictor = try Predictor(model: model, maxLength: model.encoder.config.maxPositionEmbeddings)
    }

    /// The task's metrics on one of its splits.
    public func score(_ task: PreparedTask, split: PreparedSplit) throws -> TaskScores {
        guard let head = model.head(named: task.data.config.name) else {
            throw TrainerError.headMismatch(task: task.data.config.name, message: "the model has no head for it")
        }
        let decoded = try predictor.decode(heads: [head], tokens: split.tokens)[0]
        let gold = split.examples.map(\.label)
        let predicted = try zip(decoded, split.examples).map { json, example in
            try PredictionReader.label(from: json, head: head, goldWordCount: example.words?.count)
        }
        let config = task.data.config
        return try TaskEvaluation.score(task: config.name, type: config.type, metrics: config.metrics,
                                        labelNames: task.data.labelNames, gold: gold, predicted: predicted)
    }

    /// Every task that has the split; tasks without it are left out of the report.
    public func evaluate(_ tasks: [PreparedTask], split: DataSplit) throws -> EvaluationReport {
        var scores: [TaskScores] = []
        for task in tasks {
            guard let data = task.split(split) else { continue }
            scores.append(try score(task, split: data))
        }
        return EvaluationReport(tasks: scores)
    }
}
