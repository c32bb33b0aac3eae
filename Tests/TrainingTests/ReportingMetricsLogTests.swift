import Foundation
import XCTest
@testable import Training

final class ReportingMetricsLogTests: XCTestCase {
    func testEveryLineIsAJSONObjectVisibleAsSoonAsLogged() throws {
        let directory = try CheckpointTestKit.scratchDirectory(self)
        let url = directory.appendingPathComponent("run/metrics.jsonl")
        let log = try MetricsLog(url: url, elapsedOffset: 100)
        try log.append(step: 10, kind: .train, tasks: ["sentiment": ["loss": 0.75], "topic": ["loss": 1.5]],
                       values: ["learning_rate": 2e-5])
        // Readable before the log is closed: each line goes out in one write.
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8).split(separator: "\n").count, 1)
        try log.append(step: 20, kind: .eval, tasks: ["sentiment": ["accuracy": 0.875, "loss": .nan]])
        try log.append(step: 20, kind: .note, message: "saved checkpoint \"step-20\"\nnext line")
        try log.append(step: 30, kind: .test, tasks: ["topic": ["macro_f1": -.infinity]])

        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.count, 5)
        XCTAssertEqual(lines.last, "", "the file ends with a newline")
        for line in lines.dropLast() {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
            XCTAssertNotNil(object["step"] as? Int)
            XCTAssertTrue(MetricsKind.allCases.map(\.rawValue).contains(object["kind"] as? String ?? ""))
            let wallTime = try XCTUnwrap(object["wall_time"] as? Double)
            XCTAssertEqual(wallTime, Date().timeIntervalSince1970, accuracy: 60)
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(object["elapsed"] as? Double), 100)
            XCTAssertNotNil(object["tasks"] as? [String: Any])
        }

        let records = try MetricsLog.read(url)
        XCTAssertEqual(records.map(\.step), [10, 20, 20, 30])
        XCTAssertEqual(records.map(\.kind), [.train, .eval, .note, .test])
        XCTAssertEqual(records[0].tasks["topic"]?["loss"], 1.5)
        XCTAssertEqual(records[0].values["learning_rate"], 2e-5)
        XCTAssertEqual(records[1].tasks["sentiment"]?["accuracy"], 0.875)
        XCTAssertTrue(records[1].tasks["sentiment"]?["loss"]?.isNaN ?? false, "NaN survives as NaN")
        XCTAssertEqual(records[2].message, "saved checkpoint \"step-20\"\nnext line")
        XCTAssertEqual(records[3].tasks["topic"]?["macro_f1"], -.infinity)
    }

    func testALineCutShortByACrashIsDropped() throws {
        let url = try CheckpointTestKit.scratchDirectory(self).appendingPathComponent("metrics.jsonl")
        do {
            let log = try MetricsLog(url: url)
            try log.append(step: 1, kind: .train, tasks: ["a": ["loss": 1]])
        }
        let handle = try FileHandle(forWritingTo: url)
        handle.seekToEndOfFile()
        handle.write(Data("{\"step\":2,\"kind\":\"tr".utf8))
        try handle.close()

        let log = try MetricsLog(url: url)
        try log.append(step: 2, kind: .train, tasks: ["a": ["loss": 0.5]])
        XCTAssertEqual(try MetricsLog.read(url).map(\.step), [1, 2])
    }

    func testResumingDropsLinesAfterTheCheckpointStep() throws {
        let url = try CheckpointTestKit.scratchDirectory(self).appendingPathComponent("metrics.jsonl")
        do {
            let log = try MetricsLog(url: url)
            for step in stride(from: 10, through: 50, by: 10) {
                try log.append(step: step, kind: .train, tasks: ["a": ["loss": Double(step)]])
            }
        }
        let resumed = try MetricsLog(url: url, resumingAfter: 30)
        try resumed.append(step: 30, kind: .note, message: "resumed from step-30")
        try resumed.append(step: 40, kind: .train, tasks: ["a": ["loss": 4]])
        let records = try MetricsLog.read(url)
        XCTAssertEqual(records.map(\.step), [10, 20, 30, 30, 40])
        XCTAssertEqual(records.last?.tasks["a"]?["loss"], 4)
    }

    func testABadLineIsReportedWithItsNumber() throws {
        let url = try CheckpointTestKit.scratchDirectory(self).appendingPathComponent("metrics.jsonl")
        try Data("{\"step\":1,\"kind\":\"train\",\"wall_time\":0,\"elapsed\":0,\"tasks\":{},\"values\":{}}\n{\"step\":\"x\"}\n".utf8).write(to: url)
        XCTAssertThrowsError(try MetricsLog.read(url)) { error in
            guard let error = error as? MetricsLogError else { return XCTFail("wrong error \(error)") }
            XCTAssertEqual(error.lineNumber, 2)
            XCTAssertTrue(error.description.hasPrefix(url.path + ":2:"), error.description)
        }
        XCTAssertThrowsError(try MetricsLog(url: url, resumingAfter: 1))
    }
}
