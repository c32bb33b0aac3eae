import ArgumentParser

@main
struct Polyhead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "polyhead",
        abstract: "Multi-task fine-tuning of transformer encoders with plugin task heads.",
        subcommands: [TrainCommand.self, PredictCommand.self, EmbedCommand.self, TokenizeCommand.self, PluginsCommand.self, BenchCommand.self]
    )
}
