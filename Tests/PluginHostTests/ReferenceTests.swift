import Foundation
import XCTest
@testable import PluginHost

/// Each head, driven through the host and its real .so on a fixed small problem, matches a
/// PyTorch reference head (scripts/reference/head_fixtures.py): outputs, loss, d(features),
/// every parameter gradient, encoded targets and decoded predictions, within 1e-5.
final class ReferenceTests: XCTestCase {
    struct Fixture: Decodable {
        struct Expected: Decodable {
            let targets: [Double]
            let outputs: [Double]
            let loss: Double
            let d_features: [Double]
            let gradients: [String: [Double]]
            let decoded: JSONValue?
        }
        let component: String
        let config: JSONValue
        let hidden_size: Int
        let features: [Float]
        let sequence_offsets: [Int64]
        let word_ids: [Int32]?
        let labels: [JSONValue]
        let parameters: [String: [Float]]
        let expected: Expected
    }

    static let tolerance = 1e-5

    private func check(_ name: String, component: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let url = Repository.fixtures.appendingPathComponent("reference/\(name).json")
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        let head = try HeadInstance(component: allHeads.component(id: component ?? fixture.component), name: name,
                                    configJSON: fixture.config.text, inputWidth: fixture.hidden_size)

        // Parameters: the plugin declares exactly what the reference has; load its values.
        XCTAssertEqual(Set(head.parameters.parameters.map(\.name)), Set(fixture.parameters.keys), "\(name): parameter names", file: file, line: line)
        for parameter in head.parameters.parameters {
            let values = try XCTUnwrap(fixture.parameters[parameter.name])
            XCTAssertEqual(values.count, parameter.count, "\(name): \(parameter.name) size", file: file, line: line)
            _ = head.parameters.values(of: parameter).update(fromContentsOf: values)
        }

        let problem = try HeadProblem(head: head, features: fixture.features, offsets: fixture.sequence_offsets,
                                      wordIds: fixture.word_ids, labels: fixture.labels)
        switch problem.targets.storage {
        case .indices(let values): XCTAssertEqual(values.map(Double.init), fixture.expected.targets, "\(name): encoded targets", file: file, line: line)
        case .values(let values): XCTAssertEqual(maxDifference(values, fixture.expected.targets), 0, accuracy: 1e-6, "\(name): encoded targets", file: file, line: line)
        }
        // Heads with statistics fit them from the targets; the reference used the same rule.
        try head.prepare(targets: problem.targets)
        for parameter in head.parameters.parameters where !parameter.trainable {
            let fitted = Array(head.parameters.values(of: parameter))
            XCTAssertEqual(maxDifference(fitted, fixture.parameters[parameter.name]!.map(Double.init)), 0, accuracy: 1e-6,
                           "\(name): \(parameter.name) after prepare", file: file, line: line)
        }

        let result = try problem.run(replaying: head.random.position)
        let differences: [(String, Double)] = [
            ("outputs", maxDifference(result.outputs, fixture.expected.outputs)),
            ("loss", abs(result.loss - fixture.expected.loss)),
            ("d_features", maxDifference(result.featureGradient, fixture.expected.d_features)),
        ] + head.parameters.parameters.filter(\.trainable).map { parameter in
            ("grad \(parameter.name)", maxDifference(Array(head.parameters.gradients(of: parameter)), fixture.expected.gradients[parameter.name] ?? []))
        }
        XCTAssertEqual(Set(fixture.expected.gradients.keys), Set(head.parameters.parameters.filter(\.trainable).map(\.name)), file: file, line: line)
        print("\(name): " + differences.map { "\($0.0) max diff \(String(format: "%.2e", $0.1))" }.joined(separator: ", "))
        for (what, difference) in differences {
            XCTAssertLessThanOrEqual(difference, Self.tolerance, "\(name): \(what)", file: file, line: line)
        }

        // Decoding: each example's prediction, with label names.
        guard case .array(let expectedDecoded)? = fixture.expected.decoded else { return XCTFail("\(name): no decoded predictions", file: file, line: line) }
        let rowsPerExample = head.layout.granularity == .token
            ? zip(fixture.sequence_offsets.dropFirst(), fixture.sequence_offsets).map { Int($0 - $1) }
            : Array(repeating: 1, count: fixture.sequence_offsets.count - 1)
        var row = 0
        for (index, rows) in rowsPerExample.enumerated() {
            let width = head.layout.outputWidth
            let outputs = Array(result.outputs[(row * width)..<((row + rows) * width)])
            let words = head.layout.granularity == .token ? fixture.word_ids.map { Array($0[row..<(row + rows)]) } : nil
            let decoded = try JSONValue(parsing: head.decode(outputs: outputs, wordIds: words))
            row += rows
            guard case .object(let members) = decoded else { XCTFail("\(name): decoded \(decoded) is not an object", file: file, line: line); continue }
            switch (expectedDecoded[index], members["label"] ?? members["labels"] ?? members["level"]) {
            case (let expected, let actual?):
                XCTAssertEqual(actual, expected, "\(name): decoded example \(index)", file: file, line: line)
            case (.array(let values), nil):
                // Regression: {"value": x}, or one member per configured name, in target units.
                var keys = ["value"]
                if case .object(let config) = fixture.config, case .array(let names)? = config["names"] {
                    keys = names.compactMap { if case .string(let name) = $0 { return name } else { return nil } }
                }
                XCTAssertEqual(Set(members.keys), Set(keys), "\(name): decoded members", file: file, line: line)
                for (key, expected) in zip(keys, values) {
                    guard case .number(let actual)? = members[key], case .number(let wanted) = expected else {
                        XCTFail("\(name): decoded \(key) is not a number", file: file, line: line)
                        continue
                    }
                    XCTAssertEqual(actual, wanted, accuracy: 1e-4, "\(name): decoded \(key) of example \(index)", file: file, line: line)
                }
            default:
                XCTFail("\(name): unexpected decoded form \(decoded)", file: file, line: line)
            }
        }
    }

    func testClassificationCLS() throws { try check("classification-cls") }
    func testClassificationMeanHiddenWeightedSmoothed() throws { try check("classification-mean-hidden-weighted-smoothed") }
    func testClassificationMultiLabelMax() throws { try check("classification-multilabel-max") }
    func testMultiLabelComponentIsTheSameHead() throws {
        try check("classification-multilabel-max", component: "polyhead.multi_label_classification")
    }
    func testRegressionMSEMean() throws { try check("regression-mse-mean") }
    func testRegressionHuberStandardized() throws { try check("regression-huber-standardized") }
    func testTokenClassification() throws { try check("token-classification") }
    func testOrdinalCHead() throws { try check("ordinal-c-head") }
}
