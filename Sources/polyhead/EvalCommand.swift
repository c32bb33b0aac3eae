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

    @Option(help: "The run config defining the tasks (default: run.yaml two levels above --model).")
    var config: String?

    @Option(help: "dev or test.")
    var split: String = "dev"

    @Option(help: "A data file replacing the split's file of the one --task.")
    var data: String?

    func validate() throws {
        guard split == "dev" || split == "test" else { throw ValidationError("--split must be dev or test (got \"\(split)\")") }
        if data != nil, trained.tasks.count != 1 { throw ValidationError("--data replaces one task's file: name exactly one --task") }
    }

    func run() throws {
        let modelDirectory = URL(fileURLWithPath: trained.model)
        let configURL = config.map { URL(fileURLWithPath: $0) } ?? ModelEvaluation.defaultConfig(modelDirectory: modelDirectory)
        guard config != nil || FileManager.default.fileExists(atPath: configURL.path) else {
            throw TrainerError.evaluation("no run config at \(configURL.path) (polyhead train writes run.yaml into its output directory, two levels above its checkpoints); name one with --config RUN.yaml")
        }
        let runConfig = try RunConfig.load(file: configURL.path)
        var request = ModelEvaluation.Request(modelDirectory: modelDirectory, config: runConfig)
        request.tasks = trained.tasks
        request.split = DataSplit(rawValue: split)!
        request.dataFile = data
        request.pluginPaths = trained.plugins.pluginPaths
        let result = try ModelEvaluation.run(request) { FileHandle.standardError.write(Data("polyhead: \($0)\n".utf8)) }
        FileHandle.standardOutput.write(try result.jsonData() + Data("\n".utf8))
    }
}
