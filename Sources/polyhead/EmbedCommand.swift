import ArgumentParser

struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "embed", abstract: "Sentence embeddings from a BERT checkpoint.")
    func run() throws { throw ValidationError("embed: not built yet") }
}
