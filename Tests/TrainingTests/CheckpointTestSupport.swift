import Foundation
import SafeTensors
import XCTest
@testable import Training

/// Shared pieces of the checkpoint and reporting tests: scratch directories, small
/// Hugging Face-style encoders and heads whose every value encodes a "generation" number,
/// so a checkpoint mixing two saves is detectable.
enum CheckpointTestKit {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = repositoryRoot.appendingPathComponent("Tests/Fixtures/checkpoint")

    /// A directory removed when the test ends.
    static func scratchDirectory(_ testCase: XCTestCase) throws -> URL {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("polyhead-checkpoint-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        testCase.addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        return directory
    }

    /// Writes a Hugging Face-style encoder (config.json, model.safetensors) whose tensors
    /// are all `generation`, plus a vocab.txt, into `directory`.
    static func writeEncoder(to directory: URL, hiddenSize: Int = 16, rows: Int = 64, generation: Int) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config: [String: Any] = [
            "model_type": "bert", "hidden_size": hiddenSize, "num_hidden_layers": 1,
            "architectures": ["BertModel"], "polyhead_test_generation": generation,
        ]
        try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
            .write(to: directory.appendingPathComponent("config.json"))
        var writer = SafeTensorsWriter()
        try writer.add("embeddings.word_embeddings.weight", shape: [rows, hiddenSize],
                       floats: [Float](repeating: Float(generation), count: rows * hiddenSize))
        try writer.add("embeddings.LayerNorm.weight", shape: [hiddenSize],
                       floats: [Float](repeating: Float(generation), count: hiddenSize))
        writer.metadata["format"] = "pt"
        try writer.write(to: directory.appendingPathComponent("model.safetensors"))
        try Data("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n".utf8).write(to: directory.appendingPathComponent("vocab.txt"))
    }

    static func headManifest(task: String, labels: [String] = ["negative", "positive"]) -> HeadManifest {
        HeadManifest(task: task, pluginID: "polyhead.classification", pluginVersion: "1.0.0",
                     abiVersion: ABIVersion(major: 1, minor: 0), taskType: "classification",
                     options: .object(["pooling": .string("cls"), "dropout": .number(0.1), "seed": .unsignedInteger(UInt64.max)]),
                     labelNames: labels)
    }

    /// A head whose weights are `generation` plus a per-element ramp (so byte order matters).
    static func head(task: String, hiddenSize: Int = 16, generation: Int) -> HeadSnapshot {
        let labels = 2
        let weights = (0..<(labels * hiddenSize)).map { Float(generation) + Float($0) / 64 }
        return HeadSnapshot(manifest: headManifest(task: task), tensors: [
            NamedTensor("classifier.weight", shape: [labels, hiddenSize], floats: weights),
            NamedTensor("classifier.bias", shape: [labels], floats: [Float(generation), -Float(generation)]),
        ])
    }

    /// The trainer scalars the tests save: a stand-in for the trainer's own type.
    struct Scalars: Codable, Equatable {
        var generation: Int
        var rngState: [UInt64]
        var samplerCursor: [String: Int]
        var bestMetric: Double?
    }

    /// Contents whose every part records `generation`: encoder values, head weights,
    /// optimizer moments, scalars and the step.
    static func contents(generation: Int, encoderRows: Int = 64, momentCount: Int = 256,
                         tasks: [String] = ["sentiment", "topic"], tokenizerDirectory: URL? = nil) throws -> CheckpointContents {
        let scalars = Scalars(generation: generation, rngState: [UInt64.max, UInt64(generation), 0x9E37_79B9_7F4A_7C15],
                              samplerCursor: ["sentiment": generation * 3], bestMetric: Double(generation) / 100)
        let state = try TrainerStateSnapshot(tensors: [
            NamedTensor("adamw.first_moment", shape: [momentCount], floats: [Float](repeating: Float(generation), count: momentCount)),
            NamedTensor("adamw.second_moment", shape: [momentCount], floats: [Float](repeating: Float(generation) * 2, count: momentCount)),
            NamedTensor("sampler.permutation", shape: [4], int64s: [Int64(generation), 3, 1, 2]),
        ], scalars: scalars)
        return CheckpointContents(
            step: generation,
            writeEncoder: { directory in
                try writeEncoder(to: directory, rows: encoderRows, generation: generation)
                // The encoder writer need not write tokenizer files; the store copies them.
                try FileManager.default.removeItem(at: directory.appendingPathComponent("vocab.txt"))
            },
            tokenizerDirectory: tokenizerDirectory,
            heads: tasks.map { head(task: $0, generation: generation) },
            trainerState: state)
    }

    /// Checks that every part of `checkpoint` comes from the same generation and returns it.
    static func generation(of checkpoint: LoadedCheckpoint, file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        let generation = checkpoint.step
        let encoder = try SafeTensorsFile(contentsOf: checkpoint.encoderDirectory.appendingPathComponent("model.safetensors"))
        for name in encoder.tensorNames {
            XCTAssertTrue(try encoder.floats(name).allSatisfy { $0 == Float(generation) },
                          "encoder tensor \(name) is not all \(generation)", file: file, line: line)
        }
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: checkpoint.encoderDirectory.appendingPathComponent("config.json"))) as? [String: Any]
        XCTAssertEqual(config?["polyhead_test_generation"] as? Int, generation, "config.json", file: file, line: line)
        for head in checkpoint.heads {
            XCTAssertEqual(try head.weights.floats("classifier.bias"), [Float(generation), -Float(generation)],
                           "head \(head.manifest.task)", file: file, line: line)
            XCTAssertEqual(try head.weights.floats("classifier.weight").first, Float(generation), file: file, line: line)
        }
        let state = try XCTUnwrap(checkpoint.trainerState, file: file, line: line)
        XCTAssertEqual(try state.scalars(as: Scalars.self).generation, generation, "trainer_state.json", file: file, line: line)
        XCTAssertTrue(try state.tensors.floats("adamw.first_moment").allSatisfy { $0 == Float(generation) }, file: file, line: line)
        XCTAssertTrue(try state.tensors.floats("adamw.second_moment").allSatisfy { $0 == Float(generation) * 2 }, file: file, line: line)
        XCTAssertEqual(try state.tensors.int64s("sampler.permutation").first, Int64(generation), file: file, line: line)
        return generation
    }

    /// Entries a crash can leave in a checkpoints folder.
    static func leftovers(in directory: URL) throws -> [String] {
        guard FileManager.default.fileExists(atPath: directory.path) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasPrefix(".tmp-") || $0.hasPrefix(".old-") || $0.hasPrefix(".trash-") }
            .sorted()
    }

    /// Runs `body` and returns the `CheckpointError` it throws, failing if it throws none.
    static func checkpointError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> CheckpointError? {
        do {
            try body()
            XCTFail("expected a CheckpointError, got success", file: file, line: line)
        } catch let error as CheckpointError {
            return error
        } catch {
            XCTFail("expected a CheckpointError, got \(type(of: error)): \(error)", file: file, line: line)
        }
        return nil
    }
}

/// SplitMix64, seeded, so a failing random schedule can be replayed.
struct CheckpointRandom: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
