import ArgumentParser
import Foundation
import Tokenizers

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Tokenize JSONL text exactly like Hugging Face.",
        discussion: """
            Reads one JSON object per line and writes, for each, one line
            {"input_ids": [...], "token_type_ids": [...], "attention_mask": [...]}
            with the ids Hugging Face's BertTokenizerFast gives. Input is JSONL so that a text may
            hold any character, "\\r" included. Nothing is padded unless --padding says so, nothing
            truncated unless --max-length is given. The whole input is checked before anything is
            written: a bad line stops the command with an error naming it, and no output exists.

            Example:
              polyhead tokenize --model models/all-MiniLM-L6-v2 --input texts.jsonl --max-length 128
            """)

    enum PaddingChoice: String, ExpressibleByArgument, CaseIterable {
        case longest
        case maxLength = "max-length"
    }

    @Option(help: "Model directory with tokenizer.json, or vocab.txt + tokenizer_config.json.")
    var model: String

    @Option(help: "JSONL input file, or - for standard input.")
    var input: String

    @Option(help: "Field holding the text.")
    var textField = "text"

    @Option(help: "Field holding the second text of a pair ([CLS] text [SEP] pair [SEP]).")
    var pairField: String?

    @Option(help: "Truncate to at most this many tokens, special tokens included.")
    var maxLength: Int?

    @Option(help: "Which text loses tokens when truncating: \(TruncationStrategy.allCases.map(\.rawValue).joined(separator: ", ")).")
    var truncation: TruncationStrategy = .longestFirst

    @Option(help: "Pad every line to the longest line (longest) or to --max-length (max-length).")
    var padding: PaddingChoice?

    @Flag(help: "Also write \"offsets\" (character offsets, Python str indices) and \"word_ids\".")
    var offsets = false

    @Option(help: "Output file (written atomically); standard output when absent.")
    var output: String?

    @Flag(help: "Print lines, tokens and tokens per second of the tokenization itself to standard error.")
    var stats = false

    func validate() throws {
        if let maxLength, maxLength < 1 { throw ValidationError("--max-length must be at least 1") }
        if padding == .maxLength && maxLength == nil { throw ValidationError("--padding max-length needs --max-length") }
    }

    func run() throws {
        let tokenizer = try BertTokenizer(modelDirectory: URL(fileURLWithPath: model))
        let records = try readJSONLines(input)
        var texts: [String] = []
        var pairs: [String] = []
        texts.reserveCapacity(records.count)
        for record in records {
            texts.append(try record.string(textField, in: input))
            if let pairField { pairs.append(try record.string(pairField, in: input, hint: "use --pair-field to name another")) }
        }

        let start = DispatchTime.now().uptimeNanoseconds
        var encodings: [Encoding] = []
        encodings.reserveCapacity(texts.count)
        // One by one, so that a refusal (truncation impossible) can name its line.
        var workspace = TokenizerWorkspace()
        for (index, text) in texts.enumerated() {
            do {
                encodings.append(try tokenizer.encode(text, pair: pairField == nil ? nil : pairs[index],
                                                      maxLength: maxLength, truncation: truncation, workspace: &workspace))
            } catch {
                throw JSONLError("\(input):\(records[index].lineNumber): \(error)")
            }
        }
        switch padding {
        case .longest: tokenizer.pad(&encodings, to: .longest)
        case .maxLength: tokenizer.pad(&encodings, to: .maxLength(maxLength ?? 0))
        case nil: break
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9

        var writer = JSONLWriter()
        var line: [UInt8] = []
        for encoding in encodings {
            line.removeAll(keepingCapacity: true)
            appendField("input_ids", encoding.ids, first: true, to: &line)
            appendField("token_type_ids", encoding.typeIds, to: &line)
            appendField("attention_mask", encoding.attentionMask, to: &line)
            if offsets {
                appendField("offsets", encoding.offsets.map { [$0.lowerBound, $0.upperBound] }, to: &line)
                appendField("word_ids", encoding.wordIds, to: &line)
            }
            line.append(UInt8(ascii: "}"))
            writer.append(serializedLine: line)
        }
        try writer.finish(to: output)

        if stats {
            let tokens = encodings.reduce(0) { $0 + $1.attentionMask.reduce(0, +) }
            let rate = seconds > 0 ? Double(tokens) / seconds : 0
            FileHandle.standardError.write(Data(String(format: "tokenize: %d lines, %d tokens in %.3f s: %.0f tokens/s\n",
                                                       encodings.count, tokens, seconds, rate).utf8))
        }
    }
}

extension TruncationStrategy: ExpressibleByArgument {}

// Hand-written JSON for arrays of integers: several times faster than JSONSerialization.
private func appendField(_ name: String, _ values: [Int], first: Bool = false, to line: inout [UInt8]) {
    appendName(name, first: first, to: &line)
    line.append(UInt8(ascii: "["))
    for (index, value) in values.enumerated() {
        if index > 0 { line.append(UInt8(ascii: ",")) }
        appendInteger(value, to: &line)
    }
    line.append(UInt8(ascii: "]"))
}

private func appendField(_ name: String, _ values: [Int?], to line: inout [UInt8]) {
    appendName(name, first: false, to: &line)
    line.append(UInt8(ascii: "["))
    for (index, value) in values.enumerated() {
        if index > 0 { line.append(UInt8(ascii: ",")) }
        if let value { appendInteger(value, to: &line) } else { line.append(contentsOf: "null".utf8) }
    }
    line.append(UInt8(ascii: "]"))
}

private func appendField(_ name: String, _ values: [[Int]], to line: inout [UInt8]) {
    appendName(name, first: false, to: &line)
    line.append(UInt8(ascii: "["))
    for (index, pair) in values.enumerated() {
        if index > 0 { line.append(UInt8(ascii: ",")) }
        line.append(UInt8(ascii: "["))
        appendInteger(pair[0], to: &line)
        line.append(UInt8(ascii: ","))
        appendInteger(pair[1], to: &line)
        line.append(UInt8(ascii: "]"))
    }
    line.append(UInt8(ascii: "]"))
}

private func appendName(_ name: String, first: Bool, to line: inout [UInt8]) {
    line.append(first ? UInt8(ascii: "{") : UInt8(ascii: ","))
    line.append(UInt8(ascii: "\""))
    line.append(contentsOf: name.utf8)
    line.append(contentsOf: "\":".utf8)
}

private func appendInteger(_ value: Int, to line: inout [UInt8]) {
    line.append(contentsOf: String(value).utf8)  // small strings: no allocation
}
