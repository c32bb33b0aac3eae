import Foundation
import XCTest
@testable import Training

/// One loss configuration applied to one flat input, in either precision.
private enum LossUnderTest {
    case crossEntropy(SoftmaxCrossEntropy, targets: [Int32], classes: Int)
    case binaryCrossEntropy(BinaryCrossEntropyWithLogits, targets: [Double], columns: Int)
    case meanSquared(targets: [Double])
    case huber(HuberLoss, targets: [Double])

    func evaluate(_ input: [Double], lossScale: Double = 1) throws -> (loss: Double, gradient: [Double]) {
        var gradient = [Double](repeating: .nan, count: input.count)
        let loss: Double = try input.withUnsafeBufferPointer { x in
            try gradient.withUnsafeMutableBufferPointer { g in
                switch self {
                case let .crossEntropy(loss, targets, classes):
                    return try targets.withUnsafeBufferPointer {
                        try loss.evaluate(logits: x, targets: $0, classes: classes, logitGradients: g, lossScale: lossScale)
                    }
                case let .binaryCrossEntropy(loss, targets, columns):
                    return try targets.withUnsafeBufferPointer {
                        try loss.evaluate(logits: x, targets: $0, columns: columns, logitGradients: g, lossScale: lossScale)
                    }
                case let .meanSquared(targets):
                    return try targets.withUnsafeBufferPointer {
                        try MeanSquaredError().evaluate(predictions: x, targets: $0, predictionGradients: g, lossScale: lossScale)
                    }
                case let .huber(loss, targets):
                    return try targets.withUnsafeBufferPointer {
                        try loss.evaluate(predictions: x, targets: $0, predictionGradients: g, lossScale: lossScale)
                    }
                }
            }
        }
        return (loss, gradient)
    }

    /// The same evaluation through the Float entry points.
    func evaluateFloat(_ input: [Float]) throws -> (loss: Float, gradient: [Float]) {
        var gradient = [Float](repeating: .nan, count: input.count)
        let loss: Float = try input.withUnsafeBufferPointer { x in
            try gradient.withUnsafeMutableBufferPointer { g in
                switch self {
                case let .crossEntropy(loss, targets, classes):
                    return try targets.withUnsafeBufferPointer {
                        try loss.evaluate(logits: x, targets: $0, classes: classes, logitGradients: g)
                    }
                case let .binaryCrossEntropy(loss, targets, columns):
                    return try targets.map(Float.init).withUnsafeBufferPointer {
                        try loss.evaluate(logits: x, targets: $0, columns: columns, logitGradients: g)
                    }
                case let .meanSquared(targets):
                    return try targets.map(Float.init).withUnsafeBufferPointer {
                        try MeanSquaredError().evaluate(predictions: x, targets: $0, predictionGradients: g)
                    }
                case let .huber(loss, targets):
                    return try targets.map(Float.init).withUnsafeBufferPointer {
                        try loss.evaluate(predictions: x, targets: $0, predictionGradients: g)
                    }
                }
            }
        }
        return (loss, gradient)
    }
}

private struct LossFixture: Decodable {
    struct Options: Decodable {
        var ignore_index: Int32?
        var class_weights: [Double]?
        var label_smoothing: Double?
        var positive_weights: [Double]?
        var delta: Double?
    }
    struct Case: Decodable {
        var name: String
        var loss: String
        var options: Options
        var shape: [Int]
        var input: [Double]
        var target: [Double]
        var value: Double
        var gradient: [Double]
    }
    var cases: [Case]
}

final class LossTests: XCTestCase {
    private func randomConfigurations(_ generator: inout SeededGenerator) -> [(String, LossUnderTest, Int)] {
        let rows = 5, classes = 4
        var targets = (0..<rows).map { _ in Int32.random(in: 0..<Int32(classes), using: &generator) }
        targets[2] = -100
        let weights = (0..<classes).map { _ in Double.random(in: 0.2...2, using: &generator) }
        let soft = (0..<rows * classes).map { _ in Double.random(in: 0...1, using: &generator) }
        let regression = (0..<rows * classes).map { _ in Double.random(in: -2...2, using: &generator) }
        let count = rows * classes
        return [
            ("cross-entropy", .crossEntropy(SoftmaxCrossEntropy(), targets: targets, classes: classes), count),
            ("cross-entropy weighted", .crossEntropy(SoftmaxCrossEntropy(classWeights: weights), targets: targets, classes: classes), count),
            ("cross-entropy smoothed", .crossEntropy(SoftmaxCrossEntropy(labelSmoothing: 0.15), targets: targets, classes: classes), count),
            ("cross-entropy weighted smoothed", .crossEntropy(SoftmaxCrossEntropy(classWeights: weights, labelSmoothing: 0.3), targets: targets, classes: classes), count),
            ("bce", .binaryCrossEntropy(BinaryCrossEntropyWithLogits(), targets: soft, columns: classes), count),
            ("bce positive weights", .binaryCrossEntropy(BinaryCrossEntropyWithLogits(positiveWeights: weights), targets: soft, columns: classes), count),
            ("mse", .meanSquared(targets: regression), count),
            ("huber", .huber(HuberLoss(delta: 0.7), targets: regression), count),
        ]
    }

    /// Every loss's analytic gradient against central differences of its own Double loss.
    func testGradientsMatchFiniteDifferences() throws {
        var generator = SeededGenerator(seed: 11)
        for (name, loss, count) in randomConfigurations(&generator) {
            let input = (0..<count).map { _ in Double.random(in: -3...3, using: &generator) }
            let (_, analytic) = try loss.evaluate(input)
            let step = 1e-6
            var numeric: [Double] = []
            for index in input.indices {
                var plus = input, minus = input
                plus[index] += step
                minus[index] -= step
                numeric.append((try loss.evaluate(plus).loss - loss.evaluate(minus).loss) / (2 * step))
            }
            assertClose(analytic, numeric, relative: 1e-6, absolute: 1e-8, "\(name) gradient vs finite differences")
            XCTAssertGreaterThan(analytic.map(abs).max() ?? 0, 1e-3, "\(name): a vanishing gradient would make this check empty")
        }
    }

    /// The Float path agrees with the Double reference path.
    func testFloatPathMatchesDoublePath() throws {
        var generator = SeededGenerator(seed: 12)
        for (name, loss, count) in randomConfigurations(&generator) {
            let input = (0..<count).map { _ in Double.random(in: -3...3, using: &generator) }
            let reference = try loss.evaluate(input)
            let single = try loss.evaluateFloat(input.map(Float.init))
            XCTAssertEqual(Double(single.loss), reference.loss, accuracy: 1e-6 * max(1, abs(reference.loss)), name)
            assertClose(single.gradient.map(Double.init), reference.gradient, relative: 1e-5, absolute: 1e-7, "\(name) Float gradient")
        }
    }

    /// The loss scale multiplies the gradient and leaves the loss alone.
    func testLossScaleMultipliesGradient() throws {
        var generator = SeededGenerator(seed: 13)
        for (name, loss, count) in randomConfigurations(&generator) {
            let input = (0..<count).map { _ in Double.random(in: -3...3, using: &generator) }
            let plain = try loss.evaluate(input)
            let scaled = try loss.evaluate(input, lossScale: 0.25)
            XCTAssertEqual(scaled.loss, plain.loss, name)
            assertClose(scaled.gradient, plain.gradient.map { $0 * 0.25 }, relative: 1e-12, absolute: 0, "\(name) scaled gradient")
        }
    }

    /// Values and gradients against torch.nn.functional in float64 (losses.json).
    func testMatchesPyTorch() throws {
        let fixture = try decodeFixture(LossFixture.self, "losses.json")
        XCTAssertGreaterThanOrEqual(fixture.cases.count, 12)
        for item in fixture.cases {
            let columns = item.shape.count > 1 ? item.shape[1] : 1
            let loss: LossUnderTest
            switch item.loss {
            case "cross_entropy":
                let options = SoftmaxCrossEntropy(ignoreIndex: item.options.ignore_index ?? -100, classWeights: item.options.class_weights,
                                                  labelSmoothing: item.options.label_smoothing ?? 0)
                loss = .crossEntropy(options, targets: item.target.map { Int32($0) }, classes: columns)
            case "bce_with_logits":
                loss = .binaryCrossEntropy(BinaryCrossEntropyWithLogits(positiveWeights: item.options.positive_weights), targets: item.target, columns: columns)
            case "mse":
                loss = .meanSquared(targets: item.target)
            case "huber":
                loss = .huber(HuberLoss(delta: item.options.delta ?? 1), targets: item.target)
            default:
                XCTFail("unknown loss \(item.loss) in losses.json")
                continue
            }
            let result = try loss.evaluate(item.input)
            XCTAssertEqual(result.loss, item.value, accuracy: 1e-12 * max(1, abs(item.value)), item.name)
            assertClose(result.gradient, item.gradient, relative: 1e-10, absolute: 1e-14, "\(item.name) gradient")
            let single = try loss.evaluateFloat(item.input.map(Float.init))
            XCTAssertTrue(single.loss.isFinite && single.gradient.allSatisfy(\.isFinite), "\(item.name): Float path overflowed")
            XCTAssertEqual(Double(single.loss), item.value, accuracy: 1e-5 * max(1, abs(item.value)), "\(item.name) Float")
        }
    }

    func testAllRowsIgnoredGivesZeroLossAndGradient() throws {
        let loss = LossUnderTest.crossEntropy(SoftmaxCrossEntropy(), targets: [-100, -100], classes: 3)
        let result = try loss.evaluate([1, 2, 3, 4, 5, 6])
        XCTAssertEqual(result.loss, 0)
        XCTAssertEqual(result.gradient, [0, 0, 0, 0, 0, 0])
    }

    func testIgnoredRowsGetZeroGradient() throws {
        let loss = LossUnderTest.crossEntropy(SoftmaxCrossEntropy(labelSmoothing: 0.1), targets: [1, -100], classes: 2)
        let result = try loss.evaluate([0.5, -0.5, 3, 1])
        XCTAssertEqual(Array(result.gradient[2...]), [0, 0])
        XCTAssertNotEqual(result.gradient[0], 0)
    }

    func testRejectsBadInputs() throws {
        let logits: [Float] = [0, 1, 2, 3, 4, 5]
        try logits.withUnsafeBufferPointer { x in
            let outOfRange: [Int32] = [0, 3]
            try outOfRange.withUnsafeBufferPointer { targets in
                XCTAssertThrowsError(try SoftmaxCrossEntropy().evaluate(logits: x, targets: targets, classes: 3)) {
                    XCTAssertEqual($0 as? TrainingError, .targetOutOfRange(row: 1, target: 3, classes: 3, ignoreIndex: -100))
                    XCTAssertTrue("\($0)".contains("label mapping"))
                }
                XCTAssertThrowsError(try SoftmaxCrossEntropy().evaluate(logits: x, targets: targets, classes: 4)) {
                    XCTAssertEqual($0 as? TrainingError, .shapeMismatch(what: "logits", expected: 8, actual: 6))
                }
                XCTAssertThrowsError(try SoftmaxCrossEntropy(classWeights: [1, 2]).evaluate(logits: x, targets: targets, classes: 3)) {
                    XCTAssertEqual($0 as? TrainingError, .shapeMismatch(what: "class weights", expected: 3, actual: 2))
                }
                XCTAssertThrowsError(try SoftmaxCrossEntropy(labelSmoothing: 1.5).evaluate(logits: x, targets: targets, classes: 3))
            }
            let shortTargets: [Float] = [1, 2]
            try shortTargets.withUnsafeBufferPointer { targets in
                XCTAssertThrowsError(try MeanSquaredError().evaluate(predictions: x, targets: targets)) {
                    XCTAssertEqual($0 as? TrainingError, .shapeMismatch(what: "targets", expected: 6, actual: 2))
                }
                XCTAssertThrowsError(try HuberLoss(delta: 0).evaluate(predictions: x, targets: targets))
                XCTAssertThrowsError(try BinaryCrossEntropyWithLogits().evaluate(logits: x, targets: targets, columns: 3))
            }
        }
    }
}
