import Foundation
import XCTest
@testable import PluginHost

/// Every head's forward and backward, through the real loaded .so, against central finite
/// differences of its loss: d(loss)/d(features) and d(loss)/d(parameter), every coordinate.
/// Dropout is on where the head has it: the host's random stream is rewound before each
/// evaluation so every evaluation draws the same mask.
final class FiniteDifferenceTests: XCTestCase {
    static let width = 6
    static let offsets: [Int64] = [0, 3, 7, 8, 12] // includes a one-token sequence

    private func check(_ component: String, _ config: String, labels: [JSONValue], wordIds: [Int32]? = nil,
                       separatedFeatures: Bool = false, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        let head = try HeadInstance(component: allHeads.component(id: component), name: "fd-\(seed)", configJSON: config,
                                    inputWidth: Self.width, seed: seed)
        var random = TestRandom(seed: seed)
        let tokens = Int(Self.offsets.last!)
        var features = random.normals(tokens * Self.width)
        if separatedFeatures {
            // Distinct values per sequence and column (gaps of 0.37), so a perturbation never
            // changes which token max pooling picks.
            for (start, end) in zip(Self.offsets, Self.offsets.dropFirst()) {
                for column in 0..<Self.width {
                    var ranks = Array(0..<Int(end - start))
                    for index in ranks.indices.reversed() { ranks.swapAt(index, Int(random.next() % UInt64(index + 1))) }
                    let shift = random.normal() * 0.1
                    for (offset, rank) in ranks.enumerated() { features[(Int(start) + offset) * Self.width + column] = Float(rank) * 0.37 - 0.8 + shift }
                }
            }
        }
        for parameter in head.parameters.parameters where parameter.trainable {
            let values = head.parameters.values(of: parameter)
            for index in values.indices { values[index] = random.normal() * 0.5 }
        }
        var problem = try HeadProblem(head: head, features: features, offsets: Self.offsets, wordIds: wordIds, labels: labels)
        try head.prepare(targets: problem.targets)
        let position = head.random.position
        let analytic = try problem.run(replaying: position)
        let parameterGradients = Array(head.parameters.gradients)

        let epsilon: Float = 1e-2
        var worst = (error: 0.0, what: "")
        func compare(_ numeric: Double, _ exact: Double, _ what: String) {
            let error = abs(numeric - exact) / (1e-3 + abs(exact))
            if error > worst.error { worst = (error, what) }
        }
        for index in 0..<features.count {
            let original = problem.features[index]
            problem.features[index] = original + epsilon
            let plus = try problem.loss(replaying: position)
            problem.features[index] = original - epsilon
            let minus = try problem.loss(replaying: position)
            problem.features[index] = original
            compare((plus - minus) / Double(2 * epsilon), Double(analytic.featureGradient[index]), "d_features[\(index)]")
        }
        for parameter in head.parameters.parameters where parameter.trainable {
            let values = head.parameters.values(of: parameter)
            for index in values.indices {
                let original = values[index]
                values[index] = original + epsilon
                let plus = try problem.loss(replaying: position)
                values[index] = original - epsilon
                let minus = try problem.loss(replaying: position)
                values[index] = original
                compare((plus - minus) / Double(2 * epsilon), Double(parameterGradients[parameter.offset + index]), "\(parameter.name)[\(index)]")
            }
        }
        let gradientSize = analytic.featureGradient.map { abs(Double($0)) }.max() ?? 0
        print("\(component) \(config): loss \(analytic.loss), worst relative error \(String(format: "%.2e", worst.error)) at \(worst.what), max |d_features| \(gradientSize)")
        XCTAssertGreaterThan(gradientSize, 1e-4, "the check is vacuous if the gradient is zero", file: file, line: line)
        XCTAssertLessThan(worst.error, 2e-2, "\(component): finite differences disagree at \(worst.what)", file: file, line: line)
    }

    func testClassificationSingleLabelWithHiddenLayerDropoutWeightsAndSmoothing() throws {
        try check("polyhead.classification",
                  #"{"labels": ["a", "b", "c"], "pooling": "cls", "hidden_size": 5, "activation": "gelu", "dropout": 0.2, "class_weights": [1, 3, 0.5], "label_smoothing": 0.1}"#,
                  labels: [.string("a"), .string("c"), .string("b"), .string("c")], seed: 11)
    }

    func testClassificationMeanPoolingBalancedWeights() throws {
        try check("polyhead.classification", #"{"labels": ["x", "y"], "pooling": "mean", "class_weights": "balanced"}"#,
                  labels: [.string("x"), .string("y"), .string("y"), .string("y")], seed: 12)
    }

    func testClassificationMultiLabelMaxPooling() throws {
        try check("polyhead.classification",
                  #"{"labels": ["p", "q", "r"], "multi_label": true, "pooling": "max", "hidden_size": 4, "activation": "tanh", "dropout": 0.1, "label_smoothing": 0.05}"#,
                  labels: [.array([.string("p")]), .array([]), .array([.string("q"), .string("r")]), .array([.string("p"), .string("r")])],
                  separatedFeatures: true, seed: 13)
    }

    func testRegressionStandardizedWithHiddenLayerAndDropout() throws {
        try check("polyhead.regression", #"{"outputs": 2, "pooling": "mean", "hidden_size": 4, "activation": "tanh", "dropout": 0.3, "standardize": true}"#,
                  labels: [.array([.number(1), .number(10)]), .array([.number(2), .number(14)]), .array([.number(0.5), .number(9)]), .array([.number(3), .number(11)])],
                  seed: 14)
    }

    func testRegressionHuberCLS() throws {
        try check("polyhead.regression", #"{"pooling": "cls", "loss": "huber", "huber_delta": 0.7}"#,
                  labels: [.number(0.2), .number(-1.5), .number(2.5), .number(0.9)], seed: 15)
    }

    func testTokenClassificationWithDropoutAndSmoothing() throws {
        // Word ids per sequence restart at 0; -1 marks [CLS]/[SEP]; repeated ids are later pieces.
        let wordIds: [Int32] = [-1, 0, -1, -1, 0, 0, -1, 0, -1, 0, 1, -1]
        try check("polyhead.token_classification", #"{"labels": ["O", "B", "I"], "dropout": 0.25, "label_smoothing": 0.1}"#,
                  labels: [.array([.string("B")]), .array([.string("I")]), .array([.string("O")]), .array([.string("B"), .string("I")])],
                  wordIds: wordIds, seed: 16)
    }

    func testOrdinalCHead() throws {
        try check("example.ordinal", #"{"levels": ["low", "mid", "high"], "pooling": "mean"}"#,
                  labels: [.string("low"), .string("high"), .number(1), .string("mid")], seed: 17)
        try check("example.ordinal", #"{"levels": ["low", "mid", "high", "top"], "pooling": "cls"}"#,
                  labels: [.string("top"), .string("low"), .string("mid"), .string("high")], seed: 18)
    }

    /// Dropout really is on in these checks: two different stream positions give two losses.
    func testDropoutDrawsFromTheHostStream() throws {
        let head = try HeadInstance(component: allHeads.component(id: "polyhead.classification"), name: "dropout",
                                    configJSON: #"{"labels": ["a", "b"], "dropout": 0.5}"#, inputWidth: Self.width, seed: 3)
        var random = TestRandom(seed: 5)
        let problem = try HeadProblem(head: head, features: random.normals(12 * Self.width), offsets: Self.offsets, wordIds: nil,
                                      labels: [.string("a"), .string("b"), .string("a"), .string("b")])
        let position = head.random.position
        let first = try problem.loss(replaying: position)
        XCTAssertEqual(try problem.loss(replaying: position), first, "same position, same mask")
        _ = head.random.next()
        XCTAssertNotEqual(try problem.loss(replaying: head.random.position), first, "another position, another mask")
        // Without training, no dropout: the outputs do not depend on the stream.
        let evaluate = { try problem.features.withUnsafeBufferPointer { try head.forward(features: $0, sequenceOffsets: Self.offsets, training: false).outputs } }
        let before = try evaluate()
        _ = head.random.next()
        XCTAssertEqual(try evaluate(), before)
    }
}
