import ArgumentParser
import Foundation
import Training

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train one shared encoder and a plugin head per task from a YAML run config.",
        discussion: """
        Writes to the output directory: metrics.jsonl (one line per log step and evaluation), \
        summary.md and summary.json, curves.svg, run.yaml (the config used) and checkpoints/ \
        (final, best, and the latest step). docs/config.md lists every config key. Unless it \
        resumes (--resume), a run first moves an earlier run's files in the output directory to \
        previous/ there (removing an older previous/).
        """)

    @Argument(help: "The run config (YAML).", completion: .file(extensions: ["yaml", "yml"]))
    var config: String

    @Option(help: "Output directory (default: the config's `output`).")
    var output: String?

    @Option(help: "Continue from a checkpoint directory of an earlier run of this config (e.g. runs/NAME/checkpoints/step-500).")
    var resume: String?

    func run() throws {
        let runConfig = try RunConfig.load(file: config)
        let log: (String) -> Void = { FileHandle.standardError.write(Data("polyhead: \($0)\n".utf8)) }
        let trainer = try MultiTaskTrainer(config: runConfig, outputDirectory: output.map { URL(fileURLWithPath: $0) }, log: log)
        try trainer.prepareOutputDirectory(resuming: resume != nil)
        try Data(contentsOf: URL(fileURLWithPath: config)).write(to: trainer.outputDirectory.appendingPathComponent("run.yaml"), options: .atomic)
        let summary = try trainer.run(resume: resume.map { URL(fileURLWithPath: $0) })
        print(summary.markdown())
        log("wrote \(trainer.outputDirectory.path)/{metrics.jsonl,summary.md,curves.svg,checkpoints/}")
    }
}
