import Foundation
import XCTest
@testable import Training
#if canImport(Glibc)
import Glibc
#endif

/// A real crash: this test binary runs itself as a child process that saves checkpoints in a
/// loop, and the parent kills it with SIGKILL at a random moment. After every kill the
/// checkpoint must load, verified, and be wholly the last completed save or wholly the one
/// in progress — never a mixture, never missing.
final class CheckpointCrashTests: XCTestCase {
    private static let directoryVariable = "POLYHEAD_CHECKPOINT_CRASH_DIRECTORY"
    private static let firstGenerationVariable = "POLYHEAD_CHECKPOINT_CRASH_FIRST_GENERATION"
    private static let progressFileName = "progress.log"
    /// Large enough that a save takes a while (several MB through write, fsync and hashing).
    private static let encoderRows = 16_384          // x 16 floats = 1 MiB of encoder weights
    private static let momentCount = 1 << 20         // x 2 moments = 8 MiB of trainer state

    func testSaveKilledAtRandomMomentsLeavesLoadableCheckpoint() throws {
        #if os(Linux)
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        #else
        throw XCTSkip("finding and re-running the test binary is implemented for Linux only")
        #endif
        let out = try CheckpointTestKit.scratchDirectory(self)
        let store = CheckpointStore(outputDirectory: out)
        try store.save(Self.contents(generation: 1), as: "final")
        var lastGood = 1
        var nextGeneration = 2

        let seed = UInt64(Date().timeIntervalSince1970 * 1000)
        var random = CheckpointRandom(seed: seed)
        var killsDuringSave = 0
        var outcomes: [String] = []
        let rounds = 6
        for round in 1...rounds {
            let progress = out.appendingPathComponent(Self.progressFileName)
            try? FileManager.default.removeItem(at: progress)
            let child = Process()
            child.executableURL = URL(fileURLWithPath: executable)
            child.arguments = ["TrainingTests.CheckpointCrashTests/testChildSavesUntilKilled"]
            var environment = ProcessInfo.processInfo.environment
            environment[Self.directoryVariable] = out.path
            environment[Self.firstGenerationVariable] = String(nextGeneration)
            child.environment = environment
            child.standardOutput = FileHandle.nullDevice
            child.standardError = FileHandle.nullDevice
            try child.run()

            // Wait for the first save to begin, then let it run a random while.
            let started = Date()
            while Self.progress(progress).started.isEmpty {
                guard child.isRunning, Date().timeIntervalSince(started) < 120 else {
                    child.terminate()
                    child.waitUntilExit()
                    return XCTFail("round \(round): the child never started saving (status \(child.terminationStatus)); run its test alone to see why")
                }
                usleep(2_000)
            }
            let delay = UInt32.random(in: 0...600_000, using: &random)
            usleep(delay)
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            XCTAssertEqual(child.terminationReason, .uncaughtSignal, "round \(round): the child exited on its own before the kill")

            let (started: startedGenerations, done: doneGenerations) = Self.progress(progress)
            let lastDone = doneGenerations.last ?? lastGood
            let inFlight = startedGenerations.last ?? lastGood
            let leftovers = try CheckpointTestKit.leftovers(in: store.directory)
            if !leftovers.isEmpty { killsDuringSave += 1 }

            let loaded = try store.load("final")
            let generation = try CheckpointTestKit.generation(of: loaded)
            XCTAssertTrue(generation == lastDone || generation == inFlight,
                          "round \(round): loaded generation \(generation), expected \(lastDone) (last completed) or \(inFlight) (in progress); seed \(seed)")
            XCTAssertEqual(try CheckpointTestKit.leftovers(in: store.directory), [], "round \(round): recovery left debris")
            outcomes.append("round \(round): killed after \(delay / 1000) ms, \(doneGenerations.count) saves completed, leftovers \(leftovers), loaded \(generation)")
            lastGood = generation
            nextGeneration = inFlight + 1
        }
        print(outcomes.joined(separator: "\n"))
        // Each child does nothing but save, so nearly every kill lands inside a save; if none
        // did, the test would prove nothing.
        XCTAssertGreaterThan(killsDuringSave, 0, "no kill interrupted a save; seed \(seed)")
    }

    /// The child's side of the test above; does nothing unless that test started it.
    func testChildSavesUntilKilled() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let directory = environment[Self.directoryVariable],
              let first = environment[Self.firstGenerationVariable].flatMap(Int.init) else {
            throw XCTSkip("runs only as the child process of testSaveKilledAtRandomMomentsLeavesLoadableCheckpoint")
        }
        let out = URL(fileURLWithPath: directory)
        let store = CheckpointStore(outputDirectory: out)
        let progress = open(out.appendingPathComponent(Self.progressFileName).path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard progress >= 0 else { return XCTFail("cannot open the progress file in \(directory)") }
        defer { close(progress) }
        func report(_ line: String) {
            let bytes = Array((line + "\n").utf8)
            _ = bytes.withUnsafeBytes { write(progress, $0.baseAddress, $0.count) }
        }
        // Stops on its own if the parent died without killing it.
        let deadline = Date().addingTimeInterval(60)
        var generation = first
        while Date() < deadline {
            let contents = try Self.contents(generation: generation)
            report("started \(generation)")
            try store.save(contents, as: "final")
            report("done \(generation)")
            generation += 1
        }
    }

    private static func contents(generation: Int) throws -> CheckpointContents {
        try CheckpointTestKit.contents(generation: generation, encoderRows: encoderRows, momentCount: momentCount)
    }

    /// Generations the child started and finished saving, in order.
    private static func progress(_ url: URL) -> (started: [Int], done: [Int]) {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return ([], []) }
        var started: [Int] = []
        var done: [Int] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let generation = Int(parts[1]) else { continue }
            if parts[0] == "started" { started.append(generation) } else if parts[0] == "done" { done.append(generation) }
        }
        return (started, done)
    }
}
