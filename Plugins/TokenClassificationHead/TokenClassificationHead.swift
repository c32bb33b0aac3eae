// Token classification head: a label per word, trained on each word's first word piece
// (other pieces and special tokens are ignored), logits for every token. Loads through the
// Polyhead C ABI only.
import CPolyhead
import PluginSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class TokenClassificationHead: TaskHead {
    let labels: [String]
    let smoothing: Double
    let dropout: Float
    let output: Linear
    let random: OpaquePointer?
    let parameters = ParameterSet()

    final class Saved {
        var x: [Float] = []        // [T, H] dropped features (only when dropout is active)
        var mask: [Float]? = nil   // [T, H]
    }

    var granularity: Int32 { PH_GRANULARITY_TOKEN }
    var outputWidth: Int { labels.count }
    var targetWidth: Int { 1 }
    var targetDtype: Int32 { PH_DTYPE_I64 }

    init(context: CreateContext) throws {
        let config = context.config
        try config.requireOnly(["labels", "dropout", "label_smoothing", "initializer_range"])
        guard let names = try config.names("labels"), names.count >= 2 else {
            throw PluginFailure("config needs \"labels\": at least two label names, e.g. [\"O\", \"B-noun\", ...]")
        }
        labels = names
        smoothing = try config.number("label_smoothing", default: 0, range: 0...0.999)
        dropout = Float(try config.number("dropout", default: 0, range: 0...0.95))
        let deviation = try config.number("initializer_range", default: 0.02, range: 0...10)
        random = context.random
        output = try Linear("output", inputWidth: context.inputWidth, outputWidth: names.count, standardDeviation: deviation,
                            context: context, into: parameters)
    }

    /// A word's label goes to its first piece; later pieces and special tokens (word id -1)
    /// get PH_TARGET_IGNORED.
    func encodeTarget(label: JSON, wordIds: Tensor?, into target: Tensor) throws {
        guard let wordIds else { throw PluginFailure("a token head needs word ids to align word labels") }
        guard label.type == PH_JSON_ARRAY else { throw PluginFailure("a token target must be an array with one label per word, got \(label.typeName)") }
        let words = label.count
        let ids = wordIds.int32s
        for token in 0..<wordIds.dimension(0) {
            let word = Int(ids[token])
            if word < 0 || (token > 0 && ids[token - 1] == ids[token]) {
                target.int64s[token] = Int64(PH_TARGET_IGNORED)
                continue
            }
            guard word < words else {
                throw PluginFailure("token \(token) belongs to word \(word) but the target labels only \(words) words")
            }
            let value = label[word]
            if let name = value.string {
                guard let index = labels.firstIndex(of: name) else {
                    throw PluginFailure("unknown label \"\(name)\" for word \(word) (known: \(labels.prefix(20).joined(separator: ", ")))")
                }
                target.int64s[token] = Int64(index)
            } else if let number = value.number, number == number.rounded(), number >= 0, number < Double(labels.count) {
                target.int64s[token] = Int64(number)
            } else {
                throw PluginFailure("word \(word)'s label must be a label name or an index below \(labels.count)")
            }
        }
    }

    func forward(_ input: HeadInput, outputs: Tensor) throws -> AnyObject? {
        let count = input.tokens * input.width
        let saved = Saved()
        if input.training && dropout > 0 {
            let mask = dropoutMask(count: count, probability: dropout, random: random)
            saved.x = (0..<count).map { input.features[$0] * mask[$0] }
            saved.mask = mask
            saved.x.withUnsafeBufferPointer { output.forward($0.baseAddress!, rows: input.tokens, outputs.floats) }
        } else {
            output.forward(input.features, rows: input.tokens, outputs.floats)
        }
        return input.training ? saved : nil
    }

    func loss(outputs: Tensor, targets: Tensor, outputGradient: Tensor) throws -> Double {
        try crossEntropy(logits: outputs.floats, targets: targets.int64s, rows: outputs.dimension(0), classes: labels.count,
                         classWeights: nil, smoothing: smoothing, gradient: outputGradient.floats)
    }

    func backward(_ state: AnyObject?, _ input: HeadInput, outputGradient: Tensor, featureGradient: Tensor) throws {
        guard let saved = state as? Saved else { throw PluginFailure("backward needs the state of a training forward pass") }
        if let mask = saved.mask {
            saved.x.withUnsafeBufferPointer { output.backward($0.baseAddress!, rows: input.tokens, outputGradient.floats, featureGradient.floats) }
            for index in 0..<(input.tokens * input.width) { featureGradient.floats[index] *= mask[index] }
        } else {
            output.backward(input.features, rows: input.tokens, outputGradient.floats, featureGradient.floats)
        }
    }

    /// {"labels": [one label per word, in word order]} from each word's first piece.
    func decode(outputs: Tensor, wordIds: Tensor?) throws -> String {
        guard let wordIds else { throw PluginFailure("decoding token labels needs the example's word ids") }
        let ids = wordIds.int32s
        var words: [String] = []
        for token in 0..<outputs.dimension(0) {
            let word = Int(ids[token])
            if word < 0 || (token > 0 && ids[token - 1] == ids[token]) { continue }
            guard word == words.count else {
                throw PluginFailure("word ids must number words 0, 1, 2, ... in order (token \(token) has word \(word))")
            }
            words.append(jsonQuoted(labels[argmax(outputs.floats + token * labels.count, labels.count)]))
        }
        return "{\"labels\":[\(words.joined(separator: ","))]}"
    }
}

let tokenAccuracy: @convention(c) (UnsafePointer<ph_tensor>?, UnsafePointer<ph_tensor>?, UnsafeMutablePointer<ph_error_sink>?) -> Double = { outputs, targets, errors in
    var result = Double.nan
    _ = guarded(errors) { result = try accuracyMetric(outputs, targets) }
    return result
}

let createTokenClassificationHead: CreateFunction = { args, out, errors in
    createHead(args, out, errors) { try TokenClassificationHead(context: $0) }
}

nonisolated(unsafe) let pluginTable = makePluginTable(
    id: "polyhead.heads.token_classification", version: "1.0.0", name: "Token classification head",
    heads: [HeadDefinition(
        id: "polyhead.token_classification", version: "1.0.0", name: "Token classification head",
        summary: "A label per word, aligned to the word's first piece (other pieces ignored)",
        exampleConfig: #"{"labels": ["O", "noun.animal", "noun.artifact"], "dropout": 0.1}"#,
        create: createTokenClassificationHead)],
    extensions: [
        ExtensionDefinition(name: "token_accuracy", signature: "d(tte)",
                            summary: "fraction of scored tokens whose arg-max logit is the target (outputs [T, C], targets [T]; -1 ignored)",
                            function: unsafeBitCast(tokenAccuracy, to: ph_generic_function.self)),
    ])

@_cdecl("polyhead_plugin_entry")
public func polyheadPluginEntry(_ host: UnsafePointer<ph_host>?, _ out: UnsafeMutablePointer<UnsafePointer<ph_plugin>?>?,
                                _ errors: UnsafeMutablePointer<ph_error_sink>?) -> ph_status {
    answerEntry(host, out, errors) { pluginTable }
}
