import Foundation
import XCTest
@testable import Training

final class ReportingSummaryTests: XCTestCase {
    private func sampleSummary() -> RunSummary {
        var summary = RunSummary(runName: "wordnet | demo", totalSteps: 2000)
        summary.completedSteps = 2000
        summary.started = "2025-01-01T10:00:00Z"
        summary.finished = "2025-01-01T10:12:03Z"
        summary.bestStep = 1600
        summary.bestMetricName = "mean dev accuracy"
        summary.bestMetricValue = 0.8125
        summary.timings = .init(wallSeconds: 723, trainingSeconds: 640, evaluationSeconds: 70, sequencesPerSecond: 2.875)
        summary.checkpoints = ["best": "checkpoints/best", "final": "checkpoints/final"]
        summary.notes = ["resumed from step-800"]
        summary.tasks = [
            .init(task: "supersense", taskType: "classification", dev: ["accuracy": 0.8125, "macro_f1": 0.5], test: ["accuracy": 0.79],
                  baselines: ["majority class": ["accuracy": 0.22]]),
            .init(task: "depth", taskType: "regression", dev: ["pearson": 0.61], test: ["pearson": 0.58],
                  baselines: ["PyTorch reference": ["pearson": 0.6]]),
        ]
        return summary
    }

    func testWritesJSONThatRoundTripsAndReadableMarkdown() throws {
        let directory = try CheckpointTestKit.scratchDirectory(self)
        let summary = sampleSummary()
        try summary.write(to: directory)

        let decoded = try RunSummary.decode(Data(contentsOf: directory.appendingPathComponent("summary.json")))
        XCTAssertEqual(decoded, summary)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("summary.json"))) as? [String: Any])
        XCTAssertEqual(json["best_step"] as? Int, 1600)

        let markdown = try String(contentsOf: directory.appendingPathComponent("summary.md"), encoding: .utf8)
        let lines = markdown.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "# Polyhead run: wordnet \\| demo")
        XCTAssertTrue(lines.contains("| Steps | 2000 of 2000 |"))
        XCTAssertTrue(lines.contains("| Best step | 1600 (mean dev accuracy 0.8125) |"))
        XCTAssertTrue(lines.contains("| Wall time | 12m 03s (training 10m 40s, evaluation 1m 10s) |"))
        XCTAssertTrue(lines.contains("| Training throughput | 2.88 sequences/s |"))
        XCTAssertTrue(lines.contains("| Task | Metric | Dev | Test | PyTorch reference | majority class |"))
        XCTAssertTrue(lines.contains("| supersense (classification) | accuracy | 0.8125 | 0.7900 | – | 0.2200 |"))
        XCTAssertTrue(lines.contains("| supersense (classification) | macro_f1 | 0.5000 | – | – | – |"))
        XCTAssertTrue(lines.contains("| depth (regression) | pearson | 0.6100 | 0.5800 | 0.6000 | – |"))
        XCTAssertTrue(lines.contains("- resumed from step-800"))
        // Every table row has as many cells as its header.
        let resultsStart = try XCTUnwrap(lines.firstIndex(of: "## Results"))
        let resultRows = lines[resultsStart...].filter { $0.hasPrefix("|") }
        func cellBorders(_ line: String) -> Int {
            line.filter { $0 == "|" }.count - (line.components(separatedBy: "\\|").count - 1)
        }
        XCTAssertEqual(resultRows.count, 5)
        XCTAssertEqual(Set(resultRows.map(cellBorders)), [7])
    }

    func testTaskResultsComeFromTheBestEvaluationAndTheLastTest() {
        let records = [
            MetricsRecord(step: 100, kind: .eval, wallTime: 0, elapsed: 0, tasks: ["a": ["accuracy": 0.5], "b": ["f1": 0.1]]),
            MetricsRecord(step: 200, kind: .eval, wallTime: 0, elapsed: 0, tasks: ["a": ["accuracy": 0.7], "b": ["f1": 0.3]]),
            MetricsRecord(step: 300, kind: .eval, wallTime: 0, elapsed: 0, tasks: ["a": ["accuracy": 0.6], "b": ["f1": 0.4]]),
            MetricsRecord(step: 300, kind: .test, wallTime: 0, elapsed: 0, tasks: ["a": ["accuracy": 0.65]]),
        ]
        let best = RunSummary.taskResults(from: records, devStep: 200)
        XCTAssertEqual(best.map(\.task), ["a", "b"])
        XCTAssertEqual(best[0].dev, ["accuracy": 0.7])
        XCTAssertEqual(best[0].test, ["accuracy": 0.65])
        XCTAssertEqual(best[1].test, [:])
        XCTAssertEqual(RunSummary.taskResults(from: records, devStep: nil)[1].dev, ["f1": 0.4])
        // A best step with no evaluation gives no dev numbers rather than another step's.
        XCTAssertEqual(RunSummary.taskResults(from: records, devStep: 250).map(\.dev), [[:]])
    }

    func testDurationsAndNumbers() {
        XCTAssertEqual(RunSummary.duration(12.34), "12.3s")
        XCTAssertEqual(RunSummary.duration(245), "4m 05s")
        XCTAssertEqual(RunSummary.duration(3720), "1h 02m")
        XCTAssertEqual(RunSummary.format(0.5), "0.5000")
        XCTAssertEqual(RunSummary.format(2.5e-5), "2.500e-05")
        XCTAssertEqual(RunSummary.format(.nan), "NaN")
    }
}
