import ArgumentParser
import Foundation
import Training

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score a trained model on its tasks' dev or test data; print the metrics as JSON.",
        discussion: """
        The tasks (types, fields, metrics, data files) come from a run config: by default the \
        run.yaml that `polyhead train` copies into its output directory, two levels above a \
        checkpoint (runs/NAME/checkpoints/best -> runs/NAME/run.yaml). Its data paths are \
        relative to the directory training ran in; run eval from there too. Prints \
        {"model", "step", "split", "tasks": {TASK: {METRIC: VALUE}}, "overall"}, overall being \
        the mean of the scored tasks' primary metrics. Without --task, every task of the config \
        that the model has a head for and that has the split is scored; the others are named on \
        standard error.
        """)

    @OptionGroup var trained: TrainedModelOptions

    @Option(name: .customLong("task"), help: "A task to score (repeatable; default: every task with a head and the split).")
    var tasks: [String] = []

    @Option(help: "The run config defining the tasks (default: run.yaml two levels above --model).")
    var config: String?

    @Option(help: "dev or test.")
    var split: String = "dev"

    @Option(help: "A data file replacing the split's file of the one --task.")
    var data: String?

    @Option(help: "Also write the JSON here.")
    var output: String?

    func validate() throws {
        guard split == "dev" || split == "test" else { throw ValidationError("--split must be dev or test (got \"\(split)\")") }
        if data != nil, tasks.count != 1 { throw ValidationError("--data replaces one task's file: name exactly one --task") }
    }

    func run() throws {
        let modelDirectory = URL(fileURLWithPath: trained.model)
        let configURL = config.map { URL(fileURLWithPath: $0) } ?? ModelEvaluation.defaultConfig(modelDirectory: modelDirectory)
        guard config != nil || FileManager.default.fileExists(atPath: configURL.path) else {
            throw TrainerError.evaluation("no run config at \(configURL.path) (polyhead train writes run.yaml into its output directory, two levels above its checkpoints); name one with --config RUN.yaml")
        }
        let runConfig = try RunConfig.load(file: configURL.path)
        let request = ModelEvaluation.Request(modelDirectory: modelDirectory, config: runConfig, tasks: tasks, split: DataSplit(rawValue: split)!,
                                              dataFile: data, pluginPaths: trained.plugins.pluginPaths)
        let result = try ModelEvaluation.run(request) { FileHandle.standardError.write(Data("polyhead: \($0)\n".utf8)) }
        var json = try result.jsonData()
        json.append(UInt8(ascii: "\n"))
        if let output { try json.write(to: URL(fileURLWithPath: output), options: .atomic) }
        FileHandle.standardOutput.write(json)
    }
}
