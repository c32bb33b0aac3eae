import Foundation
import XCTest
@testable import Training

/// `custom_metrics`: plugin extension functions, called through libffi, scored beside the
/// built-in metrics in every evaluation.
final class TrainerCustomMetricTests: XCTestCase {
    /// The classification head publishes its own accuracy function; named in the run config it
    /// lands in metrics.jsonl and equals the host's accuracy on the same predictions.
    func testPluginMetricFunctionIsScoredBesideTheBuiltInOnes() throws {
        let runs = try TinyRuns()
        let task = TinyRuns.task("animal", extra: "    custom_metrics: [polyhead.heads.classification.accuracy, polyhead.heads.classification.macro_f1]")
        let config = try runs.load(runs.config(tasks: [task], training: tinyTraining(steps: 3)))
        XCTAssertEqual(config.tasks[0].customMetrics, ["polyhead.heads.classification.accuracy", "polyhead.heads.classification.macro_f1"])
        try runs.train(config)

        let evaluations = try runs.records().filter { $0.kind == .eval || $0.kind == .test }
        XCTAssertFalse(evaluations.isEmpty)
        for record in evaluations {
            let values = try XCTUnwrap(record.tasks["animal"], "step \(record.step) \(record.kind)")
            let pluginAccuracy = try XCTUnwrap(values["polyhead.heads.classification.accuracy"], "the custom metric is logged")
            XCTAssertEqual(pluginAccuracy, try XCTUnwrap(values["accuracy"]), accuracy: 1e-12, "step \(record.step) \(record.kind)")
            XCTAssertNotNil(values["polyhead.heads.classification.macro_f1"])
        }
    }

    /// A name that is not PLUGIN.FUNCTION is a config error with the line; an unknown function
    /// is named when the evaluation needs it.
    func testBadCustomMetricNamesAreRefused() throws {
        let runs = try TinyRuns()
        let bad = TinyRuns.task("animal", extra: "    custom_metrics: [accuracy]")
        XCTAssertThrowsError(try runs.load(runs.config(tasks: [bad], training: tinyTraining(steps: 3)))) { error in
            XCTAssertTrue("\(error)".contains("tasks.animal.custom_metrics"), "\(error)")
            XCTAssertTrue("\(error)".contains("PLUGIN.FUNCTION"), "\(error)")
        }
        let unknown = TinyRuns.task("animal", extra: "    custom_metrics: [polyhead.heads.classification.no_such_metric]")
        let config = try runs.load(runs.config(tasks: [unknown], training: tinyTraining(steps: 3)))
        XCTAssertThrowsError(try runs.train(config)) { error in
            XCTAssertTrue("\(error)".contains("no_such_metric"), "\(error)")
        }
    }
}
