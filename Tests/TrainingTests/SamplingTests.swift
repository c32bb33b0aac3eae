import Foundation
import XCTest
@testable import Training

final class SamplingTests: XCTestCase {
    /// Pearson's chi-square statistic of observed counts against expected probabilities.
    func chiSquare(_ counts: [Int], _ probabilities: [Double]) -> Double {
        let total = Double(counts.reduce(0, +))
        return zip(counts, probabilities).reduce(0) { sum, pair in
            let expected = total * pair.1
            return sum + (Double(pair.0) - expected) * (Double(pair.0) - expected) / expected
        }
    }

    /// Chi-square critical values at p = 0.001 by degrees of freedom: a correct sampler fails
    /// one seed in a thousand, a wrong one (off by a few percent over 60,000 draws) always.
    let critical: [Int: Double] = [1: 10.83, 2: 13.82, 3: 16.27]

    func drawTaskCounts(_ sampler: inout TaskSampler, draws: Int) -> [Int] {
        var counts = [Int](repeating: 0, count: sampler.taskCount)
        for _ in 0..<draws { counts[sampler.nextTask()] += 1 }
        return counts
    }

    func testStrategyProbabilitiesFollowTheirFormulas() throws {
        let sizes = [100, 300, 600, 1000]
        func probabilities(_ strategy: SamplingStrategy) throws -> [Double] {
            try TaskSampler(configuration: SamplerConfiguration(taskSizes: sizes, strategy: strategy, seed: 1)).probabilities
        }
        let proportional = try probabilities(.proportional)
        let temperature = try probabilities(.temperature(2))
        let sqrtTotal = sizes.reduce(0.0) { $0 + Double($1).squareRoot() }
        for (index, size) in sizes.enumerated() {
            XCTAssertEqual(proportional[index], Double(size) / 2000, accuracy: 1e-12)
            XCTAssertEqual(temperature[index], Double(size).squareRoot() / sqrtTotal, accuracy: 1e-12)
        }
        XCTAssertEqual(try probabilities(.uniform), [0.25, 0.25, 0.25, 0.25])
        // Temperature 1 is proportional; a huge temperature approaches uniform.
        XCTAssertEqual(try probabilities(.temperature(1)), proportional)
        XCTAssertEqual(try probabilities(.temperature(1e9))[0], 0.25, accuracy: 1e-6)
    }

    func testDrawnProportionsMatchOverManyDraws() throws {
        let sizes = [100, 300, 600]
        for strategy in [SamplingStrategy.proportional, .temperature(3), .uniform] {
            var sampler = try TaskSampler(configuration: SamplerConfiguration(taskSizes: sizes, strategy: strategy, seed: 2024))
            let counts = drawTaskCounts(&sampler, draws: 60_000)
            let statistic = chiSquare(counts, sampler.probabilities)
            XCTAssertLessThan(statistic, try XCTUnwrap(critical[2]), "\(strategy): counts \(counts), expected \(sampler.probabilities)")
        }
        // The test has power: the same counts are far from a sampler that ignored the sizes.
        var proportional = try TaskSampler(configuration: SamplerConfiguration(taskSizes: sizes, strategy: .proportional, seed: 2024))
        let counts = drawTaskCounts(&proportional, draws: 60_000)
        XCTAssertGreaterThan(chiSquare(counts, [1.0 / 3, 1.0 / 3, 1.0 / 3]), 1000)
    }

    func testOversamplingAndCapsChangeEffectiveSizes() throws {
        let configuration = SamplerConfiguration(taskSizes: [100, 1000, 50], strategy: .proportional,
                                                 oversample: [3, 1, 0.5], caps: [nil, 500, nil], seed: 7)
        var sampler = try TaskSampler(configuration: configuration)
        XCTAssertEqual(sampler.effectiveSizes, [300, 500, 25])
        XCTAssertEqual(sampler.epochSize, 825)
        XCTAssertEqual(sampler.stepsPerEpoch(batchSize: 32), 26)
        XCTAssertEqual(sampler.probabilities[0], 300.0 / 825, accuracy: 1e-12)
        let counts = drawTaskCounts(&sampler, draws: 60_000)
        XCTAssertLessThan(chiSquare(counts, sampler.probabilities), try XCTUnwrap(critical[2]), "\(counts)")
    }

    func testRoundRobinCyclesThroughTasks() throws {
        var sampler = try TaskSampler(configuration: SamplerConfiguration(taskSizes: [5, 50, 500], strategy: .roundRobin, seed: 3))
        XCTAssertEqual((0..<7).map { _ in sampler.nextTask() }, [0, 1, 2, 0, 1, 2, 0])
        let batch = sampler.nextBatch(size: 6, mixing: .mixed)
        XCTAssertEqual(batch.parts.map(\.task), [0, 1, 2])
        XCTAssertEqual(batch.parts.map(\.examples.count), [2, 2, 2])
    }

    func testEveryExampleOnceperPassThenReshuffled() throws {
        var sampler = try TaskSampler(configuration: SamplerConfiguration(taskSizes: [40], strategy: .proportional, seed: 11))
        let firstPass = (0..<40).map { _ in sampler.nextExample(task: 0) }
        let secondPass = (0..<40).map { _ in sampler.nextExample(task: 0) }
        XCTAssertEqual(firstPass.sorted(), Array(0..<40))
        XCTAssertEqual(secondPass.sorted(), Array(0..<40))
        XCTAssertNotEqual(firstPass, secondPass, "each pass is shuffled anew")
        XCTAssertNotEqual(firstPass, Array(0..<40), "the order is shuffled")
        XCTAssertEqual(sampler.epochsCompleted, 2)
    }

    func testBatchesByMixingMode() throws {
        var sampler = try TaskSampler(configuration: SamplerConfiguration(taskSizes: [10, 20, 30], strategy: .proportional, seed: 5))
        for _ in 0..<50 {
            let perTask = sampler.nextBatch(size: 16, mixing: .perTask)
            XCTAssertEqual(perTask.parts.count, 1)
            XCTAssertEqual(perTask.exampleCount, 16)
            let mixed = sampler.nextBatch(size: 16, mixing: .mixed)
            XCTAssertEqual(mixed.exampleCount, 16)
            XCTAssertEqual(mixed.parts.map(\.task), mixed.parts.map(\.task).sorted())
            for part in mixed.parts {
                XCTAssertTrue(part.examples.allSatisfy { (0..<[10, 20, 30][part.task]).contains($0) })
            }
        }
        XCTAssertEqual(sampler.drawnExamples, 1600)
    }

    func testSameSeedSameDrawsOtherSeedOtherDraws() throws {
        func draws(seed: UInt64) throws -> [SampledBatch] {
            var sampler = try TaskSampler(configuration: SamplerConfiguration(taskSizes: [10, 20, 30], strategy: .temperature(2), seed: seed))
            return (0..<20).map { _ in sampler.nextBatch(size: 8, mixing: .mixed) }
        }
        XCTAssertEqual(try draws(seed: 9), try draws(seed: 9))
        XCTAssertNotEqual(try draws(seed: 9), try draws(seed: 10))
    }

    /// A sampler restored from a checkpoint continues exactly like the uninterrupted one.
    func testStateRoundTripContinuesIdentically() throws {
        for strategy in [SamplingStrategy.roundRobin, .proportional, .temperature(1.5), .uniform] {
            let configuration = SamplerConfiguration(taskSizes: [7, 19, 64], strategy: strategy, oversample: [2, 1, 1], caps: [nil, nil, 40],
                                                     seed: 0xFEED_FACE_CAFE_BEEF)
            var original = try TaskSampler(configuration: configuration)
            // Stop mid-pass in every task, at an odd point.
            for _ in 0..<37 { _ = original.nextBatch(size: 5, mixing: .mixed) }
            _ = original.nextBatch(size: 3, mixing: .perTask)

            let saved = try original.state.encoded()
            var restored = try TaskSampler(configuration: configuration, restoring: try SamplerState.decode(saved))
            XCTAssertEqual(restored.state, original.state)
            for step in 0..<200 {
                let mixing: BatchMixing = step % 3 == 0 ? .perTask : .mixed
                XCTAssertEqual(restored.nextBatch(size: 9, mixing: mixing), original.nextBatch(size: 9, mixing: mixing), "\(strategy) step \(step)")
            }
            XCTAssertEqual(restored.drawnExamples, original.drawnExamples)
        }
    }

    func testRestoringWithOtherSettingsIsRefused() throws {
        let configuration = SamplerConfiguration(taskSizes: [10, 20], strategy: .proportional, seed: 1)
        var sampler = try TaskSampler(configuration: configuration)
        _ = sampler.nextBatch(size: 4, mixing: .mixed)
        let state = try SamplerState.decode(try sampler.state.encoded())

        var changedData = configuration
        changedData.taskSizes = [10, 21]
        XCTAssertThrowsError(try TaskSampler(configuration: changedData, restoring: state)) { error in
            XCTAssertTrue("\(error)".contains("task sizes [10, 20], now [10, 21]"), "\(error)")
        }
        var changedStrategy = configuration
        changedStrategy.strategy = .temperature(2)
        XCTAssertThrowsError(try TaskSampler(configuration: changedStrategy, restoring: state)) { error in
            XCTAssertTrue("\(error)".contains("sampling proportional"), "\(error)")
        }
        var corrupt = state
        corrupt.cursors = [11, 0]
        XCTAssertThrowsError(try TaskSampler(configuration: configuration, restoring: corrupt)) { error in
            XCTAssertTrue("\(error)".contains("inconsistent"), "\(error)")
        }
        XCTAssertThrowsError(try SamplerState.decode(Data("{\"version\": 2}".utf8))) { error in
            XCTAssertTrue("\(error)".contains("cannot read the saved sampler state"), "\(error)")
        }
    }

    func testStateEncodesLargeWordsExactly() throws {
        let configuration = SamplerConfiguration(taskSizes: [3], strategy: .uniform, seed: UInt64.max)
        var sampler = try TaskSampler(configuration: configuration)
        _ = sampler.nextTask()
        let text = try XCTUnwrap(String(data: try sampler.state.encoded(), encoding: .utf8))
        XCTAssertTrue(text.contains("\"seed\":\"ffffffffffffffff\""), text)
        XCTAssertEqual(try SamplerState.decode(Data(text.utf8)), sampler.state)
    }

    func testInvalidConfigurations() {
        XCTAssertThrowsError(try TaskSampler(configuration: SamplerConfiguration(taskSizes: [], strategy: .uniform, seed: 1)))
        XCTAssertThrowsError(try TaskSampler(configuration: SamplerConfiguration(taskSizes: [3, 0], strategy: .uniform, seed: 1))) { error in
            XCTAssertEqual("\(error)", "task 1 has no training examples to sample")
        }
        XCTAssertThrowsError(try TaskSampler(configuration: SamplerConfiguration(taskSizes: [3], strategy: .temperature(0), seed: 1)))
    }

    /// Balanced class weights equal scikit-learn's compute_class_weight("balanced").
    func testBalancedClassWeightsMatchScikitLearn() throws {
        let fixture = try JSONDecoder().decode(ClassWeightFixture.self, from: Data(contentsOf: URL(fileURLWithPath: DataSideFixtures.path("metrics", "class_weights.json"))))
        XCTAssertFalse(fixture.cases.isEmpty)
        for testCase in fixture.cases {
            var counts = [Int](repeating: 0, count: testCase.classCount)
            for label in testCase.labels { counts[label] += 1 }
            let weights = ClassWeights.balanced(counts: counts)
            for (index, expected) in testCase.expected.enumerated() {
                XCTAssertEqual(Double(weights[index]), expected, accuracy: 1e-6 * max(1, expected), "\(testCase.name) class \(index)")
            }
        }
    }

    struct ClassWeightFixture: Decodable {
        struct Case: Decodable {
            var name: String
            var classCount: Int
            var labels: [Int]
            /// One weight per class; 0 for classes that never occur.
            var expected: [Double]
            enum CodingKeys: String, CodingKey { case name, classCount = "class_count", labels, expected }
        }
        var cases: [Case]
    }
}
