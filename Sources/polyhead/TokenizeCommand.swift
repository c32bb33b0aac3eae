import ArgumentParser

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: "Tokenize JSONL text exactly like Hugging Face.")
    func run() throws { throw ValidationError("tokenize: not built yet") }
}
