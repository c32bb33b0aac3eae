/// Every way saving, loading, exporting or importing a checkpoint or head can fail. Each
/// message names the file or directory at fault, says what is wrong and what to do.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    // File system.
    case cannotRead(path: String, reason: String)
    case cannotWrite(path: String, reason: String)
    case invalidName(name: String, reason: String)

    // Checkpoint directories.
    case checkpointNotFound(path: String)
    case incompleteCheckpoint(directory: String)
    case invalidCheckpointManifest(path: String, reason: String)
    case unsupportedFormatVersion(path: String, found: Int, supported: Int)
    case missingFile(checkpoint: String, file: String)
    case fileSizeMismatch(checkpoint: String, file: String, expected: Int, actual: Int)
    case checksumMismatch(checkpoint: String, file: String, expected: String, actual: String)
    case encoderIncomplete(directory: String, missing: String)
    case invalidEncoderConfig(path: String, reason: String)
    case invalidTrainerState(path: String, reason: String)
    case invalidTensor(tensor: String, reason: String)

    // Heads and head bundles.
    case invalidHeadManifest(path: String, reason: String)
    case headNotFound(modelDirectory: String, task: String, available: [String])
    case headAlreadyExists(modelDirectory: String, task: String)
    case headNeedsComponents(modelDirectory: String, task: String, components: [String])
    case notAHeadBundle(path: String, reason: String)
    case hiddenSizeMismatch(bundle: String, bundleHiddenSize: Int, modelDirectory: String, modelHiddenSize: Int)
    case encoderChecksumMismatch(bundle: String, bundleChecksum: String, modelDirectory: String, modelChecksum: String)

    public var description: String {
        switch self {
        case let .cannotRead(path, reason):
            return "\(path): cannot read (\(reason)); check that it exists and is readable."
        case let .cannotWrite(path, reason):
            return "\(path): cannot write (\(reason)); check that the directory is writable and the disk has space."
        case let .invalidName(name, reason):
            return "'\(name)' cannot name a checkpoint or head folder: \(reason). Use letters, digits, '-', '_' and '.', not starting with '.'."
        case let .checkpointNotFound(path):
            return "\(path): no checkpoint here; pass a directory such as OUT/checkpoints/final that holds checkpoint.json."
        case let .incompleteCheckpoint(directory):
            return "\(directory): no checkpoint.json, so this is not a complete checkpoint (a save that never finished, or not a checkpoint at all); resume from another checkpoint in the same checkpoints/ folder."
        case let .invalidCheckpointManifest(path, reason):
            return "\(path): not a valid checkpoint manifest (\(reason)); the checkpoint is corrupt, resume from another one."
        case let .unsupportedFormatVersion(path, found, supported):
            return "\(path): checkpoint format version \(found), but this polyhead reads up to version \(supported); use a newer polyhead."
        case let .missingFile(checkpoint, file):
            return "\(checkpoint): '\(file)' is listed in checkpoint.json but missing; the checkpoint is incomplete, resume from another one."
        case let .fileSizeMismatch(checkpoint, file, expected, actual):
            return "\(checkpoint): '\(file)' has \(actual) bytes but checkpoint.json lists \(expected); the file was truncated or replaced, resume from another checkpoint."
        case let .checksumMismatch(checkpoint, file, expected, actual):
            return "\(checkpoint): '\(file)' has SHA-256 \(actual) but checkpoint.json lists \(expected); the file is corrupt or was altered, resume from another checkpoint."
        case let .encoderIncomplete(directory, missing):
            return "\(directory): the encoder writer did not produce '\(missing)'; it must write config.json and model.safetensors (Hugging Face names)."
        case let .invalidEncoderConfig(path, reason):
            return "\(path): cannot read the encoder's hidden size (\(reason)); config.json must be a JSON object with an integer \"hidden_size\"."
        case let .invalidTrainerState(path, reason):
            return "\(path): invalid trainer state (\(reason)); the checkpoint is corrupt, resume from another one."
        case let .invalidTensor(tensor, reason):
            return "tensor '\(tensor)': \(reason); pass exactly as many values as the shape holds, with unique names."
        case let .invalidHeadManifest(path, reason):
            return "\(path): invalid head manifest (\(reason)); re-export the head from the model directory it was trained in."
        case let .headNotFound(modelDirectory, task, available):
            let list = available.isEmpty ? "it has none" : "it has: " + available.joined(separator: ", ")
            return "\(modelDirectory): no head for task '\(task)' (\(list))."
        case let .headAlreadyExists(modelDirectory, task):
            return "\(modelDirectory): a head for task '\(task)' already exists; ask to replace it explicitly (e.g. --replace) or import under another task name."
        case let .headNeedsComponents(modelDirectory, task, components):
            return "\(modelDirectory): the head of task '\(task)' was trained on features that go through \(components.joined(separator: " and ")); a head bundle holds the head alone, so on another model it would predict differently. Ship the whole model directory (it holds them), or train the task without them to ship its head alone."
        case let .notAHeadBundle(path, reason):
            return "\(path): not a Polyhead head bundle (\(reason)); create one with `polyhead heads export MODEL_DIR TASK FILE`."
        case let .hiddenSizeMismatch(bundle, bundleHiddenSize, modelDirectory, modelHiddenSize):
            return "\(bundle): the head was trained on an encoder with hidden size \(bundleHiddenSize), but the encoder in \(modelDirectory) has hidden size \(modelHiddenSize); a head only works on an encoder of its own hidden size, import it into a model with hidden size \(bundleHiddenSize)."
        case let .encoderChecksumMismatch(bundle, bundleChecksum, modelDirectory, modelChecksum):
            return "\(bundle): the head was trained with encoder SHA-256 \(bundleChecksum), but the encoder in \(modelDirectory) has SHA-256 \(modelChecksum); its outputs will differ on another encoder. Import into the model it was trained with, or allow a different encoder explicitly (--allow-different-encoder) if that is intended."
        }
    }
}
