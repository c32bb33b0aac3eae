// Regression head: one or more outputs from pooled sequence features, MSE or Huber loss,
// optional target standardisation (statistics fitted in prepare() and kept as
// non-trainable parameters, so checkpoints carry them). Loads through the C ABI only.
import CPolyhead
import PluginSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class RegressionHead: TaskHead {
    enum Loss: String, CaseIterable { case mse, huber }

    let names: [String]?
    let outputCount: Int
    let lossKind: Loss
    let delta: Double
    let trunk: PooledTrunk
    let targetMean: BoundParameter?
    let targetStandardDeviation: BoundParameter?
    let parameters = ParameterSet()

    var granularity: Int32 { PH_GRANULARITY_SEQUENCE }
    var outputWidth: Int { outputCount }
    var targetWidth: Int { outputCount }
    var targetDtype: Int32 { PH_DTYPE_F32 }

    init(context: CreateContext) throws {
        let config = context.config
        try config.requireOnly(trunkConfigKeys + ["outputs", "names", "loss", "huber_delta", "standardize"])
        names = try config.names("names")
        outputCount = try names?.count ?? config.integer("outputs", default: 1, range: 1...65536)
        if let names, config.json["outputs"].exists, try config.integer("outputs", default: 1, range: 1...65536) != names.count {
            throw PluginFailure("config keys \"outputs\" and \"names\" disagree (\(names.count) names)")
        }
        lossKind = Loss(rawValue: try config.string("loss", default: "mse", allowed: Loss.allCases.map(\.rawValue)))!
        delta = try config.number("huber_delta", default: 1, range: 1e-6...1e6)
        trunk = try PooledTrunk(context: context, outputWidth: outputCount, defaultPooling: .mean, into: parameters)
        if try config.bool("standardize", default: false) {
            targetMean = try context.declare("target_mean", shape: [outputCount], initializer: PH_INIT_ZEROS, trainable: false, into: parameters)
            targetStandardDeviation = try context.declare("target_std", shape: [outputCount], initializer: PH_INIT_ONES, trainable: false, into: parameters)
        } else {
            targetMean = nil
            targetStandardDeviation = nil
        }
    }

    func encodeTarget(label: JSON, wordIds: Tensor?, into target: Tensor) throws {
        func number(_ value: JSON, _ what: String) throws -> Float {
            guard let number = value.number, number.isFinite else { throw PluginFailure("\(what) must be a finite number, got \(value.typeName)") }
            return Float(number)
        }
        if outputCount == 1, label.type == PH_JSON_NUMBER {
            target.floats[0] = try number(label, "the target")
        } else if label.type == PH_JSON_ARRAY {
            guard label.count == outputCount else { throw PluginFailure("the target must hold \(outputCount) numbers, got \(label.count)") }
            for index in 0..<outputCount { target.floats[index] = try number(label[index], "target element \(index)") }
        } else if let names, label.type == PH_JSON_OBJECT {
            for (index, name) in names.enumerated() { target.floats[index] = try number(label[name], "target \"\(name)\"") }
        } else {
            throw PluginFailure("the target must be \(outputCount == 1 ? "a number" : "an array of \(outputCount) numbers")\(names == nil ? "" : " or an object keyed by the names"), got \(label.typeName)")
        }
    }

    /// Fits target_mean and target_std (population standard deviation; 1 where constant).
    func prepare(targets: Tensor) throws {
        guard let targetMean, let targetStandardDeviation else { return }
        let rows = targets.dimension(0)
        guard rows > 0 else { throw PluginFailure("standardisation needs at least one training target") }
        for column in 0..<outputCount {
            var sum = 0.0
            for row in 0..<rows { sum += Double(targets.floats[row * outputCount + column]) }
            let mean = sum / Double(rows)
            var squares = 0.0
            for row in 0..<rows { let difference = Double(targets.floats[row * outputCount + column]) - mean; squares += difference * difference }
            let deviation = (squares / Double(rows)).squareRoot()
            targetMean.value[column] = Float(mean)
            targetStandardDeviation.value[column] = deviation > 1e-8 ? Float(deviation) : 1
        }
    }

    func forward(_ input: HeadInput, outputs: Tensor) throws -> AnyObject? {
        trunk.forward(input, outputs: outputs.floats)
    }

    /// Mean over all B x K elements of MSE (r^2) or Huber (r^2/2 inside delta, delta(|r| - delta/2)
    /// outside), r = output - standardised target: PyTorch's MSELoss / HuberLoss.
    func loss(outputs: Tensor, targets: Tensor, outputGradient: Tensor) throws -> Double {
        let count = outputs.dimension(0) * outputCount
        var total = 0.0
        for index in 0..<count {
            let column = index % outputCount
            var target = Double(targets.floats[index])
            if let targetMean, let targetStandardDeviation {
                target = (target - Double(targetMean.value[column])) / Double(targetStandardDeviation.value[column])
            }
            let residual = Double(outputs.floats[index]) - target
            let gradient: Double
            switch lossKind {
            case .mse:
                total += residual * residual
                gradient = 2 * residual
            case .huber:
                if abs(residual) < delta {
                    total += 0.5 * residual * residual
                    gradient = residual
                } else {
                    total += delta * (abs(residual) - 0.5 * delta)
                    gradient = residual > 0 ? delta : -delta
                }
            }
            outputGradient.floats[index] = Float(gradient / Double(count))
        }
        return total / Double(count)
    }

    func backward(_ saved: AnyObject?, _ input: HeadInput, outputGradient: Tensor, featureGradient: Tensor) throws {
        try trunk.backward(saved, input, outputGradient: outputGradient.floats, featureGradient: featureGradient.floats)
    }

    /// Predictions in target units (standardisation undone).
    func decode(outputs: Tensor, wordIds: Tensor?) throws -> String {
        guard outputs.dimension(0) == 1 else { throw PluginFailure("decode takes one example's output row, got \(outputs.dimension(0))") }
        let values = (0..<outputCount).map { column -> Float in
            let value = outputs.floats[column]
            guard let targetMean, let targetStandardDeviation else { return value }
            return value * targetStandardDeviation.value[column] + targetMean.value[column]
        }
        if let names {
            return "{" + names.indices.map { "\(jsonQuoted(names[$0])):\(jsonNumber(values[$0]))" }.joined(separator: ",") + "}"
        }
        if outputCount == 1 { return "{\"value\":\(jsonNumber(values[0]))}" }
        return "{\"values\":[" + values.map(jsonNumber).joined(separator: ",") + "]}"
    }
}

// Extension functions.

/// Huber loss of one residual: huber(prediction, target, delta).
let huber: @convention(c) (Double, Double, Double) -> Double = { prediction, target, delta in
    let residual = abs(prediction - target)
    return residual < delta ? 0.5 * residual * residual : delta * (residual - 0.5 * delta)
}

/// Pearson correlation of single-output predictions and targets.
let pearson: @convention(c) (UnsafePointer<ph_tensor>?, UnsafePointer<ph_tensor>?, UnsafeMutablePointer<ph_error_sink>?) -> Double = { outputs, targets, errors in
    var result = Double.nan
    _ = guarded(errors) {
        let predictions = try Tensor(outputs, "outputs"), truth = try Tensor(targets, "targets")
        let rows = predictions.dimension(0)
        guard predictions.dtype == PH_DTYPE_F32, truth.dtype == PH_DTYPE_F32, predictions.count == rows, truth.count == rows, rows >= 2 else {
            throw PluginFailure("pearson needs F32 outputs [N] or [N, 1] and targets of the same length, N >= 2")
        }
        var meanX = 0.0, meanY = 0.0
        for row in 0..<rows { meanX += Double(predictions.floats[row]); meanY += Double(truth.floats[row]) }
        meanX /= Double(rows)
        meanY /= Double(rows)
        var covariance = 0.0, varianceX = 0.0, varianceY = 0.0
        for row in 0..<rows {
            let x = Double(predictions.floats[row]) - meanX, y = Double(truth.floats[row]) - meanY
            covariance += x * y
            varianceX += x * x
            varianceY += y * y
        }
        guard varianceX > 0, varianceY > 0 else { throw PluginFailure("pearson is undefined when outputs or targets are constant") }
        result = covariance / (varianceX * varianceY).squareRoot()
    }
    return result
}

let createRegressionHead: CreateFunction = { args, out, errors in
    createHead(args, out, errors) { try RegressionHead(context: $0) }
}

nonisolated(unsafe) let pluginTable = makePluginTable(
    id: "polyhead.heads.regression", version: "1.0.0", name: "Regression head",
    heads: [HeadDefinition(
        id: "polyhead.regression", version: "1.0.0", name: "Regression head",
        summary: "One or more real-valued outputs from pooled sequence features (MSE or Huber, optional standardisation)",
        exampleConfig: #"{"outputs": 1, "pooling": "mean", "loss": "mse", "standardize": true}"#,
        create: createRegressionHead)],
    extensions: [
        ExtensionDefinition(name: "huber", signature: "d(ddd)",
                            summary: "Huber loss of one prediction: huber(prediction, target, delta)",
                            function: unsafeBitCast(huber, to: ph_generic_function.self)),
        ExtensionDefinition(name: "pearson", signature: "d(tte)",
                            summary: "Pearson correlation of outputs [N] or [N, 1] with targets [N] (unchanged by standardisation)",
                            function: unsafeBitCast(pearson, to: ph_generic_function.self)),
    ])

@_cdecl("polyhead_plugin_entry")
public func polyheadPluginEntry(_ host: UnsafePointer<ph_host>?, _ out: UnsafeMutablePointer<UnsafePointer<ph_plugin>?>?,
                                _ errors: UnsafeMutablePointer<ph_error_sink>?) -> ph_status {
    answerEntry(host, out, errors) { pluginTable }
}
