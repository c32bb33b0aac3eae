import ArgumentParser
import Encoder
import Foundation
import Tokenizers

extension Pooling: ExpressibleByArgument {}

struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Sentence embeddings from a BERT checkpoint.",
        discussion: """
        Writes one JSON line {"embedding": [...]} per input line, in order, with
        sentence-transformers semantics: each text is tokenized with the model's tokenizer
        ([CLS] text [SEP]), truncated to --max-length tokens, run through the encoder, and
        pooled (mean over its tokens, or the [CLS] state); --normalize scales each vector to
        unit length (all-MiniLM-L6-v2's Normalize module).

        --max-length defaults to what sentence-transformers uses: sentence_bert_config.json's
        max_seq_length (256 for all-MiniLM-L6-v2), else tokenizer_config.json's
        model_max_length, else max_position_embeddings; never more than the latter.
        --pooling defaults to the model's 1_Pooling/config.json (mean when absent).
        """)

    @Option(help: "Model directory (config.json, model.safetensors, tokenizer.json or vocab.txt).")
    var model: String

    @Option(help: "JSONL input, one object per line; \"-\" reads standard input.")
    var input: String

    @Option(help: "The field holding each line's text.")
    var textField: String = "text"

    @Option(help: "mean or cls (default: the model's pooling config, else mean).")
    var pooling: Pooling?

    @Flag(help: "L2-normalise each embedding.")
    var normalize = false

    @Option(help: "Truncate texts to this many tokens, special tokens included.")
    var maxLength: Int?

    @Option(help: "Texts per encoder pass.")
    var batchSize: Int = 32

    @Option(help: "Output file (written atomically); standard output when absent.")
    var output: String?

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if let maxLength, maxLength < 2 { throw ValidationError("--max-length must leave room for [CLS] and [SEP] (at least 2)") }
    }

    func run() throws {
        let modelDirectory = URL(fileURLWithPath: model)
        let (encoder, ignored) = try BertEncoder.load(modelDirectory: modelDirectory)
        // One note per reason, naming the tensors it covers.
        for reason in Set(ignored.map(\.reason)).sorted() {
            let names = ignored.filter { $0.reason == reason }.map(\.name).sorted().joined(separator: ", ")
            FileHandle.standardError.write(Data("note: \(model): not loaded: \(names) (\(reason))\n".utf8))
        }
        let tokenizer = try BertTokenizer(modelDirectory: modelDirectory)
        let limit = maxLength ?? EmbeddingDefaults.maxLength(modelDirectory: modelDirectory, config: encoder.config)
        if limit > encoder.config.maxPositionEmbeddings {
            throw ValidationError("--max-length \(limit) exceeds the model's max_position_embeddings (\(encoder.config.maxPositionEmbeddings))")
        }
        // Read and tokenize everything first: a bad line stops the command before any output.
        var texts: [TokenizedText] = []
        for record in try readJSONLines(input) {
            let text = try record.string(textField, in: input)
            let encoding: Encoding
            do {
                encoding = try tokenizer.encode(text, maxLength: limit)
            } catch {
                throw JSONLError("\(input):\(record.lineNumber): cannot tokenize: \(error)")
            }
            texts.append(TokenizedText(ids: encoding.ids, typeIds: encoding.typeIds))
        }
        let embedder = SentenceEmbedder(encoder: encoder, pooling: pooling ?? EmbeddingDefaults.pooling(modelDirectory: modelDirectory),
                                        normalize: normalize, batchSize: batchSize)
        var writer = JSONLWriter()
        for embedding in try embedder.embed(texts) {
            try writer.append(["embedding": embedding])
        }
        try writer.finish(to: output)
    }
}
