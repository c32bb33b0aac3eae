import ArgumentParser

@main
struct Polyhead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "polyhead",
        abstract: "Multi-task fine-tuning of transformer encoders with plugin task heads.",
        subcommands: [EmbedCommand.self, TokenizeCommand.self, PluginsCommand.self]
    )
}
