import Foundation
import XCTest
@testable import Training

/// Heads exported from one run's checkpoint and imported into another model directory (the
/// way `polyhead heads export` / `import` do it) predict exactly what they predicted at home.
final class TrainerHeadTransferTests: XCTestCase {
    private let texts: [(text: String, pair: String?)] = [
        ("the zebra sat on my cats .", nil), ("your old bus was near that tree", nil), ("a kite", nil), ("cats and dogs ran .", nil),
    ]

    private func predictions(_ directory: URL, tasks: [String]) throws -> [[String]] {
        let model = try MultiTaskModel.load(checkpoint: directory, pluginPaths: [], tasks: tasks)
        return try Predictor(model: model, maxLength: 32).predict(texts).map { $0.map(\.json) }
    }

    /// Copies a checkpoint's encoder/ into a plain Hugging Face model directory (no heads).
    private func plainModelDirectory(from checkpoint: URL, at target: URL) throws {
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        for name in ["config.json", "model.safetensors", "vocab.txt"] {
            try FileManager.default.copyItem(at: checkpoint.appendingPathComponent("encoder").appendingPathComponent(name),
                                             to: target.appendingPathComponent(name))
        }
    }

    func testExportedHeadPredictsTheSameInAnotherModelDirectory() throws {
        let runs = try TinyRuns()
        try runs.train(try runs.load(runs.config(training: tinyTraining(steps: 4))))
        let home = runs.checkpoint("final")
        let expected = try predictions(home, tasks: ["animal", "tags"])

        // Into a plain Hugging Face directory holding the same encoder.
        let plain = runs.path("plain")
        try plainModelDirectory(from: home, at: plain)
        for task in ["tags", "animal"] {
            let bundle = runs.path("\(task).head")
            let exported = try HeadBundle.export(modelDirectory: home, task: task, to: bundle)
            XCTAssertEqual(exported.encoderHiddenSize, 32)
            try HeadBundle.import(bundle, into: plain)
        }
        XCTAssertEqual(try predictions(plain, tasks: ["animal", "tags"]), expected, "byte-identical predictions after export and import")

        // Into a copy of the checkpoint under another name: the checkpoint still verifies
        // (MultiTaskModel.load checks every file against checkpoint.json).
        let copy = runs.path("copy")
        try FileManager.default.copyItem(at: home, to: copy)
        try HeadBundle.import(runs.path("animal.head"), into: copy, options: .init(taskName: "animal-copy"))
        let both = try predictions(copy, tasks: ["animal", "animal-copy"])
        XCTAssertEqual(both.map { $0[1] }, both.map { $0[0] })
        XCTAssertEqual(both.map { $0[0] }, expected.map { $0[0] })
        XCTAssertEqual(try CheckpointStore.load(directory: copy).manifest.heads, ["animal", "animal-copy", "length", "tags"])
    }

    func testImportRefusesAnotherHiddenSizeAndAnotherEncoderUnlessAllowed() throws {
        let runs = try TinyRuns()
        try runs.train(try runs.load(runs.config(training: tinyTraining(steps: 2))))
        let bundle = runs.path("animal.head")
        try HeadBundle.export(modelDirectory: runs.checkpoint("final"), task: "animal", to: bundle)

        // Hidden size 8 (the Python-written checkpoint fixture) against the head's 32: always refused.
        let small = runs.path("small")
        try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("Tests/Fixtures/checkpoint/python-v1/final"), to: small)
        for options in [HeadBundle.ImportOptions(), HeadBundle.ImportOptions(allowDifferentEncoder: true, replaceExisting: true)] {
            XCTAssertThrowsError(try HeadBundle.import(bundle, into: small, options: options)) { error in
                guard case .hiddenSizeMismatch(_, 32, _, 8)? = error as? CheckpointError else { return XCTFail("\(error)") }
                XCTAssertTrue("\(error)".contains("hidden size 32") && "\(error)".contains("hidden size 8"), "\(error)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: small.appendingPathComponent("heads/animal").path))

        // Another run (another seed, so other encoder weights): refused unless allowed.
        let other = tinyTraining(steps: 2).replacingOccurrences(of: "seed: 7", with: "seed: 8")
        try runs.train(try runs.load(runs.config(tasks: [TinyRuns.task("length")], training: other, output: "other"), name: "other"), output: "other")
        let target = runs.checkpoint("final", output: "other")
        XCTAssertThrowsError(try HeadBundle.import(bundle, into: target)) { error in
            guard case .encoderChecksumMismatch? = error as? CheckpointError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("--allow-different-encoder"))
        }
        try HeadBundle.import(bundle, into: target, options: .init(allowDifferentEncoder: true))
        XCTAssertThrowsError(try HeadBundle.import(bundle, into: target, options: .init(allowDifferentEncoder: true))) { error in
            guard case .headAlreadyExists(_, "animal")? = error as? CheckpointError else { return XCTFail("\(error)") }
        }
        let model = try MultiTaskModel.load(checkpoint: target, pluginPaths: [])
        XCTAssertEqual(model.heads.map(\.task), ["animal", "length"])
    }
}
