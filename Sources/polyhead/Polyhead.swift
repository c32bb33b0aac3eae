import ArgumentParser

@main
struct Polyhead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "polyhead",
        abstract: "Multi-task fine-tuning of transformer encoders with plugin task heads.",
        subcommands: [TrainCommand.self, EvalCommand.self, PredictCommand.self, HeadsCommand.self, EmbedCommand.self, TokenizeCommand.self, PluginsCommand.self, BenchCommand.self]
    )
}
