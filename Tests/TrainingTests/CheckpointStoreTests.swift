import Foundation
import SafeTensors
import XCTest
@testable import Training

final class CheckpointStoreTests: XCTestCase {
    func testRoundTripRestoresEveryPart() throws {
        let out = try CheckpointTestKit.scratchDirectory(self)
        let tokenizerSource = out.appendingPathComponent("base-model")
        try CheckpointTestKit.writeEncoder(to: tokenizerSource, generation: 0)
        let store = CheckpointStore(outputDirectory: out)
        let written = try store.save(CheckpointTestKit.contents(generation: 7, tokenizerDirectory: tokenizerSource), as: "final")

        let loaded = try store.load("final")
        XCTAssertEqual(loaded.directory.path, out.appendingPathComponent("checkpoints/final").path)
        XCTAssertEqual(loaded.manifest, written)
        XCTAssertEqual(try CheckpointTestKit.generation(of: loaded), 7)
        XCTAssertEqual(loaded.manifest.heads, ["sentiment", "topic"])
        XCTAssertTrue(loaded.manifest.hasTrainerState)

        // The tokenizer file the encoder writer left out was copied from the base model.
        XCTAssertEqual(try Data(contentsOf: loaded.encoderDirectory.appendingPathComponent("vocab.txt")),
                       try Data(contentsOf: tokenizerSource.appendingPathComponent("vocab.txt")))

        // Heads record the encoder written beside them.
        let encoderChecksum = try SHA256.hash(fileAt: loaded.encoderDirectory.appendingPathComponent("model.safetensors")).hexString
        XCTAssertEqual(loaded.manifest.encoderSHA256, encoderChecksum)
        for head in loaded.heads {
            XCTAssertEqual(head.manifest.encoderHiddenSize, 16)
            XCTAssertEqual(head.manifest.encoderSHA256, encoderChecksum)
            var expected = CheckpointTestKit.headManifest(task: head.manifest.task)
            expected.encoderHiddenSize = 16
            expected.encoderSHA256 = encoderChecksum
            XCTAssertEqual(head.manifest, expected)
        }
        let sentiment = try loaded.head("sentiment")
        XCTAssertEqual(try sentiment.weights.floats("classifier.weight"),
                       CheckpointTestKit.head(task: "sentiment", generation: 7).tensors[0].values.floats)
        XCTAssertEqual(try sentiment.weights.info("classifier.weight").shape, [2, 16])

        // Scalars come back exactly, 64-bit RNG words included.
        let scalars = try XCTUnwrap(loaded.trainerState).scalars(as: CheckpointTestKit.Scalars.self)
        XCTAssertEqual(scalars.rngState, [UInt64.max, 7, 0x9E37_79B9_7F4A_7C15])
        XCTAssertEqual(scalars.samplerCursor, ["sentiment": 21])
        XCTAssertEqual(scalars.bestMetric, 0.07)

        // checkpoint.json lists every other file with its real size and hash.
        let files = try Self.relativeFiles(under: loaded.directory).filter { $0 != "checkpoint.json" }
        XCTAssertEqual(loaded.manifest.files.map(\.path), files)
        for entry in loaded.manifest.files {
            let url = loaded.directory.appendingPathComponent(entry.path)
            XCTAssertEqual(entry.size, try Data(contentsOf: url).count, entry.path)
            XCTAssertEqual(entry.sha256, try SHA256.hash(fileAt: url).hexString, entry.path)
        }
        XCTAssertEqual(try CheckpointTestKit.leftovers(in: store.directory), [])
    }

    func testHeadNotFoundListsTheHeads() throws {
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        try store.save(CheckpointTestKit.contents(generation: 1), as: "final")
        let error = CheckpointTestKit.checkpointError { _ = try store.load("final").head("parsing") }
        XCTAssertEqual(error, .headNotFound(modelDirectory: store.directory.appendingPathComponent("final").path,
                                            task: "parsing", available: ["sentiment", "topic"]))
    }

    func testModelOnlyCheckpointHasNoTrainerState() throws {
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        var contents = try CheckpointTestKit.contents(generation: 2)
        contents.trainerState = nil
        try store.save(contents, as: "best")
        let loaded = try store.load("best")
        XCTAssertNil(loaded.trainerState)
        XCTAssertFalse(loaded.manifest.hasTrainerState)
        XCTAssertFalse(FileManager.default.fileExists(atPath: loaded.directory.appendingPathComponent("trainer_state.json").path))
    }

    // MARK: Verification

    func testTruncatedFileIsRefused() throws {
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        try store.save(CheckpointTestKit.contents(generation: 3), as: "final")
        let weights = store.directory.appendingPathComponent("final/encoder/model.safetensors")
        let original = try Data(contentsOf: weights)
        try original.prefix(original.count - 100).write(to: weights)
        let error = CheckpointTestKit.checkpointError { _ = try store.load("final") }
        XCTAssertEqual(error, .fileSizeMismatch(checkpoint: store.directory.appendingPathComponent("final").path,
                                                file: "encoder/model.safetensors", expected: original.count, actual: original.count - 100))
        XCTAssertTrue(error?.description.contains("encoder/model.safetensors") ?? false)
    }

    func testAlteredByteIsRefused() throws {
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        try store.save(CheckpointTestKit.contents(generation: 3), as: "final")
        let state = store.directory.appendingPathComponent("final/trainer_state.safetensors")
        var bytes = try Data(contentsOf: state)
        bytes[bytes.count - 3] ^= 0x40
        try bytes.write(to: state)
        let error = CheckpointTestKit.checkpointError { _ = try store.load("final") }
        guard case let .checksumMismatch(_, file, expected, actual)? = error else {
            return XCTFail("wrong error \(String(describing: error))")
        }
        XCTAssertEqual(file, "trainer_state.safetensors")
        XCTAssertNotEqual(expected, actual)
        XCTAssertEqual(actual, SHA256.hash(bytes).hexString)
        // A size-only check cannot see a flipped bit; it is only for quick listings.
        XCTAssertNoThrow(try store.load("final", verification: .sizes))
    }

    func testMissingListedFileIsRefused() throws {
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        try store.save(CheckpointTestKit.contents(generation: 4), as: "final")
        try FileManager.default.removeItem(at: store.directory.appendingPathComponent("final/heads/topic/weights.safetensors"))
        let error = CheckpointTestKit.checkpointError { _ = try store.load("final") }
        XCTAssertEqual(error, .missingFile(checkpoint: store.directory.appendingPathComponent("final").path,
                                           file: "heads/topic/weights.safetensors"))
    }

    func testDirectoryWithoutManifestIsIncomplete() throws {
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        try store.save(CheckpointTestKit.contents(generation: 4), as: "final")
        try FileManager.default.removeItem(at: store.directory.appendingPathComponent("final/checkpoint.json"))
        let error = CheckpointTestKit.checkpointError { _ = try store.load("final") }
        XCTAssertEqual(error, .incompleteCheckpoint(directory: store.directory.appendingPathComponent("final").path))
        XCTAssertEqual(CheckpointTestKit.checkpointError { _ = try store.load("step-9") },
                       .checkpointNotFound(path: store.directory.appendingPathComponent("step-9").path))
    }

    func testNewerFormatVersionIsRefused() throws {
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        try store.save(CheckpointTestKit.contents(generation: 4), as: "final")
        let manifestURL = store.directory.appendingPathComponent("final/checkpoint.json")
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: manifestURL)) as? [String: Any])
        object["format_version"] = 99
        try JSONSerialization.data(withJSONObject: object).write(to: manifestURL)
        XCTAssertEqual(CheckpointTestKit.checkpointError { _ = try store.load("final") },
                       .unsupportedFormatVersion(path: manifestURL.path, found: 99, supported: 1))
    }

    func testPathEscapingTheCheckpointIsRefused() throws {
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        try store.save(CheckpointTestKit.contents(generation: 4), as: "final")
        let manifestURL = store.directory.appendingPathComponent("final/checkpoint.json")
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: manifestURL)) as? [String: Any])
        var files = try XCTUnwrap(object["files"] as? [[String: Any]])
        files[0]["path"] = "../../outside"
        object["files"] = files
        try JSONSerialization.data(withJSONObject: object).write(to: manifestURL)
        guard case .invalidCheckpointManifest? = CheckpointTestKit.checkpointError({ _ = try store.load("final") }) else {
            return XCTFail("a path climbing out of the checkpoint was accepted")
        }
    }

    // MARK: Replacement and recovery

    func testReplacingKeepsOnlyTheNewCheckpoint() throws {
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        try store.save(CheckpointTestKit.contents(generation: 1), as: "final")
        try store.save(CheckpointTestKit.contents(generation: 2, tasks: ["sentiment"]), as: "final")
        let loaded = try store.load("final")
        XCTAssertEqual(try CheckpointTestKit.generation(of: loaded), 2)
        XCTAssertEqual(loaded.heads.map(\.manifest.task), ["sentiment"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: loaded.directory.appendingPathComponent("heads/topic").path))
        XCTAssertEqual(try CheckpointTestKit.leftovers(in: store.directory), [])
    }

    /// A crash after the old checkpoint was renamed aside but before the new one was renamed
    /// in: the name is empty, the old directory is restored.
    func testRecoveryRestoresTheOldCheckpointWhenTheNewOneNeverArrived() throws {
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        try store.save(CheckpointTestKit.contents(generation: 1), as: "final")
        try store.save(CheckpointTestKit.contents(generation: 2), as: "scratch")
        let fileManager = FileManager.default
        try fileManager.moveItem(at: store.directory.appendingPathComponent("final"), to: store.directory.appendingPathComponent(".old-final-4242"))
        // The new build, complete or not, is discarded.
        try fileManager.moveItem(at: store.directory.appendingPathComponent("scratch"), to: store.directory.appendingPathComponent(".tmp-final-4242"))

        XCTAssertEqual(try CheckpointTestKit.generation(of: store.load("final")), 1)
        XCTAssertEqual(try CheckpointTestKit.leftovers(in: store.directory), [])
    }

    /// A crash after the new checkpoint was renamed in but before the old one was removed.
    func testRecoveryRemovesTheOldCheckpointWhenTheNewOneIsInPlace() throws {
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        try store.save(CheckpointTestKit.contents(generation: 1), as: "final")
        try store.save(CheckpointTestKit.contents(generation: 2), as: "scratch")
        let fileManager = FileManager.default
        try fileManager.moveItem(at: store.directory.appendingPathComponent("final"), to: store.directory.appendingPathComponent(".old-final-4242"))
        try fileManager.moveItem(at: store.directory.appendingPathComponent("scratch"), to: store.directory.appendingPathComponent("final"))

        let actions = try store.recover()
        XCTAssertEqual(actions.count, 1)
        XCTAssertEqual(try CheckpointTestKit.generation(of: store.load("final")), 2)
        XCTAssertEqual(try CheckpointTestKit.leftovers(in: store.directory), [])
    }

    /// An unfinished first save (no previous checkpoint) and an unfinished removal vanish,
    /// and neither shows up as a checkpoint meanwhile.
    func testUnfinishedWritesAreNotListedAndAreCleanedUp() throws {
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        try store.save(CheckpointTestKit.contents(generation: 5), as: CheckpointStore.stepName(5))
        try FileManager.default.copyItem(at: store.directory.appendingPathComponent("step-5"),
                                         to: store.directory.appendingPathComponent(".tmp-step-6-777"))
        try FileManager.default.createDirectory(at: store.directory.appendingPathComponent(".trash-step-4-777/encoder"),
                                                withIntermediateDirectories: true)
        XCTAssertEqual(try store.list().map(\.name), ["step-5"])
        try store.recover()
        XCTAssertEqual(try CheckpointTestKit.leftovers(in: store.directory), [])
        XCTAssertEqual(try store.list().map(\.name), ["step-5"])
    }

    func testFailedSaveLeavesThePreviousCheckpoint() throws {
        struct EncoderWriteFailed: Error {}
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        try store.save(CheckpointTestKit.contents(generation: 1), as: "final")

        var throwing = try CheckpointTestKit.contents(generation: 2)
        throwing.writeEncoder = { directory in
            try Data("{}".utf8).write(to: directory.appendingPathComponent("config.json"))
            throw EncoderWriteFailed()
        }
        XCTAssertThrowsError(try store.save(throwing, as: "final")) { XCTAssertTrue($0 is EncoderWriteFailed) }

        var incomplete = try CheckpointTestKit.contents(generation: 3)
        incomplete.writeEncoder = { directory in
            try Data("{\"hidden_size\": 16}".utf8).write(to: directory.appendingPathComponent("config.json"))
        }
        let error = CheckpointTestKit.checkpointError { try store.save(incomplete, as: "final") }
        guard case let .encoderIncomplete(_, missing)? = error else { return XCTFail("wrong error \(String(describing: error))") }
        XCTAssertEqual(missing, "model.safetensors")

        XCTAssertEqual(try CheckpointTestKit.generation(of: store.load("final")), 1)
        XCTAssertEqual(try CheckpointTestKit.leftovers(in: store.directory), [])
    }

    func testBadNamesAreRefused() throws {
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        for name in ["", ".hidden", "../escape", "a/b", "step 1"] {
            guard case .invalidName? = CheckpointTestKit.checkpointError({ try store.save(CheckpointTestKit.contents(generation: 1), as: name) }) else {
                return XCTFail("'\(name)' was accepted as a checkpoint name")
            }
        }
        let duplicate = CheckpointTestKit.checkpointError {
            try store.save(CheckpointTestKit.contents(generation: 1, tasks: ["sentiment", "sentiment"]), as: "final")
        }
        XCTAssertEqual(duplicate, .invalidName(name: "sentiment", reason: "two heads are named after this task"))
        XCTAssertEqual(try store.list(), [])
    }

    func testListAndPruneKeepNamedCheckpoints() throws {
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        for step in [10, 20, 30, 40] {
            try store.save(CheckpointTestKit.contents(generation: step, tasks: []), as: CheckpointStore.stepName(step))
        }
        try store.save(CheckpointTestKit.contents(generation: 30, tasks: []), as: "best")
        XCTAssertEqual(try store.list().map(\.name), ["step-10", "step-20", "best", "step-30", "step-40"])
        XCTAssertEqual(try store.pruneStepCheckpoints(keepingLast: 2), ["step-10", "step-20"])
        XCTAssertEqual(try store.list().map(\.name), ["best", "step-30", "step-40"])
        XCTAssertEqual(try CheckpointTestKit.leftovers(in: store.directory), [])
    }

    /// Saves from two threads to one store are serialised by the lock: every checkpoint
    /// ends complete and consistent.
    func testConcurrentSavesAreSerialised() throws {
        let directory = try CheckpointTestKit.scratchDirectory(self).appendingPathComponent("checkpoints")
        let failures = FailureList()
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            let store = CheckpointStore(checkpointsDirectory: directory)
            for round in 0..<3 {
                do {
                    try store.save(CheckpointTestKit.contents(generation: worker * 10 + round), as: worker % 2 == 0 ? "final" : "worker-\(worker)")
                } catch {
                    failures.append("worker \(worker) round \(round): \(error)")
                }
            }
        }
        XCTAssertEqual(failures.all, [])
        let store = CheckpointStore(checkpointsDirectory: directory)
        XCTAssertEqual(try store.list().map(\.name).sorted(), ["final", "worker-1", "worker-3"])
        XCTAssertTrue([2, 22].contains(try CheckpointTestKit.generation(of: store.load("final"))))
        XCTAssertEqual(try CheckpointTestKit.generation(of: store.load("worker-3")), 32)
        XCTAssertEqual(try CheckpointTestKit.leftovers(in: directory), [])
    }

    private static func relativeFiles(under root: URL) throws -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: root.path)
        var result: [String] = []
        while let path = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path, isDirectory: &isDirectory),
               !isDirectory.boolValue {
                result.append(path)
            }
        }
        return result.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }
}

/// Collects messages from several threads.
final class FailureList: @unchecked Sendable {
    // Unchecked: every access goes through the lock.
    private let lock = NSLock()
    private var messages: [String] = []
    func append(_ message: String) { lock.lock(); messages.append(message); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return messages }
}

extension NamedTensor.Values {
    var floats: [Float]? {
        if case let .float32(values) = self { return values }
        return nil
    }
}

/// A checkpoint of the real default model, as a frozen-encoder run would write it.
final class CheckpointRealModelTests: XCTestCase {
    func testMiniLMCheckpointVerifiesAndRecordsTheModelChecksum() throws {
        let model = try Self.modelDirectory()
        let store = CheckpointStore(outputDirectory: try CheckpointTestKit.scratchDirectory(self))
        var contents = try CheckpointTestKit.contents(generation: 1, tasks: [])
        contents.writeEncoder = CheckpointContents.copyEncoder(from: model)
        contents.tokenizerDirectory = model
        var head = CheckpointTestKit.head(task: "sentiment", hiddenSize: 384, generation: 1)
        head.manifest.labelNames = ["negative", "positive"]
        contents.heads = [head]
        try store.save(contents, as: "final")

        let loaded = try store.load("final")
        let reference = try Self.sha256sum(model.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(loaded.manifest.encoderSHA256, reference)
        XCTAssertEqual(try loaded.head("sentiment").manifest.encoderSHA256, reference)
        XCTAssertEqual(try loaded.head("sentiment").manifest.encoderHiddenSize, 384)
        for name in ["config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"] {
            XCTAssertTrue(FileManager.default.contentsEqual(atPath: model.appendingPathComponent(name).path,
                                                            andPath: loaded.encoderDirectory.appendingPathComponent(name).path), name)
        }
        // The head ships to the base model directory itself: same encoder bytes, same checksum.
        let bundle = store.directory.appendingPathComponent("sentiment.head")
        try HeadBundle.export(modelDirectory: loaded.directory, task: "sentiment", to: bundle)
        let target = try CheckpointTestKit.scratchDirectory(self)
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.createSymbolicLink(at: target.appendingPathComponent(name), withDestinationURL: model.appendingPathComponent(name))
        }
        XCTAssertEqual(try HeadBundle.import(bundle, into: target).encoderSHA256, reference)
    }

    /// POLYHEAD_MODEL_DIR, else models/all-MiniLM-L6-v2; fails (never skips) when absent.
    static func modelDirectory() throws -> URL {
        let directory = ProcessInfo.processInfo.environment["POLYHEAD_MODEL_DIR"].map { URL(fileURLWithPath: $0) }
            ?? CheckpointTestKit.repositoryRoot.appendingPathComponent("models/all-MiniLM-L6-v2")
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("model.safetensors").path) else {
            XCTFail("\(directory.path)/model.safetensors not found: run scripts/setup, or set POLYHEAD_MODEL_DIR")
            throw CocoaError(.fileNoSuchFile)
        }
        return directory
    }

    static func sha256sum(_ file: URL) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [file.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: output, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }
}
