import Foundation
import XCTest
@testable import Training

/// Every metric against scikit-learn / SciPy / seqeval values written by
/// scripts/reference/metrics_fixtures.py.
final class MetricsTests: XCTestCase {
    struct Fixture<Gold: Decodable, Extra: Decodable>: Decodable {
        struct Case: Decodable {
            var name: String
            var gold: Gold
            var predicted: Gold
            var expected: [String: Double]
            var extra: Extra

            enum CodingKeys: String, CodingKey { case name, gold, predicted, expected }

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                name = try container.decode(String.self, forKey: .name)
                gold = try container.decode(Gold.self, forKey: .gold)
                predicted = try container.decode(Gold.self, forKey: .predicted)
                expected = try container.decode([String: Double].self, forKey: .expected)
                extra = try Extra(from: decoder)
            }

            func value(_ metric: MetricName) throws -> Double {
                try XCTUnwrap(expected[metric.rawValue], "\(name) has no expected \(metric.rawValue)")
            }
        }
        var generator: Generator
        var cases: [Case]
    }

    /// The versions that wrote a fixture.
    struct Generator: Decodable {
        var scikitLearn: String
        var scipy: String
        enum CodingKeys: String, CodingKey { case scikitLearn = "scikit-learn", scipy }
    }

    struct NoExtra: Decodable {}
    struct MultiLabelExtra: Decodable {
        var classCount: Int
        enum CodingKeys: String, CodingKey { case classCount = "class_count" }
    }
    struct TokenExtra: Decodable {
        var scheme: String
        var labels: [String]
    }

    func load<Gold: Decodable, Extra: Decodable>(_ name: String, as type: Fixture<Gold, Extra>.Type) throws -> Fixture<Gold, Extra> {
        let data = try Data(contentsOf: URL(fileURLWithPath: DataSideFixtures.path("metrics", name)))
        let fixture = try JSONDecoder().decode(type, from: data)
        XCTAssertFalse(fixture.cases.isEmpty, "\(name) has no cases; rerun scripts/reference/metrics_fixtures.py")
        XCTAssertFalse(fixture.generator.scikitLearn.isEmpty, "\(name) does not record the scikit-learn version")
        return fixture
    }

    let tolerance = 1e-9

    func testClassificationMetrics() throws {
        let fixture = try load("classification.json", as: Fixture<[Int], NoExtra>.self)
        for testCase in fixture.cases {
            let (gold, predicted) = (testCase.gold, testCase.predicted)
            XCTAssertEqual(Metrics.accuracy(gold: gold, predicted: predicted), try testCase.value(.accuracy), accuracy: tolerance, testCase.name)
            XCTAssertEqual(Metrics.macroF1(gold: gold, predicted: predicted), try testCase.value(.macroF1), accuracy: tolerance, testCase.name)
            XCTAssertEqual(Metrics.microF1(gold: gold, predicted: predicted), try testCase.value(.microF1), accuracy: tolerance, testCase.name)
            XCTAssertEqual(Metrics.matthewsCorrelation(gold: gold, predicted: predicted), try testCase.value(.mcc), accuracy: tolerance, testCase.name)

            // The same numbers through the task-level API that the trainer calls.
            let labelNames = (0...max(gold.max() ?? 0, predicted.max() ?? 0)).map { "class\($0)" }
            let scores = try TaskEvaluation.score(task: "t", type: .classification, metrics: [.macroF1, .accuracy, .microF1, .mcc],
                                                  labelNames: labelNames, gold: gold.map(LabelValue.classIndex),
                                                  predicted: predicted.map(LabelValue.classIndex))
            XCTAssertEqual(scores.primaryValue, try testCase.value(.macroF1), accuracy: tolerance, testCase.name)
            XCTAssertEqual(try XCTUnwrap(scores[.mcc]), try testCase.value(.mcc), accuracy: tolerance, testCase.name)
        }
    }

    func testMultiLabelMetrics() throws {
        let fixture = try load("multi_label.json", as: Fixture<[[Int]], MultiLabelExtra>.self)
        for testCase in fixture.cases {
            let (gold, predicted) = (testCase.gold, testCase.predicted)
            XCTAssertEqual(Metrics.subsetAccuracy(gold: gold, predicted: predicted), try testCase.value(.accuracy), accuracy: tolerance, testCase.name)
            XCTAssertEqual(Metrics.multiLabelMacroF1(gold: gold, predicted: predicted), try testCase.value(.macroF1), accuracy: tolerance, testCase.name)
            XCTAssertEqual(Metrics.multiLabelMicroF1(gold: gold, predicted: predicted), try testCase.value(.microF1), accuracy: tolerance, testCase.name)

            let labelNames = (0..<testCase.extra.classCount).map { "class\($0)" }
            let scores = try TaskEvaluation.score(task: "t", type: .multiLabel, metrics: [.microF1, .macroF1, .accuracy], labelNames: labelNames,
                                                  gold: gold.map(LabelValue.classIndices), predicted: predicted.map(LabelValue.classIndices))
            XCTAssertEqual(try XCTUnwrap(scores[.macroF1]), try testCase.value(.macroF1), accuracy: tolerance, testCase.name)
        }
    }

    func testRegressionMetrics() throws {
        let fixture = try load("regression.json", as: Fixture<[Double], NoExtra>.self)
        for testCase in fixture.cases {
            let (gold, predicted) = (testCase.gold, testCase.predicted)
            XCTAssertEqual(Metrics.pearson(gold, predicted), try testCase.value(.pearson), accuracy: tolerance, testCase.name)
            XCTAssertEqual(Metrics.spearman(gold, predicted), try testCase.value(.spearman), accuracy: tolerance, testCase.name)
            let mse = try testCase.value(.mse), mae = try testCase.value(.mae)
            XCTAssertEqual(Metrics.meanSquaredError(gold: gold, predicted: predicted), mse, accuracy: tolerance * max(1, mse), testCase.name)
            XCTAssertEqual(Metrics.meanAbsoluteError(gold: gold, predicted: predicted), mae, accuracy: tolerance * max(1, mae), testCase.name)

            // Through LabelValue, whose values are Float as the heads produce them: 1e-6.
            let scores = try TaskEvaluation.score(task: "t", type: .regression, metrics: [.spearman, .pearson, .mse, .mae], labelNames: [],
                                                  gold: gold.map { .values([Float($0)]) }, predicted: predicted.map { .values([Float($0)]) })
            XCTAssertEqual(try XCTUnwrap(scores[.pearson]), try testCase.value(.pearson), accuracy: 1e-6, testCase.name)
            XCTAssertEqual(try XCTUnwrap(scores[.spearman]), try testCase.value(.spearman), accuracy: 1e-6, testCase.name)
            XCTAssertEqual(try XCTUnwrap(scores[.mse]), mse, accuracy: 1e-6 * max(1, mse), testCase.name)
        }
    }

    func testTokenAndEntityMetrics() throws {
        let fixture = try load("token.json", as: Fixture<[[String]], TokenExtra>.self)
        for testCase in fixture.cases {
            let (gold, predicted) = (testCase.gold, testCase.predicted)
            let scheme = Metrics.TagScheme.detect(labelNames: testCase.extra.labels)
            XCTAssertEqual(scheme, testCase.extra.scheme == "bio" ? .bio : .plain, testCase.name)
            XCTAssertEqual(Metrics.tokenF1(gold: gold, predicted: predicted), try testCase.value(.tokenF1), accuracy: tolerance, testCase.name)
            XCTAssertEqual(Metrics.entityF1(gold: gold, predicted: predicted, scheme: scheme), try testCase.value(.entityF1), accuracy: tolerance, testCase.name)

            let labels = testCase.extra.labels
            func indices(_ sentences: [[String]]) throws -> [LabelValue] {
                try sentences.map { sentence in .wordClasses(try sentence.map { tag in try XCTUnwrap(labels.firstIndex(of: tag)) }) }
            }
            let scores = try TaskEvaluation.score(task: "t", type: .tokenClassification, metrics: [.entityF1, .tokenF1, .accuracy],
                                                  labelNames: labels, gold: try indices(gold), predicted: try indices(predicted))
            XCTAssertEqual(try XCTUnwrap(scores[.accuracy]), try testCase.value(.accuracy), accuracy: tolerance, testCase.name)
            XCTAssertEqual(try XCTUnwrap(scores[.tokenF1]), try testCase.value(.tokenF1), accuracy: tolerance, testCase.name)
            XCTAssertEqual(try XCTUnwrap(scores[.entityF1]), try testCase.value(.entityF1), accuracy: tolerance, testCase.name)
        }
    }

    func testEntityExtractionRules() {
        // BIO: an I- that does not continue its type starts a new entity.
        XCTAssertEqual(Metrics.entities(["B-PER", "I-PER", "I-LOC", "O", "I-LOC", "B-LOC", "I-LOC"], scheme: .bio), [
            .init(type: "PER", start: 0, end: 2), .init(type: "LOC", start: 2, end: 3),
            .init(type: "LOC", start: 4, end: 5), .init(type: "LOC", start: 5, end: 7),
        ])
        // Plain tags: maximal runs of one tag.
        XCTAssertEqual(Metrics.entities(["noun.animal", "noun.animal", "noun.plant", "O", "noun.plant"], scheme: .plain), [
            .init(type: "noun.animal", start: 0, end: 2), .init(type: "noun.plant", start: 2, end: 3), .init(type: "noun.plant", start: 4, end: 5),
        ])
        XCTAssertEqual(Metrics.TagScheme.detect(labelNames: ["O", "B-X", "I-X"]), .bio)
        XCTAssertEqual(Metrics.TagScheme.detect(labelNames: ["O", "noun.act", "B-X"]), .plain)
    }

    func testAverageRanksShareTies() {
        XCTAssertEqual(Metrics.averageRanks([10, 20, 10, 30, 20, 10]), [2, 4.5, 2, 6, 4.5, 2])
    }

    func testOverallIsTheMeanOfPrimaryMetrics() throws {
        let first = try TaskEvaluation.score(task: "a", type: .classification, metrics: [.accuracy, .macroF1], labelNames: ["x", "y"],
                                             gold: [.classIndex(0), .classIndex(1)], predicted: [.classIndex(0), .classIndex(0)])
        let second = try TaskEvaluation.score(task: "b", type: .regression, metrics: [.pearson, .mse], labelNames: [],
                                              gold: [.values([1]), .values([2]), .values([3])], predicted: [.values([3]), .values([2]), .values([1])])
        let report = EvaluationReport(tasks: [first, second])
        XCTAssertEqual(first.primaryValue, 0.5)
        XCTAssertEqual(second.primaryValue, -1, accuracy: 1e-12)
        XCTAssertEqual(report.overall, (0.5 - 1) / 2, accuracy: 1e-12)
        XCTAssertEqual(report.value(named: "overall"), report.overall)
        XCTAssertEqual(try XCTUnwrap(report.value(named: "b.mse")), 8.0 / 3, accuracy: 1e-6)
        XCTAssertNil(report.value(named: "b.accuracy"))
        XCTAssertNil(report.value(named: "c.pearson"))
    }

    func testMismatchedPredictionsAreErrors() {
        XCTAssertThrowsError(try TaskEvaluation.score(task: "t", type: .classification, metrics: [.accuracy], labelNames: ["x"],
                                                      gold: [.classIndex(0)], predicted: [])) { error in
            XCTAssertEqual("\(error)", "task t: 1 gold labels but 0 predictions")
        }
        XCTAssertThrowsError(try TaskEvaluation.score(task: "t", type: .tokenClassification, metrics: [.tokenF1], labelNames: ["O", "X"],
                                                      gold: [.wordClasses([0, 1])], predicted: [.wordClasses([0])])) { error in
            XCTAssertEqual("\(error)", "task t: example 0: 2 gold tags but 1 predicted")
        }
        XCTAssertThrowsError(try TaskEvaluation.score(task: "t", type: .classification, metrics: [.pearson], labelNames: ["x"],
                                                      gold: [.classIndex(0)], predicted: [.classIndex(0)]))
    }
}
