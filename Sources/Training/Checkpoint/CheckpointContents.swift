import Foundation
import SafeTensors

/// A named tensor handed to the checkpoint writer: F32 (weights, optimizer moments) or I64
/// (e.g. a sampler's permutation, RNG words stored bit for bit).
public struct NamedTensor: Sendable, Equatable {
    public enum Values: Sendable, Equatable {
        case float32([Float])
        case int64([Int64])

        var count: Int {
            switch self {
            case let .float32(values): return values.count
            case let .int64(values): return values.count
            }
        }
    }

    public var name: String
    /// Row-major dimensions; their product must equal the number of values.
    public var shape: [Int]
    public var values: Values

    public init(_ name: String, shape: [Int], floats: [Float]) {
        self.name = name
        self.shape = shape
        self.values = .float32(floats)
    }

    public init(_ name: String, shape: [Int], int64s: [Int64]) {
        self.name = name
        self.shape = shape
        self.values = .int64(int64s)
    }

    func add(to writer: inout SafeTensorsWriter) throws {
        do {
            switch values {
            case let .float32(floats): try writer.add(name, shape: shape, floats: floats)
            case let .int64(integers): try writer.add(name, shape: shape, int64s: integers)
            }
        } catch let error as SafeTensorsError {
            throw CheckpointError.invalidTensor(tensor: name, reason: error.description)
        }
    }
}

/// One trained head as handed to the checkpoint writer.
public struct HeadSnapshot: Sendable {
    /// `encoderHiddenSize` and `encoderSHA256` are overwritten by the writer with the values
    /// of the encoder it writes alongside; the task folder is `manifest.task`.
    public var manifest: HeadManifest
    /// The head's parameters, named as the plugin declares them.
    public var tensors: [NamedTensor]

    public init(manifest: HeadManifest, tensors: [NamedTensor]) {
        self.manifest = manifest
        self.tensors = tensors
    }
}

/// Everything a training run needs to continue exactly: tensors (optimizer moments, ...) go
/// to `trainer_state.safetensors`, the caller's scalars (step, sampler state, RNG state,
/// best metric, ...) to `trainer_state.json` byte for byte as encoded here.
public struct TrainerStateSnapshot: Sendable {
    /// The tensors of trainer_state.safetensors, with any metadata the writer carries
    /// (optimizer state records its format there).
    public var tensors: SafeTensorsWriter
    /// JSON text, written unchanged.
    public var scalarsJSON: Data

    /// - Throws: `EncodingError` when `scalars` cannot be encoded, or a tensor's error.
    public init<Scalars: Encodable>(tensors: [NamedTensor], scalars: Scalars) throws {
        var writer = SafeTensorsWriter()
        for tensor in tensors { try tensor.add(to: &writer) }
        try self.init(writer: writer, scalars: scalars)
    }

    public init<Scalars: Encodable>(writer: SafeTensorsWriter, scalars: Scalars) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        // Non-finite values (a diverged loss) are kept as strings rather than failing the save.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        self.tensors = writer
        self.scalarsJSON = try encoder.encode(scalars)
    }
}

/// What `CheckpointStore.save` writes.
///
/// ```swift
/// let contents = CheckpointContents(
///     step: 1200,
///     writeEncoder: { directory in try encoder.writeHuggingFaceCheckpoint(to: directory) },
///     tokenizerDirectory: modelDirectory,
///     heads: [HeadSnapshot(manifest: sentimentManifest, tensors: sentimentWeights)],
///     trainerState: try TrainerStateSnapshot(tensors: moments, scalars: trainerScalars))
/// try CheckpointStore(outputDirectory: out).save(contents, as: "final")
/// ```
public struct CheckpointContents {
    public var step: Int
    /// Writes `config.json` and `model.safetensors` (Hugging Face names and layout) into the
    /// empty directory it is given. Files need not be fsynced; the store does that.
    public var writeEncoder: (URL) throws -> Void
    /// A directory whose tokenizer files (`tokenizerFileNames`) are copied next to the
    /// encoder, unless `writeEncoder` already wrote them. Nil copies none.
    public var tokenizerDirectory: URL?
    public var heads: [HeadSnapshot]
    /// Nil for a model-only checkpoint that cannot be resumed.
    public var trainerState: TrainerStateSnapshot?

    /// Files that make the encoder directory usable by a tokenizer, copied when present.
    public static let tokenizerFileNames = [
        "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    ]

    public init(
        step: Int, writeEncoder: @escaping (URL) throws -> Void, tokenizerDirectory: URL?,
        heads: [HeadSnapshot], trainerState: TrainerStateSnapshot?
    ) {
        self.step = step
        self.writeEncoder = writeEncoder
        self.tokenizerDirectory = tokenizerDirectory
        self.heads = heads
        self.trainerState = trainerState
    }

    /// An encoder writer that copies `config.json` and `model.safetensors` unchanged from a
    /// Hugging Face model directory (for runs that keep the encoder frozen).
    public static func copyEncoder(from modelDirectory: URL) -> (URL) throws -> Void {
        { destination in
            for name in [EncoderFiles.config, EncoderFiles.weights] {
                try DurableFiles.copy(modelDirectory.appendingPathComponent(name), to: destination.appendingPathComponent(name))
            }
        }
    }
}

/// File names inside a checkpoint directory.
enum EncoderFiles {
    static let directory = "encoder"
    static let config = "config.json"
    static let weights = "model.safetensors"
}

enum CheckpointLayout {
    static let headsDirectory = "heads"
    /// Component folders beside `heads/`: adapters and routers, each with a manifest whose
    /// `label_names` are the tasks it serves (empty for an adapter: every task).
    static let adaptersDirectory = "adapters"
    static let routersDirectory = "routers"
    static let headManifest = "manifest.json"
    static let headWeights = "weights.safetensors"
    static let trainerTensors = "trainer_state.safetensors"
    static let trainerScalars = "trainer_state.json"
}

/// Reads `hidden_size` from a Hugging Face `config.json`.
/// - Throws: `CheckpointError.invalidEncoderConfig` naming the file.
func encoderHiddenSize(configAt url: URL) throws -> Int {
    let data = try DurableFiles.contents(of: url)
    guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
        throw CheckpointError.invalidEncoderConfig(path: url.path, reason: "not a JSON object")
    }
    guard let number = object["hidden_size"] as? NSNumber else {
        throw CheckpointError.invalidEncoderConfig(path: url.path, reason: "no numeric \"hidden_size\"")
    }
    let value = number.doubleValue
    guard value >= 1, value == value.rounded(), value <= Double(Int32.max) else {
        throw CheckpointError.invalidEncoderConfig(path: url.path, reason: "\"hidden_size\" is \(number), not a positive integer")
    }
    return Int(value)
}
