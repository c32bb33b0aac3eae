import Foundation
import XCTest
@testable import Training

final class LossWeightingTests: XCTestCase {
    func settings(_ name: String, options: JSONObject = JSONObject()) -> LossWeightingSettings {
        LossWeightingSettings(name: name, options: options, location: ConfigLocation(file: "run.yaml", line: 20, keyPath: "training.loss_weighting"))
    }

    func tasks(_ weights: [Double]) throws -> [TaskConfig] {
        let yaml = "tasks:\n" + weights.enumerated().map { "  task\($0):\n    data: {train: t\($0).jsonl}\n    loss_weight: \($1)\n" }.joined()
        return try RunConfig.parse(yaml: yaml, file: "run.yaml").tasks
    }

    func testStaticWeightsAndAbsentTasks() throws {
        let weighting = try LossWeightingRegistry.make(settings("static"), tasks: try tasks([1, 0.5, 2]))
        XCTAssertEqual(weighting.name, "static")
        XCTAssertNil(weighting.parameters)
        let all = weighting.combine(losses: [2, 4, 1])
        XCTAssertEqual(all.total, 2 + 2 + 2)
        XCTAssertEqual(all.lossGradients, [1, 0.5, 2])
        XCTAssertEqual(all.parameterGradients, [])
        let partial = weighting.combine(losses: [nil, 4, nil])
        XCTAssertEqual(partial.total, 2)
        XCTAssertEqual(partial.lossGradients, [0, 0.5, 0])
    }

    /// d(total)/d(L_i) and d(total)/d(s_i) against central finite differences.
    func testUncertaintyGradientsMatchFiniteDifferences() throws {
        var options = JSONObject()
        options["initial_log_variance"] = .number(0.3)
        let weighting = try LossWeightingRegistry.make(settings("uncertainty", options: options), tasks: try tasks([1, 1, 1, 1]))
        let parameters = try XCTUnwrap(weighting.parameters)
        XCTAssertEqual(Array(parameters.values), [0.3, 0.3, 0.3, 0.3])
        // Distinct log-variances, including negative ones, and one absent task.
        for (index, value) in [Float(-0.7), 0.2, 1.3, 0.5].enumerated() { parameters.values[index] = value }
        let losses: [Float?] = [2.5, 0.4, 3.1, nil]
        let combination = weighting.combine(losses: losses)

        let step: Float = 1e-2
        for task in 0..<4 {
            let saved = parameters.values[task]
            parameters.values[task] = saved + step
            let plus = weighting.combine(losses: losses).total
            parameters.values[task] = saved - step
            let minus = weighting.combine(losses: losses).total
            parameters.values[task] = saved
            let numeric = (plus - minus) / (2 * step)
            XCTAssertEqual(combination.parameterGradients[task], numeric, accuracy: 2e-3, "d total / d s_\(task)")

            guard let loss = losses[task] else {
                XCTAssertEqual(combination.lossGradients[task], 0)
                XCTAssertEqual(combination.parameterGradients[task], 0)
                continue
            }
            var perturbed = losses
            perturbed[task] = loss + step
            let lossPlus = weighting.combine(losses: perturbed).total
            perturbed[task] = loss - step
            let lossMinus = weighting.combine(losses: perturbed).total
            XCTAssertEqual(combination.lossGradients[task], (lossPlus - lossMinus) / (2 * step), accuracy: 2e-3, "d total / d L_\(task)")
        }
        // The closed form, too: total = sum exp(-s) L + s over present tasks.
        let expected = zip([-0.7, 0.2, 1.3], [2.5, 0.4, 3.1]).reduce(0.0) { $0 + exp(-$1.0) * $1.1 + $1.0 }
        XCTAssertEqual(Double(combination.total), expected, accuracy: 1e-5)
    }

    /// Descending the s_i gradient with fixed losses drives each weight exp(-s_i) to 1/L_i,
    /// the optimum of exp(-s) L + s.
    func testUncertaintyLearnsInverseLossWeights() throws {
        let weighting = UncertaintyLossWeighting(taskNames: ["a", "b"])
        let parameters = try XCTUnwrap(weighting.parameters)
        XCTAssertEqual(parameters.names, ["loss_weighting.log_variance.a", "loss_weighting.log_variance.b"])
        let losses: [Float?] = [4, 0.25]
        for _ in 0..<2000 {
            parameters.accumulate(weighting.combine(losses: losses))
            for index in 0..<2 {
                parameters.values[index] -= 0.05 * parameters.gradients[index]
                parameters.gradients[index] = 0
            }
        }
        XCTAssertEqual(weighting.weights[0], 0.25, accuracy: 1e-4)
        XCTAssertEqual(weighting.weights[1], 4, accuracy: 1e-3)
    }

    func testAccumulateAddsAcrossMicroBatches() throws {
        let weighting = UncertaintyLossWeighting(taskNames: ["a", "b"])
        let parameters = try XCTUnwrap(weighting.parameters)
        parameters.accumulate(weighting.combine(losses: [3, nil]))
        parameters.accumulate(weighting.combine(losses: [1, 2]))
        XCTAssertEqual(Array(parameters.gradients), [(1 - 3) + (1 - 1), 1 - 2])
    }

    func testRegistryValidatesNamesAndOptions() {
        XCTAssertEqual(LossWeightingRegistry.names, ["static", "uncertainty"])
        XCTAssertThrowsError(try LossWeightingRegistry.validate(settings("gradnorm"))) { error in
            XCTAssertTrue("\(error)".hasPrefix("run.yaml:20: training.loss_weighting: unknown loss weighting 'gradnorm'"), "\(error)")
        }
        var options = JSONObject()
        options["initial_log_variance"] = .string("zero")
        XCTAssertThrowsError(try LossWeightingRegistry.validate(settings("uncertainty", options: options))) { error in
            XCTAssertTrue("\(error)".contains("expected a number, got \"zero\""), "\(error)")
        }
        var staticOptions = JSONObject()
        staticOptions["weights"] = .array([])
        XCTAssertThrowsError(try LossWeightingRegistry.validate(settings("static", options: staticOptions))) { error in
            XCTAssertTrue("\(error)".contains("static takes no options"), "\(error)")
        }
    }
}
