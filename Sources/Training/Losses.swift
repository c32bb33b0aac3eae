import Foundation

// Losses over flat row-major buffers, each computing its mean-reduced value and, when asked,
// d(loss)/d(input) in one pass. Dimension legend: N rows (examples or tokens), C classes or
// outputs per row. Every loss comes in Float (training) and Double (the reference path the
// finite-difference tests use); both run the same generic code.
//
// Gradients are written (not accumulated) and multiplied by `lossScale`, the upstream
// d(total)/d(this loss): a task weight, 1/accumulation steps, or 1.

/// The scalar operations the loss code needs beyond `BinaryFloatingPoint`.
public protocol LossScalar: BinaryFloatingPoint, Sendable {
    static func exponential(_ x: Self) -> Self
    static func logarithm(_ x: Self) -> Self
    /// log(1 + x), accurate for small x.
    static func logarithmOnePlus(_ x: Self) -> Self
}

extension Float: LossScalar {
    public static func exponential(_ x: Float) -> Float { Foundation.exp(x) }
    public static func logarithm(_ x: Float) -> Float { Foundation.log(x) }
    public static func logarithmOnePlus(_ x: Float) -> Float { Foundation.log1p(x) }
}

extension Double: LossScalar {
    public static func exponential(_ x: Double) -> Double { Foundation.exp(x) }
    public static func logarithm(_ x: Double) -> Double { Foundation.log(x) }
    public static func logarithmOnePlus(_ x: Double) -> Double { Foundation.log1p(x) }
}

// MARK: - Softmax cross-entropy

/// Softmax cross-entropy over class logits, matching `torch.nn.functional.cross_entropy`
/// with `reduction="mean"`, `ignore_index`, `weight` and `label_smoothing`.
///
/// With class weights w, smoothing e and C classes, for each counted row i with target y_i:
/// `nll_i = -w[y_i] log p_i[y_i]`, `smooth_i = -sum_c w[c] log p_i[c]`, and
/// `loss = ((1 - e) sum nll_i + (e / C) sum smooth_i) / sum w[y_i]`.
/// Rows whose target is `ignoreIndex` add nothing and get a zero gradient. When every row is
/// ignored the loss is 0 with a zero gradient (PyTorch returns NaN, which would poison the
/// parameters of a multi-task step where one task has no labelled tokens).
public struct SoftmaxCrossEntropy: Sendable, Equatable {
    public var ignoreIndex: Int32
    /// One weight per class, or nil for all ones.
    public var classWeights: [Double]?
    /// Mass in [0, 1] spread uniformly over all classes.
    public var labelSmoothing: Double

    public init(ignoreIndex: Int32 = -100, classWeights: [Double]? = nil, labelSmoothing: Double = 0) {
        self.ignoreIndex = ignoreIndex
        self.classWeights = classWeights
        self.labelSmoothing = labelSmoothing
    }

    /// Mean loss over the counted rows, writing d(loss)/d(logits) * lossScale when asked.
    /// - Parameters:
    ///   - logits: (N, C) scores.
    ///   - targets: (N) class indices or `ignoreIndex`.
    ///   - logitGradients: (N, C) output, or nil for the loss alone.
    /// - Throws: `TrainingError` for mismatched shapes, targets outside 0..<C, bad options.
    public func evaluate(
        logits: UnsafeBufferPointer<Float>, targets: UnsafeBufferPointer<Int32>, classes: Int,
        logitGradients: UnsafeMutableBufferPointer<Float>? = nil, lossScale: Float = 1
    ) throws -> Float {
        try crossEntropy(logits: logits, targets: targets, classes: classes, gradients: logitGradients, lossScale: lossScale)
    }

    /// The Double reference path of `evaluate`.
    public func evaluate(
        logits: UnsafeBufferPointer<Double>, targets: UnsafeBufferPointer<Int32>, classes: Int,
        logitGradients: UnsafeMutableBufferPointer<Double>? = nil, lossScale: Double = 1
    ) throws -> Double {
        try crossEntropy(logits: logits, targets: targets, classes: classes, gradients: logitGradients, lossScale: lossScale)
    }

    func validate(classes: Int) throws {
        guard classes > 0 else {
            throw TrainingError.invalidLossOption(name: "classes", value: "\(classes)", expected: "at least 1")
        }
        guard labelSmoothing >= 0, labelSmoothing <= 1 else {
            throw TrainingError.invalidLossOption(name: "label_smoothing", value: "\(labelSmoothing)", expected: "a value in [0, 1]")
        }
        if let classWeights {
            guard classWeights.count == classes else {
                throw TrainingError.shapeMismatch(what: "class weights", expected: classes, actual: classWeights.count)
            }
            if let bad = classWeights.first(where: { !($0 >= 0) || !$0.isFinite }) {
                throw TrainingError.invalidLossOption(name: "class weight", value: "\(bad)", expected: "finite and >= 0")
            }
        }
    }

    private func crossEntropy<Scalar: LossScalar>(
        logits: UnsafeBufferPointer<Scalar>, targets: UnsafeBufferPointer<Int32>, classes: Int,
        gradients: UnsafeMutableBufferPointer<Scalar>?, lossScale: Scalar
    ) throws -> Scalar {
        try validate(classes: classes)
        let rows = targets.count
        guard logits.count == rows * classes else {
            throw TrainingError.shapeMismatch(what: "logits", expected: rows * classes, actual: logits.count)
        }
        if let gradients, gradients.count != logits.count {
            throw TrainingError.shapeMismatch(what: "logit gradients", expected: logits.count, actual: gradients.count)
        }
        let weights: [Scalar] = classWeights.map { $0.map { Scalar($0) } } ?? Array(repeating: 1, count: classes)
        let weightSum = weights.reduce(0, +)
        // First pass: validate targets and find the normaliser, needed before any gradient.
        var normaliser: Scalar = 0
        for row in 0..<rows {
            let target = targets[row]
            if target == ignoreIndex { continue }
            guard target >= 0, Int(target) < classes else {
                throw TrainingError.targetOutOfRange(row: row, target: target, classes: classes, ignoreIndex: ignoreIndex)
            }
            normaliser += weights[Int(target)]
        }
        if let gradients { gradients.initialize(repeating: 0) }
        guard normaliser > 0 else { return 0 }

        let smoothing = Scalar(labelSmoothing)
        let smoothingPerClass = smoothing / Scalar(classes)
        var nllSum: Scalar = 0
        var smoothSum: Scalar = 0
        for row in 0..<rows {
            let target = targets[row]
            if target == ignoreIndex { continue }
            let base = row * classes
            var maximum = logits[base]
            for c in 1..<classes { maximum = Swift.max(maximum, logits[base + c]) }
            var sumExp: Scalar = 0
            for c in 0..<classes { sumExp += Scalar.exponential(logits[base + c] - maximum) }
            let logSumExp = maximum + Scalar.logarithm(sumExp)
            let y = Int(target)
            nllSum -= weights[y] * (logits[base + y] - logSumExp)
            if smoothing > 0 {
                var rowSmooth: Scalar = 0
                for c in 0..<classes { rowSmooth -= weights[c] * (logits[base + c] - logSumExp) }
                smoothSum += rowSmooth
            }
            if let gradients {
                // d nll/dz_c = w_y (p_c - [c == y]); d smooth/dz_c = p_c sum(w) - w_c.
                let nllScale = lossScale * (1 - smoothing) * weights[y] / normaliser
                let smoothScale = lossScale * smoothingPerClass / normaliser
                for c in 0..<classes {
                    let probability = Scalar.exponential(logits[base + c] - logSumExp)
                    var gradient = nllScale * probability
                    if smoothing > 0 { gradient += smoothScale * (probability * weightSum - weights[c]) }
                    gradients[base + c] = gradient
                }
                gradients[base + y] -= nllScale
            }
        }
        return ((1 - smoothing) * nllSum + smoothingPerClass * smoothSum) / normaliser
    }
}

// MARK: - Binary cross-entropy with logits

/// Element-wise sigmoid + binary cross-entropy for multi-label targets, matching
/// `torch.nn.functional.binary_cross_entropy_with_logits` with `reduction="mean"` and
/// `pos_weight`: the mean over all N*C elements of
/// `(1 - y) x + (1 + (p_c - 1) y) softplus(-x)`, computed without overflow.
public struct BinaryCrossEntropyWithLogits: Sendable, Equatable {
    /// One weight per output column applied to positive targets, or nil for all ones.
    public var positiveWeights: [Double]?

    public init(positiveWeights: [Double]? = nil) {
        self.positiveWeights = positiveWeights
    }

    /// Mean loss; writes d(loss)/d(logits) * lossScale when asked.
    /// - Parameters:
    ///   - logits: (N, C) scores.
    ///   - targets: (N, C) values in [0, 1].
    ///   - logitGradients: (N, C) output, or nil.
    public func evaluate(
        logits: UnsafeBufferPointer<Float>, targets: UnsafeBufferPointer<Float>, columns: Int,
        logitGradients: UnsafeMutableBufferPointer<Float>? = nil, lossScale: Float = 1
    ) throws -> Float {
        try binaryCrossEntropy(logits: logits, targets: targets, columns: columns, gradients: logitGradients, lossScale: lossScale)
    }

    /// The Double reference path of `evaluate`.
    public func evaluate(
        logits: UnsafeBufferPointer<Double>, targets: UnsafeBufferPointer<Double>, columns: Int,
        logitGradients: UnsafeMutableBufferPointer<Double>? = nil, lossScale: Double = 1
    ) throws -> Double {
        try binaryCrossEntropy(logits: logits, targets: targets, columns: columns, gradients: logitGradients, lossScale: lossScale)
    }

    private func binaryCrossEntropy<Scalar: LossScalar>(
        logits: UnsafeBufferPointer<Scalar>, targets: UnsafeBufferPointer<Scalar>, columns: Int,
        gradients: UnsafeMutableBufferPointer<Scalar>?, lossScale: Scalar
    ) throws -> Scalar {
        guard columns > 0, logits.count % columns == 0 else {
            throw TrainingError.shapeMismatch(what: "logits", expected: (logits.count / Swift.max(columns, 1)) * Swift.max(columns, 1), actual: logits.count)
        }
        try checkSameShape(logits.count, targets.count, gradients?.count)
        if let positiveWeights, positiveWeights.count != columns {
            throw TrainingError.shapeMismatch(what: "positive weights", expected: columns, actual: positiveWeights.count)
        }
        let count = logits.count
        guard count > 0 else { return 0 }
        let weights: [Scalar] = positiveWeights.map { $0.map { Scalar($0) } } ?? Array(repeating: 1, count: columns)
        let gradientScale = lossScale / Scalar(count)
        var sum: Scalar = 0
        for index in 0..<count {
            let x = logits[index]
            let y = targets[index]
            let positiveWeight = weights[index % columns]
            // softplus(-x) = log(1 + e^-|x|) + max(-x, 0) never exponentiates a positive number.
            let softplusNegative = Scalar.logarithmOnePlus(Scalar.exponential(-Swift.abs(x))) + Swift.max(-x, 0)
            let positiveFactor = 1 + (positiveWeight - 1) * y
            sum += (1 - y) * x + positiveFactor * softplusNegative
            if let gradients {
                // d softplus(-x)/dx = -(1 - sigmoid(x)) = -sigmoid(-x).
                gradients[index] = gradientScale * ((1 - y) - positiveFactor * sigmoid(-x))
            }
        }
        return sum / Scalar(count)
    }
}

/// 1 / (1 + e^-x) without overflow for large |x|.
@inline(__always)
func sigmoid<Scalar: LossScalar>(_ x: Scalar) -> Scalar {
    if x >= 0 { return 1 / (1 + Scalar.exponential(-x)) }
    let e = Scalar.exponential(x)
    return e / (1 + e)
}

private func checkSameShape(_ inputCount: Int, _ targetCount: Int, _ gradientCount: Int?) throws {
    guard targetCount == inputCount else {
        throw TrainingError.shapeMismatch(what: "targets", expected: inputCount, actual: targetCount)
    }
    if let gradientCount, gradientCount != inputCount {
        throw TrainingError.shapeMismatch(what: "input gradients", expected: inputCount, actual: gradientCount)
    }
}

// MARK: - Regression losses

/// Mean squared error, matching `torch.nn.functional.mse_loss` (mean over all elements).
public struct MeanSquaredError: Sendable, Equatable {
    public init() {}

    /// Mean of (prediction - target)^2; writes d(loss)/d(predictions) * lossScale when asked.
    public func evaluate(
        predictions: UnsafeBufferPointer<Float>, targets: UnsafeBufferPointer<Float>,
        predictionGradients: UnsafeMutableBufferPointer<Float>? = nil, lossScale: Float = 1
    ) throws -> Float {
        try huberOrSquared(predictions, targets, predictionGradients, lossScale, delta: nil)
    }

    /// The Double reference path of `evaluate`.
    public func evaluate(
        predictions: UnsafeBufferPointer<Double>, targets: UnsafeBufferPointer<Double>,
        predictionGradients: UnsafeMutableBufferPointer<Double>? = nil, lossScale: Double = 1
    ) throws -> Double {
        try huberOrSquared(predictions, targets, predictionGradients, lossScale, delta: nil)
    }
}

/// Huber loss, matching `torch.nn.functional.huber_loss`: per element with d = x - y,
/// `0.5 d^2` when |d| < delta and `delta (|d| - 0.5 delta)` otherwise, averaged.
public struct HuberLoss: Sendable, Equatable {
    public var delta: Double

    public init(delta: Double = 1) {
        self.delta = delta
    }

    /// Mean Huber loss; writes d(loss)/d(predictions) * lossScale when asked.
    public func evaluate(
        predictions: UnsafeBufferPointer<Float>, targets: UnsafeBufferPointer<Float>,
        predictionGradients: UnsafeMutableBufferPointer<Float>? = nil, lossScale: Float = 1
    ) throws -> Float {
        try validate()
        return try huberOrSquared(predictions, targets, predictionGradients, lossScale, delta: Float(delta))
    }

    /// The Double reference path of `evaluate`.
    public func evaluate(
        predictions: UnsafeBufferPointer<Double>, targets: UnsafeBufferPointer<Double>,
        predictionGradients: UnsafeMutableBufferPointer<Double>? = nil, lossScale: Double = 1
    ) throws -> Double {
        try validate()
        return try huberOrSquared(predictions, targets, predictionGradients, lossScale, delta: delta)
    }

    private func validate() throws {
        guard delta > 0, delta.isFinite else {
            throw TrainingError.invalidLossOption(name: "delta", value: "\(delta)", expected: "a finite value > 0")
        }
    }
}

/// Shared body of MSE (delta nil) and Huber.
private func huberOrSquared<Scalar: LossScalar>(
    _ predictions: UnsafeBufferPointer<Scalar>, _ targets: UnsafeBufferPointer<Scalar>,
    _ gradients: UnsafeMutableBufferPointer<Scalar>?, _ lossScale: Scalar, delta: Scalar?
) throws -> Scalar {
    try checkSameShape(predictions.count, targets.count, gradients?.count)
    let count = predictions.count
    guard count > 0 else { return 0 }
    let gradientScale = lossScale / Scalar(count)
    var sum: Scalar = 0
    for index in 0..<count {
        let difference = predictions[index] - targets[index]
        let gradient: Scalar
        if let delta, Swift.abs(difference) >= delta {
            sum += delta * (Swift.abs(difference) - delta / 2)
            gradient = difference > 0 ? delta : -delta
        } else if delta != nil {
            sum += difference * difference / 2
            gradient = difference
        } else {
            sum += difference * difference
            gradient = 2 * difference
        }
        if let gradients { gradients[index] = gradientScale * gradient }
    }
    return sum / Scalar(count)
}
