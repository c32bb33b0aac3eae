import Foundation
import XCTest
@testable import Training

final class ReportingProgressTests: XCTestCase {
    /// A clock the test advances by hand and a sink that keeps what would be shown.
    private final class Harness {
        var now = 1000.0
        var output: [String] = []
    }

    func testPlainStyleLogsEveryNStepsWithRatesAndETA() {
        let harness = Harness()
        let progress = ProgressReporter(totalSteps: 25, style: .plain, logEvery: 10,
                                        clock: { harness.now }, output: { harness.output.append($0) })
        for step in 1...25 {
            harness.now += 0.5
            progress.update(step: step, loss: 1.0 / Double(step), sequences: 8)
        }
        progress.finish()
        XCTAssertEqual(harness.output, [
            "step 10/25 (40.0%)  loss 0.1000  16.00 seq/s  0.50 s/step  ETA 7.5s\n",
            "step 20/25 (80.0%)  loss 0.0500  16.00 seq/s  0.50 s/step  ETA 2.5s\n",
            "step 25/25 (100.0%)  loss 0.0400  16.00 seq/s  0.50 s/step  ETA 0.0s\n",
        ])
    }

    func testRatesFollowTheRecentPaceNotTheAverage() {
        let harness = Harness()
        let progress = ProgressReporter(totalSteps: 1000, style: .plain, logEvery: 1000,
                                        clock: { harness.now }, output: { harness.output.append($0) })
        for step in 1...100 {
            harness.now += step <= 50 ? 2.0 : 0.25   // a slow start, then four times faster per step
            progress.update(step: step, loss: nil, sequences: 4)
        }
        XCTAssertEqual(progress.secondsPerStep ?? 0, 0.25, accuracy: 1e-9)
        XCTAssertEqual(progress.sequencesPerSecond ?? 0, 16, accuracy: 1e-9)
        XCTAssertEqual(progress.estimatedSecondsRemaining ?? 0, 900 * 0.25, accuracy: 1e-6)
    }

    func testTerminalStyleRedrawsOneLineAtLimitedRate() {
        let harness = Harness()
        let progress = ProgressReporter(totalSteps: 100, style: .terminal, minimumRedrawInterval: 0.2,
                                        clock: { harness.now }, output: { harness.output.append($0) })
        for step in 1...100 {
            harness.now += 0.05
            progress.update(step: step, loss: 0.5, sequences: 2)
            if step == 50 { progress.log("evaluated at step 50") }
        }
        progress.finish()

        let redraws = harness.output.filter { $0.hasPrefix("\rstep ") }
        // 5 seconds of updates at most every 0.2 s, plus the forced last step and the final line.
        XCTAssertGreaterThanOrEqual(redraws.count, 20)
        XCTAssertLessThanOrEqual(redraws.count, 28)
        XCTAssertTrue(redraws.dropLast().allSatisfy { $0.hasSuffix("\u{1B}[K") && !$0.contains("\n") })
        XCTAssertEqual(harness.output.last, "\rstep 100/100 (100.0%)  loss 0.5000  40.00 seq/s  0.05 s/step  ETA 0.0s\u{1B}[K\n")
        // A message clears the line, prints on its own line, then the progress line comes back.
        let messageIndex = harness.output.firstIndex(of: "\r\u{1B}[Kevaluated at step 50\n")
        XCTAssertNotNil(messageIndex)
        if let messageIndex {
            XCTAssertTrue(harness.output[messageIndex + 1].hasPrefix("step 50/100"))
        }
    }
}
