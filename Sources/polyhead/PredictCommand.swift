import ArgumentParser
import Foundation
import Training

/// Options naming a trained model directory (a checkpoint written by `polyhead train`).
struct TrainedModelOptions: ParsableArguments {
    @Option(help: "A trained model directory: a checkpoint such as runs/NAME/checkpoints/best, or a model directory with imported heads.")
    var model: String

    @Option(name: .customLong("task"), help: "A task whose head to use (repeatable; default: every task the command can serve).")
    var tasks: [String] = []

    @OptionGroup var plugins: PluginPathOptions

    /// The model with the heads of `--task`, or all of them.
    func load() throws -> MultiTaskModel {
        try MultiTaskModel.load(checkpoint: URL(fileURLWithPath: model), pluginPaths: plugins.pluginPaths, tasks: tasks.isEmpty ? nil : tasks)
    }
}

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Run the encoder once per text and every requested head on it; print one JSON line per text.",
        discussion: """
        Each line is {"text": ..., TASK: PREDICTION, ...} where PREDICTION is the head's own \
        description, e.g. {"label": "noun.animal", "score": 0.93} or {"value": 7.2}. Token \
        heads label the text's whitespace-separated words, one label per word: null for a word \
        cut off by --max-length.
        """)

    @OptionGroup var trained: TrainedModelOptions

    @Option(help: "One text to predict.")
    var text: String?

    @Option(help: "A JSONL file with one text per line.")
    var input: String?

    @Option(help: "The field holding the text in --input lines.")
    var textField = "text"

    @Option(help: "The field holding the second text of a pair, if any.")
    var pairField: String?

    @Option(help: "Token limit per text (default: 128, or the model's max_position_embeddings when smaller).")
    var maxLength: Int?

    @Option(help: "Write here instead of standard output.")
    var output: String?

    func validate() throws {
        guard (text == nil) != (input == nil) else { throw ValidationError("give exactly one of --text and --input") }
    }

    func run() throws {
        let model = try trained.load()
        var rows: [(text: String, pair: String?)] = []
        if let text {
            rows = [(text, nil)]
        } else if let input {
            rows = try readJSONLines(input).map { record in
                (try record.string(textField, in: input), try pairField.map { try record.string($0, in: input) })
            }
        }
        let predictor = try Predictor(model: model, maxLength: maxLength ?? min(128, model.encoder.config.maxPositionEmbeddings))
        // Built as text: the keys keep their order (text, then the tasks in head order) and each
        // head's JSON stays byte for byte what the head wrote.
        var writer = JSONLWriter()
        for (index, predictions) in try predictor.predict(rows).enumerated() {
            let members = [("text", JSONNode.string(rows[index].text).jsonText)] + predictions.map { (task, json) in (task, json) }
            let line = "{" + members.map { JSONNode.string($0.0).jsonText + ":" + $0.1 }.joined(separator: ",") + "}"
            writer.append(serializedLine: Array(line.utf8))
        }
        try writer.finish(to: output)
    }
}
