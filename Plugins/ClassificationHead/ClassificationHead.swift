// Classification head: single-label (softmax cross-entropy) or multi-label (sigmoid
// binary cross-entropy) over pooled sequence features, with optional hidden layer,
// dropout, class weights and label smoothing. Loads through the Polyhead C ABI only.
import CPolyhead
import PluginSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class ClassificationHead: TaskHead {
    let labels: [String]
    let multiLabel: Bool
    let smoothing: Double
    let threshold: Float
    let configuredWeights: [Double]?
    let balancedWeights: Bool
    let trunk: PooledTrunk
    let classWeights: BoundParameter?
    let parameters = ParameterSet()

    var granularity: Int32 { PH_GRANULARITY_SEQUENCE }
    var outputWidth: Int { labels.count }
    var targetWidth: Int { multiLabel ? labels.count : 1 }
    var targetDtype: Int32 { multiLabel ? PH_DTYPE_F32 : PH_DTYPE_I64 }

    /// - Parameter multiLabelComponent: created as "polyhead.multi_label_classification",
    ///   where multi-label is the component's identity rather than an option.
    init(context: CreateContext, multiLabelComponent: Bool = false) throws {
        let config = context.config
        try config.requireOnly(trunkConfigKeys + ["labels", "num_labels", "multi_label", "class_weights", "label_smoothing", "threshold"])
        if let names = try config.names("labels") {
            labels = names
        } else if config.json["num_labels"].exists {
            labels = (0..<(try config.integer("num_labels", default: 2, range: 2...1_000_000))).map { "LABEL_\($0)" }
        } else {
            throw PluginFailure("config needs \"labels\": [\"name\", ...] (or \"num_labels\": N)")
        }
        multiLabel = try config.bool("multi_label", default: multiLabelComponent)
        if multiLabelComponent && !multiLabel {
            throw PluginFailure("polyhead.multi_label_classification is always multi-label; drop \"multi_label\": false or use polyhead.classification")
        }
        guard labels.count >= (multiLabel ? 1 : 2) else {
            throw PluginFailure("a \(multiLabel ? "multi-label" : "single-label") head needs at least \(multiLabel ? 1 : 2) labels, got \(labels.count)")
        }
        smoothing = try config.number("label_smoothing", default: 0, range: 0...0.999)
        threshold = Float(try config.number("threshold", default: 0.5, range: 0...1))
        let weights = config.json["class_weights"]
        balancedWeights = weights.string == "balanced"
        if weights.exists && !balancedWeights {
            guard let values = try config.numbers("class_weights") else {
                throw PluginFailure("config key \"class_weights\" must be \"balanced\" or an array of \(labels.count) numbers")
            }
            guard values.count == labels.count, values.allSatisfy({ $0 >= 0 && $0.isFinite }) else {
                throw PluginFailure("config key \"class_weights\" must hold \(labels.count) non-negative numbers (one per label), got \(values.count)")
            }
            configuredWeights = values
        } else {
            configuredWeights = nil
        }
        trunk = try PooledTrunk(context: context, outputWidth: labels.count, defaultPooling: .cls, into: parameters)
        classWeights = weights.exists
            ? try context.declare("class_weights", shape: [labels.count], initializer: PH_INIT_ONES, trainable: false, into: parameters)
            : nil
    }

    func didBind() throws {
        guard let classWeights, let configuredWeights else { return }
        for (index, weight) in configuredWeights.enumerated() { classWeights.value[index] = Float(weight) }
    }

    private func labelIndex(_ label: JSON) throws -> Int {
        if let name = label.string {
            guard let index = labels.firstIndex(of: name) else {
                throw PluginFailure("unknown label \"\(name)\" (known: \(labels.prefix(20).joined(separator: ", "))\(labels.count > 20 ? ", ..." : ""))")
            }
            return index
        }
        if let number = label.number, number == number.rounded(), number >= 0, number < Double(labels.count) {
            return Int(number)
        }
        throw PluginFailure("a label must be one of the label names or an index below \(labels.count), got \(label.typeName)")
    }

    func encodeTarget(label: JSON, wordIds: Tensor?, into target: Tensor) throws {
        if multiLabel {
            guard label.type == PH_JSON_ARRAY else {
                throw PluginFailure("a multi-label target must be an array of label names, got \(label.typeName)")
            }
            target.floats.update(repeating: 0, count: labels.count)
            for index in 0..<label.count { target.floats[try labelIndex(label[index])] = 1 }
        } else {
            target.int64s[0] = Int64(try labelIndex(label))
        }
    }

    /// "balanced" class weights: N / (C * count_c), as scikit-learn computes them.
    func prepare(targets: Tensor) throws {
        guard balancedWeights, let classWeights else { return }
        let rows = targets.dimension(0)
        var counts = [Double](repeating: 0, count: labels.count)
        for row in 0..<rows {
            if multiLabel {
                for column in 0..<labels.count { counts[column] += Double(targets.floats[row * labels.count + column]) }
            } else {
                let index = Int(targets.int64s[row])
                guard index >= 0, index < labels.count else { throw PluginFailure("target class \(index) in row \(row) is outside 0 ..< \(labels.count)") }
                counts[index] += 1
            }
        }
        for column in 0..<labels.count {
            classWeights.value[column] = counts[column] > 0 ? Float(Double(rows) / (Double(labels.count) * counts[column])) : 1
        }
    }

    func forward(_ input: HeadInput, outputs: Tensor) throws -> AnyObject? {
        trunk.forward(input, outputs: outputs.floats)
    }

    func loss(outputs: Tensor, targets: Tensor, outputGradient: Tensor) throws -> Double {
        let rows = outputs.dimension(0)
        if multiLabel {
            return binaryCrossEntropy(logits: outputs.floats, targets: targets.floats, rows: rows, classes: labels.count,
                                      classWeights: classWeights?.value, smoothing: smoothing, gradient: outputGradient.floats)
        }
        return try crossEntropy(logits: outputs.floats, targets: targets.int64s, rows: rows, classes: labels.count,
                                classWeights: classWeights?.value, smoothing: smoothing, gradient: outputGradient.floats)
    }

    func backward(_ saved: AnyObject?, _ input: HeadInput, outputGradient: Tensor, featureGradient: Tensor) throws {
        try trunk.backward(saved, input, outputGradient: outputGradient.floats, featureGradient: featureGradient.floats)
    }

    func decode(outputs: Tensor, wordIds: Tensor?) throws -> String {
        guard outputs.dimension(0) == 1 else { throw PluginFailure("decode takes one example's output row, got \(outputs.dimension(0))") }
        let logits = outputs.floats
        if multiLabel {
            let scores = (0..<labels.count).map { sigmoid(logits[$0]) }
            let chosen = labels.indices.filter { scores[$0] >= threshold }.map { jsonQuoted(labels[$0]) }
            let scoreText = labels.indices.map { "\(jsonQuoted(labels[$0])):\(jsonNumber(scores[$0]))" }
            return "{\"labels\":[\(chosen.joined(separator: ","))],\"scores\":{\(scoreText.joined(separator: ","))}}"
        }
        let best = argmax(logits, labels.count)
        var sum: Float = 0
        for column in 0..<labels.count { sum += expf(logits[column] - logits[best]) }
        return "{\"label\":\(jsonQuoted(labels[best])),\"score\":\(jsonNumber(1 / sum))}"
    }
}

// Extension functions: metrics over single-label logits [N, C] and class-index targets.

typealias Metric = @convention(c) (UnsafePointer<ph_tensor>?, UnsafePointer<ph_tensor>?, UnsafeMutablePointer<ph_error_sink>?) -> Double

let accuracy: Metric = { outputs, targets, errors in
    var result = Double.nan
    _ = guarded(errors) { result = try accuracyMetric(outputs, targets) }
    return result
}

let macroF1: Metric = { outputs, targets, errors in
    var result = Double.nan
    _ = guarded(errors) {
        let logits = try metricOutputs(outputs)
        let rows = logits.dimension(0), classes = logits.dimension(1)
        let indices = try classIndices(try Tensor(targets, "targets"), rows: rows)
        var truePositives = [Double](repeating: 0, count: classes)
        var predicted = truePositives, actual = truePositives
        for row in 0..<rows where indices[row] != Int64(PH_TARGET_IGNORED) {
            let target = Int(indices[row])
            guard target >= 0, target < classes else { throw PluginFailure("target class \(target) in row \(row) is outside 0 ..< \(classes)") }
            let guess = argmax(logits.floats + row * classes, classes)
            predicted[guess] += 1
            actual[target] += 1
            if guess == target { truePositives[target] += 1 }
        }
        // Average over classes that occur in the targets or the predictions.
        var sum = 0.0, present = 0
        for column in 0..<classes where predicted[column] + actual[column] > 0 {
            sum += 2 * truePositives[column] / (predicted[column] + actual[column])
            present += 1
        }
        guard present > 0 else { throw PluginFailure("macro_f1 needs at least one target that is not ignored") }
        result = sum / Double(present)
    }
    return result
}

let createClassificationHead: CreateFunction = { args, out, errors in
    createHead(args, out, errors) { try ClassificationHead(context: $0) }
}

let createMultiLabelClassificationHead: CreateFunction = { args, out, errors in
    createHead(args, out, errors) { try ClassificationHead(context: $0, multiLabelComponent: true) }
}

nonisolated(unsafe) let pluginTable = makePluginTable(
    id: "polyhead.heads.classification", version: "1.0.0", name: "Classification head",
    heads: [
        HeadDefinition(
            id: "polyhead.classification", version: "1.0.0", name: "Classification head",
            summary: "Single- or multi-label classification of pooled (cls/mean/max) sequence features",
            exampleConfig: #"{"labels": ["negative", "positive"], "pooling": "cls", "dropout": 0.1}"#,
            create: createClassificationHead),
        HeadDefinition(
            id: "polyhead.multi_label_classification", version: "1.0.0", name: "Multi-label classification head",
            summary: "A set of labels per example: sigmoid outputs over pooled (cls/mean/max) sequence features",
            exampleConfig: #"{"labels": ["noun.animal", "noun.plant", "noun.food"], "pooling": "mean", "threshold": 0.5}"#,
            create: createMultiLabelClassificationHead),
    ],
    extensions: [
        ExtensionDefinition(name: "accuracy", signature: "d(tte)",
                            summary: "fraction of rows whose arg-max logit is the target class (outputs [N, C], targets [N] class indices; -1 ignored)",
                            function: unsafeBitCast(accuracy, to: ph_generic_function.self)),
        ExtensionDefinition(name: "macro_f1", signature: "d(tte)",
                            summary: "F1 averaged over the classes present in targets or predictions (outputs [N, C], targets [N] class indices; -1 ignored)",
                            function: unsafeBitCast(macroF1, to: ph_generic_function.self)),
    ])

@_cdecl("polyhead_plugin_entry")
public func polyheadPluginEntry(_ host: UnsafePointer<ph_host>?, _ out: UnsafeMutablePointer<UnsafePointer<ph_plugin>?>?,
                                _ errors: UnsafeMutablePointer<ph_error_sink>?) -> ph_status {
    answerEntry(host, out, errors) { pluginTable }
}
