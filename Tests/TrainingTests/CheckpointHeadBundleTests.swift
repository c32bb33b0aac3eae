import Foundation
import SafeTensors
import XCTest
@testable import Training

final class CheckpointHeadBundleTests: XCTestCase {
    /// Two runs on the same base encoder (frozen, so both checkpoints hold identical
    /// encoder bytes): run A's head ships to run B.
    private func twoRunsOnOneEncoder(headsInB: [String] = []) throws -> (a: LoadedCheckpoint, b: LoadedCheckpoint, scratch: URL) {
        let scratch = try CheckpointTestKit.scratchDirectory(self)
        let base = scratch.appendingPathComponent("base")
        try CheckpointTestKit.writeEncoder(to: base, generation: 5)
        var contentsA = try CheckpointTestKit.contents(generation: 8, tasks: ["sentiment"])
        contentsA.writeEncoder = CheckpointContents.copyEncoder(from: base)
        var contentsB = try CheckpointTestKit.contents(generation: 9, tasks: headsInB)
        contentsB.writeEncoder = CheckpointContents.copyEncoder(from: base)
        let storeA = CheckpointStore(outputDirectory: scratch.appendingPathComponent("run-a"))
        let storeB = CheckpointStore(outputDirectory: scratch.appendingPathComponent("run-b"))
        try storeA.save(contentsA, as: "final")
        try storeB.save(contentsB, as: "final")
        return (try storeA.load("final"), try storeB.load("final"), scratch)
    }

    func testExportImportRoundTripKeepsWeightBytesAndManifest() throws {
        let (a, b, scratch) = try twoRunsOnOneEncoder()
        let bundle = scratch.appendingPathComponent("sentiment.head")
        let exported = try HeadBundle.export(modelDirectory: a.directory, task: "sentiment", to: bundle)
        XCTAssertEqual(exported, try a.head("sentiment").manifest)

        // The bundle is an ordinary safetensors file carrying the manifest as metadata.
        let file = try SafeTensorsFile(contentsOf: bundle)
        XCTAssertEqual(file.tensorNames.sorted(), ["classifier.bias", "classifier.weight"])
        let metadataManifest = try HeadManifest.decode(Data(try XCTUnwrap(file.metadata["polyhead.head.manifest"]).utf8), source: "test")
        XCTAssertEqual(metadataManifest, exported)
        XCTAssertEqual(try HeadBundle.read(bundle).manifest, exported)

        let installed = try HeadBundle.import(bundle, into: b.directory)
        XCTAssertEqual(installed, exported)
        let sourceWeights = try Data(contentsOf: a.directory.appendingPathComponent("heads/sentiment/weights.safetensors"))
        let importedWeights = try Data(contentsOf: b.directory.appendingPathComponent("heads/sentiment/weights.safetensors"))
        XCTAssertEqual(importedWeights, sourceWeights, "weights.safetensors differs after export and import")

        // checkpoint.json of B now lists the head, and B still verifies in full.
        let reloaded = try CheckpointStore.load(directory: b.directory)
        XCTAssertEqual(reloaded.manifest.heads, ["sentiment"])
        XCTAssertEqual(try reloaded.head("sentiment").manifest, exported)
        XCTAssertTrue(reloaded.manifest.files.contains { $0.path == "heads/sentiment/weights.safetensors" })
        XCTAssertEqual(reloaded.step, 9)
    }

    func testImportRefusesAnotherHiddenSizeEvenWhenAllowedAnotherEncoder() throws {
        let (a, _, scratch) = try twoRunsOnOneEncoder()
        let bundle = scratch.appendingPathComponent("sentiment.head")
        try HeadBundle.export(modelDirectory: a.directory, task: "sentiment", to: bundle)
        let wide = scratch.appendingPathComponent("wide-model")
        try CheckpointTestKit.writeEncoder(to: wide, hiddenSize: 32, generation: 5)
        for allow in [false, true] {
            let error = CheckpointTestKit.checkpointError {
                try HeadBundle.import(bundle, into: wide, options: .init(allowDifferentEncoder: allow))
            }
            XCTAssertEqual(error, .hiddenSizeMismatch(bundle: bundle.path, bundleHiddenSize: 16, modelDirectory: wide.path, modelHiddenSize: 32))
            let message = error?.description ?? ""
            XCTAssertTrue(message.contains("hidden size 16") && message.contains("hidden size 32"), message)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: wide.appendingPathComponent("heads/sentiment").path))
    }

    func testImportRefusesAnotherEncoderUnlessAllowed() throws {
        let (a, _, scratch) = try twoRunsOnOneEncoder()
        let bundle = scratch.appendingPathComponent("sentiment.head")
        let exported = try HeadBundle.export(modelDirectory: a.directory, task: "sentiment", to: bundle)
        // Same shape, other values: a plain Hugging Face model directory.
        let other = scratch.appendingPathComponent("other-model")
        try CheckpointTestKit.writeEncoder(to: other, generation: 6)
        let otherChecksum = try SHA256.hash(fileAt: other.appendingPathComponent("model.safetensors")).hexString

        let error = CheckpointTestKit.checkpointError { try HeadBundle.import(bundle, into: other) }
        XCTAssertEqual(error, .encoderChecksumMismatch(bundle: bundle.path, bundleChecksum: exported.encoderSHA256,
                                                       modelDirectory: other.path, modelChecksum: otherChecksum))
        let message = error?.description ?? ""
        XCTAssertTrue(message.contains(exported.encoderSHA256) && message.contains(otherChecksum), message)

        let installed = try HeadBundle.import(bundle, into: other, options: .init(allowDifferentEncoder: true))
        // The manifest keeps recording the encoder the head was trained with.
        XCTAssertEqual(installed.encoderSHA256, exported.encoderSHA256)
        let head = try HeadFolder.read(other.appendingPathComponent("heads/sentiment"))
        XCTAssertEqual(head.manifest, exported)
        XCTAssertEqual(try head.weights.floats("classifier.bias"), [8, -8])
        // A plain model directory gains no checkpoint.json.
        XCTAssertFalse(FileManager.default.fileExists(atPath: other.appendingPathComponent("checkpoint.json").path))
    }

    func testImportRefusesToOverwriteUnlessAskedAndCanRename() throws {
        let (a, b, scratch) = try twoRunsOnOneEncoder(headsInB: ["sentiment"])
        let bundle = scratch.appendingPathComponent("sentiment.head")
        try HeadBundle.export(modelDirectory: a.directory, task: "sentiment", to: bundle)
        let before = try Data(contentsOf: b.directory.appendingPathComponent("heads/sentiment/weights.safetensors"))

        XCTAssertEqual(CheckpointTestKit.checkpointError { try HeadBundle.import(bundle, into: b.directory) },
                       .headAlreadyExists(modelDirectory: b.directory.path, task: "sentiment"))
        XCTAssertEqual(try Data(contentsOf: b.directory.appendingPathComponent("heads/sentiment/weights.safetensors")), before)

        let renamed = try HeadBundle.import(bundle, into: b.directory, options: .init(taskName: "sentiment-a"))
        XCTAssertEqual(renamed.task, "sentiment-a")
        try HeadBundle.import(bundle, into: b.directory, options: .init(replaceExisting: true))

        let reloaded = try CheckpointStore.load(directory: b.directory)
        XCTAssertEqual(reloaded.manifest.heads, ["sentiment", "sentiment-a"])
        XCTAssertEqual(try reloaded.head("sentiment").weights.floats("classifier.bias"), [8, -8])
        XCTAssertEqual(try reloaded.head("sentiment-a").weights.floats("classifier.bias"), [8, -8])
        XCTAssertEqual(try CheckpointTestKit.leftovers(in: b.directory.appendingPathComponent("heads")), [])
    }

    func testExportOfAMissingHeadListsTheHeads() throws {
        let (a, _, scratch) = try twoRunsOnOneEncoder()
        let error = CheckpointTestKit.checkpointError {
            try HeadBundle.export(modelDirectory: a.directory, task: "parsing", to: scratch.appendingPathComponent("x.head"))
        }
        XCTAssertEqual(error, .headNotFound(modelDirectory: a.directory.path, task: "parsing", available: ["sentiment"]))
    }

    func testExportRefusesACorruptedHead() throws {
        let (a, _, scratch) = try twoRunsOnOneEncoder()
        let weights = a.directory.appendingPathComponent("heads/sentiment/weights.safetensors")
        var bytes = try Data(contentsOf: weights)
        bytes[bytes.count - 1] ^= 1
        try bytes.write(to: weights)
        let bundle = scratch.appendingPathComponent("sentiment.head")
        guard case .checksumMismatch? = CheckpointTestKit.checkpointError({
            try HeadBundle.export(modelDirectory: a.directory, task: "sentiment", to: bundle)
        }) else { return XCTFail("a corrupted head was exported") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: bundle.path))
    }

    func testPlainSafetensorsIsNotABundle() throws {
        let scratch = try CheckpointTestKit.scratchDirectory(self)
        let plain = scratch.appendingPathComponent("plain.safetensors")
        var writer = SafeTensorsWriter()
        try writer.add("w", shape: [2], floats: [1, 2])
        try writer.write(to: plain)
        guard case let .notAHeadBundle(path, reason)? = CheckpointTestKit.checkpointError({ _ = try HeadBundle.read(plain) }) else {
            return XCTFail("a plain safetensors file was read as a bundle")
        }
        XCTAssertEqual(path, plain.path)
        XCTAssertTrue(reason.contains("polyhead.head.manifest"), reason)
    }

    /// A checkpoint and a bundle written by an independent Python writer following
    /// docs/checkpoint-format.md (Tests/Fixtures/checkpoint/make_fixture.py) load here.
    func testPythonWrittenCheckpointAndBundleLoad() throws {
        let fixture = CheckpointTestKit.fixtures.appendingPathComponent("python-v1")
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: CheckpointTestKit.fixtures.appendingPathComponent("python-v1-expected.json"))) as? [String: Any]
        let expectedWeights = try XCTUnwrap(expected?["toy_classifier_weight"] as? [Double]).map(Float.init)
        let expectedMoment = try XCTUnwrap(expected?["first_moment"] as? [Double]).map(Float.init)

        let scratch = try CheckpointTestKit.scratchDirectory(self)
        let copy = scratch.appendingPathComponent("checkpoints/final")
        try FileManager.default.createDirectory(at: copy.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: fixture.appendingPathComponent("final"), to: copy)
        let loaded = try CheckpointStore.load(directory: copy)
        XCTAssertEqual(loaded.step, 3)
        XCTAssertEqual(try loaded.head("toy").weights.floats("classifier.weight"), expectedWeights)
        XCTAssertEqual(try loaded.head("toy").manifest.labelNames, ["no", "yes"])
        XCTAssertEqual(try XCTUnwrap(loaded.trainerState).tensors.floats("adamw.first_moment"), expectedMoment)
        XCTAssertEqual(try loaded.trainerState?.tensors.int64s("rng.state"), [Int64(bitPattern: UInt64.max), 42])

        // Its bundle installs into the Swift-side copy under another name.
        let bundle = fixture.appendingPathComponent("toy.head")
        let installed = try HeadBundle.import(bundle, into: copy, options: .init(taskName: "toy-again"))
        XCTAssertEqual(installed.pluginID, "example.toy")
        XCTAssertEqual(try CheckpointStore.load(directory: copy).head("toy-again").weights.floats("classifier.weight"), expectedWeights)
    }
}
