import Foundation
import SafeTensors

/// The checkpoints of one run: `<out>/checkpoints/{final,best,step-N}/`, each written
/// atomically (see `AtomicDirectory` and docs/checkpoint-format.md).
///
/// ```swift
/// let store = CheckpointStore(outputDirectory: runDirectory)
/// try store.save(contents, as: CheckpointStore.stepName(1200))
/// try store.pruneStepCheckpoints(keepingLast: 2)
/// let resumed = try CheckpointStore.load(directory: resumeDirectory)   // verifies every file
/// ```
///
/// One store may be used by several processes; saves and removals are serialised by a lock
/// file. Loading takes the lock only when a crash left something to repair.
public struct CheckpointStore: Sendable {
    /// `<out>/checkpoints`.
    public let directory: URL

    public init(outputDirectory: URL) {
        self.directory = outputDirectory.appendingPathComponent("checkpoints")
    }

    public init(checkpointsDirectory: URL) {
        self.directory = checkpointsDirectory
    }

    /// "step-1200": the name of the periodic checkpoint taken after `step`.
    public static func stepName(_ step: Int) -> String { "step-\(step)" }

    private var atomic: AtomicDirectory { AtomicDirectory(parent: directory) }

    /// Writes `contents` as checkpoint `name`, replacing an older checkpoint of that name.
    /// When it returns, the checkpoint is on disk; if the process dies before, `name` still
    /// holds the previous checkpoint (or nothing, if there was none).
    /// - Returns: the manifest written as `checkpoint.json`.
    /// - Throws: `CheckpointError` naming the file at fault; the encoder writer's own errors.
    @discardableResult
    public func save(_ contents: CheckpointContents, as name: String) throws -> CheckpointManifest {
        try AtomicDirectory.validate(name: name)
        let taskNames = contents.heads.map(\.manifest.task)
        for task in taskNames { try AtomicDirectory.validate(name: task) }
        if let duplicate = Dictionary(grouping: taskNames, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw CheckpointError.invalidName(name: duplicate, reason: "two heads are named after this task")
        }
        return try atomic.withLock {
            try atomic.recover()
            let temporary = try atomic.makeTemporaryDirectory(for: name)
            do {
                let manifest = try Self.build(contents, in: temporary)
                try atomic.publish(temporary, as: name)
                return manifest
            } catch {
                try? DurableFiles.removeTree(temporary)
                throw error
            }
        }
    }

    /// Writes every file of the checkpoint into `directory`, `checkpoint.json` last.
    private static func build(_ contents: CheckpointContents, in directory: URL) throws -> CheckpointManifest {
        // Encoder: the caller's writer, then tokenizer files, then the fingerprint heads record.
        let encoderDirectory = directory.appendingPathComponent(EncoderFiles.directory)
        try DurableFiles.createDirectory(encoderDirectory)
        try contents.writeEncoder(encoderDirectory)
        for required in [EncoderFiles.config, EncoderFiles.weights]
        where !DurableFiles.isRegularFile(encoderDirectory.appendingPathComponent(required)) {
            throw CheckpointError.encoderIncomplete(directory: encoderDirectory.path, missing: required)
        }
        if let tokenizerDirectory = contents.tokenizerDirectory {
            for name in CheckpointContents.tokenizerFileNames {
                let source = tokenizerDirectory.appendingPathComponent(name)
                let destination = encoderDirectory.appendingPathComponent(name)
                if DurableFiles.isRegularFile(source) && !DurableFiles.exists(destination) {
                    try DurableFiles.copy(source, to: destination)
                }
            }
        }
        let hiddenSize = try encoderHiddenSize(configAt: encoderDirectory.appendingPathComponent(EncoderFiles.config))
        // Hashed once: these entries give both the heads' encoder checksum and the file list.
        let encoderPrefix = EncoderFiles.directory + "/"
        let encoderEntries = try CheckpointManifest.entries(in: directory) { $0.hasPrefix(encoderPrefix) }
        guard let encoderChecksum = encoderEntries.first(where: { $0.path == encoderPrefix + EncoderFiles.weights })?.sha256 else {
            throw CheckpointError.encoderIncomplete(directory: encoderDirectory.path, missing: EncoderFiles.weights)
        }

        // Heads.
        let headsDirectory = directory.appendingPathComponent(CheckpointLayout.headsDirectory)
        try DurableFiles.createDirectory(headsDirectory)
        for head in contents.heads {
            var manifest = head.manifest
            manifest.encoderHiddenSize = hiddenSize
            manifest.encoderSHA256 = encoderChecksum
            try HeadFolder.write(manifest: manifest, tensors: head.tensors, to: headsDirectory.appendingPathComponent(manifest.task))
        }

        // Trainer state.
        if let state = contents.trainerState {
            try state.tensors.write(to: directory.appendingPathComponent(CheckpointLayout.trainerTensors))
            try DurableFiles.write(state.scalarsJSON, to: directory.appendingPathComponent(CheckpointLayout.trainerScalars))
        }

        // The file list, hashed from the disk, then the manifest that makes it a checkpoint.
        let manifest = CheckpointManifest(
            format: CheckpointManifest.formatName,
            formatVersion: CheckpointManifest.currentFormatVersion,
            created: ISO8601DateFormatter().string(from: Date()),
            step: contents.step,
            heads: contents.heads.map(\.manifest.task).sorted(),
            encoderSHA256: encoderChecksum,
            hasTrainerState: contents.trainerState != nil,
            files: try (encoderEntries + CheckpointManifest.entries(in: directory) { !$0.hasPrefix(encoderPrefix) })
                .sorted { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) })
        try DurableFiles.write(manifest.jsonData(), to: directory.appendingPathComponent(CheckpointManifest.fileName))
        return manifest
    }

    /// Loads checkpoint `name` of this store. See `load(directory:verification:)`.
    public func load(_ name: String, verification: CheckpointVerification = .full) throws -> LoadedCheckpoint {
        try AtomicDirectory.validate(name: name)
        return try Self.load(directory: directory.appendingPathComponent(name), verification: verification)
    }

    /// Loads the checkpoint in `checkpointDirectory` (e.g. the `--resume` argument) after
    /// repairing what an interrupted save left in its parent directory, and checks every
    /// listed file against `checkpoint.json`.
    /// - Throws: `CheckpointError` for a missing, partial or corrupt checkpoint, naming the file.
    public static func load(directory checkpointDirectory: URL, verification: CheckpointVerification = .full) throws -> LoadedCheckpoint {
        let directory = checkpointDirectory.standardizedFileURL
        let atomic = AtomicDirectory(parent: directory.deletingLastPathComponent())
        if try atomic.needsRecovery() {
            try atomic.withLock { _ = try atomic.recover() }
        }
        guard DurableFiles.isDirectory(directory) else {
            throw CheckpointError.checkpointNotFound(path: directory.path)
        }
        let manifestURL = directory.appendingPathComponent(CheckpointManifest.fileName)
        guard DurableFiles.exists(manifestURL) else {
            throw CheckpointError.incompleteCheckpoint(directory: directory.path)
        }
        let manifest = try CheckpointManifest.decode(DurableFiles.contents(of: manifestURL), source: manifestURL.path)
        try CheckpointVerifier.verify(manifest, in: directory, level: verification)
        return try LoadedCheckpoint(directory: directory, manifest: manifest)
    }

    /// Complete checkpoints of this store (those with a readable `checkpoint.json`), by step
    /// then name. Files are not verified; `load` does that.
    public func list() throws -> [CheckpointListing] {
        guard DurableFiles.isDirectory(directory) else { return [] }
        var result: [CheckpointListing] = []
        for name in try DurableFiles.entries(of: directory) where !name.hasPrefix(".") {
            let manifestURL = directory.appendingPathComponent(name).appendingPathComponent(CheckpointManifest.fileName)
            guard DurableFiles.isRegularFile(manifestURL),
                  let manifest = try? CheckpointManifest.decode(DurableFiles.contents(of: manifestURL), source: manifestURL.path)
            else { continue }
            result.append(CheckpointListing(name: name, step: manifest.step, created: manifest.created, hasTrainerState: manifest.hasTrainerState))
        }
        return result.sorted { ($0.step, $0.name) < ($1.step, $1.name) }
    }

    /// Removes checkpoint `name` (renamed aside first, so it never lingers half deleted).
    public func remove(_ name: String) throws {
        try AtomicDirectory.validate(name: name)
        try atomic.withLock {
            try atomic.recover()
            try atomic.remove(name)
        }
    }

    /// Removes `step-N` checkpoints except the `count` with the highest steps; `final`,
    /// `best` and other names are never touched.
    /// - Returns: the names removed.
    @discardableResult
    public func pruneStepCheckpoints(keepingLast count: Int) throws -> [String] {
        let stepCheckpoints = try list().filter { $0.name == Self.stepName($0.step) }
        let removed = stepCheckpoints.dropLast(max(count, 0)).map(\.name)
        for name in removed { try remove(name) }
        return removed
    }

    /// Repairs leftovers of saves interrupted by a crash (see `AtomicDirectory`).
    /// - Returns: one line per repair, for the run log.
    @discardableResult
    public func recover() throws -> [String] {
        guard DurableFiles.isDirectory(directory) else { return [] }
        return try atomic.withLock { try atomic.recover() }
    }
}

/// A checkpoint found by `CheckpointStore.list()`.
public struct CheckpointListing: Sendable, Equatable {
    public let name: String
    public let step: Int
    public let created: String
    public let hasTrainerState: Bool
}

/// A verified checkpoint: paths to hand to the encoder loader, heads and trainer state.
public struct LoadedCheckpoint: Sendable {
    public let directory: URL
    public let manifest: CheckpointManifest
    /// Holds config.json, model.safetensors and tokenizer files: a Hugging Face model directory.
    public let encoderDirectory: URL
    /// Sorted by task.
    public let heads: [LoadedHead]
    /// Nil for a model-only checkpoint.
    public let trainerState: LoadedTrainerState?

    public var step: Int { manifest.step }

    init(directory: URL, manifest: CheckpointManifest) throws {
        self.directory = directory
        self.manifest = manifest
        self.encoderDirectory = directory.appendingPathComponent(EncoderFiles.directory)
        let listed = Set(manifest.files.map(\.path))
        func requireListed(_ path: String) throws {
            guard listed.contains(path) else {
                throw CheckpointError.invalidCheckpointManifest(
                    path: directory.appendingPathComponent(CheckpointManifest.fileName).path,
                    reason: "'\(path)' is not in the file list")
            }
        }
        try requireListed(EncoderFiles.directory + "/" + EncoderFiles.config)
        try requireListed(EncoderFiles.directory + "/" + EncoderFiles.weights)
        var heads: [LoadedHead] = []
        for task in manifest.heads.sorted() {
            try AtomicDirectory.validate(name: task)
            let folder = CheckpointLayout.headsDirectory + "/" + task + "/"
            try requireListed(folder + CheckpointLayout.headManifest)
            try requireListed(folder + CheckpointLayout.headWeights)
            let head = try HeadFolder.read(directory.appendingPathComponent(folder))
            guard head.manifest.task == task else {
                throw CheckpointError.invalidHeadManifest(path: head.directory.appendingPathComponent(CheckpointLayout.headManifest).path,
                                                          reason: "task is '\(head.manifest.task)' but the folder is '\(task)'")
            }
            heads.append(head)
        }
        self.heads = heads
        if manifest.hasTrainerState {
            try requireListed(CheckpointLayout.trainerTensors)
            try requireListed(CheckpointLayout.trainerScalars)
            self.trainerState = try LoadedTrainerState(directory: directory)
        } else {
            self.trainerState = nil
        }
    }

    /// - Throws: `CheckpointError.headNotFound` listing the tasks the checkpoint has.
    public func head(_ task: String) throws -> LoadedHead {
        guard let head = heads.first(where: { $0.manifest.task == task }) else {
            throw CheckpointError.headNotFound(modelDirectory: directory.path, task: task, available: heads.map(\.manifest.task))
        }
        return head
    }
}

/// A head folder: `manifest.json` and `weights.safetensors`.
public struct LoadedHead: Sendable {
    public let directory: URL
    public let manifest: HeadManifest
    /// Opened (memory-mapped) and validated.
    public let weights: SafeTensorsFile
}

/// `trainer_state.safetensors` and `trainer_state.json` of a checkpoint.
public struct LoadedTrainerState: Sendable {
    /// Opened (memory-mapped) and validated; read moments with `copyFloats`.
    public let tensors: SafeTensorsFile
    /// The JSON the trainer saved, unchanged.
    public let scalarsJSON: Data
    private let scalarsPath: String

    init(directory: URL) throws {
        let tensorsURL = directory.appendingPathComponent(CheckpointLayout.trainerTensors)
        do {
            tensors = try SafeTensorsFile(contentsOf: tensorsURL)
        } catch {
            throw CheckpointError.invalidTrainerState(path: tensorsURL.path, reason: "\(error)")
        }
        let scalarsURL = directory.appendingPathComponent(CheckpointLayout.trainerScalars)
        scalarsJSON = try DurableFiles.contents(of: scalarsURL)
        scalarsPath = scalarsURL.path
    }

    /// Decodes the trainer's scalars into the type it saved them from.
    /// - Throws: `CheckpointError.invalidTrainerState` naming the file and the field.
    public func scalars<Scalars: Decodable>(as type: Scalars.Type) throws -> Scalars {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        do {
            return try decoder.decode(type, from: scalarsJSON)
        } catch {
            throw CheckpointError.invalidTrainerState(path: scalarsPath, reason: describe(error))
        }
    }
}

/// Reading and writing one head folder.
enum HeadFolder {
    static func write(manifest: HeadManifest, tensors: [NamedTensor], to folder: URL) throws {
        try manifest.validate(source: folder.appendingPathComponent(CheckpointLayout.headManifest).path)
        try DurableFiles.createDirectory(folder)
        var writer = SafeTensorsWriter()
        for tensor in tensors { try tensor.add(to: &writer) }
        try writer.write(to: folder.appendingPathComponent(CheckpointLayout.headWeights))
        try DurableFiles.write(manifest.jsonData(), to: folder.appendingPathComponent(CheckpointLayout.headManifest))
    }

    static func read(_ folder: URL) throws -> LoadedHead {
        let manifestURL = folder.appendingPathComponent(CheckpointLayout.headManifest)
        let manifest = try HeadManifest.decode(DurableFiles.contents(of: manifestURL), source: manifestURL.path)
        let weightsURL = folder.appendingPathComponent(CheckpointLayout.headWeights)
        let weights: SafeTensorsFile
        do {
            weights = try SafeTensorsFile(contentsOf: weightsURL)
        } catch {
            throw CheckpointError.cannotRead(path: weightsURL.path, reason: "\(error)")
        }
        return LoadedHead(directory: folder, manifest: manifest, weights: weights)
    }

    /// Every component folder (one holding a manifest) under `directory/<kind>/`, sorted by
    /// name; none when there is no such directory. `kind` is `CheckpointLayout.adaptersDirectory`
    /// or `.routersDirectory`.
    static func readAll(in directory: URL, kind: String) throws -> [LoadedHead] {
        let parent = directory.appendingPathComponent(kind)
        guard FileManager.default.fileExists(atPath: parent.path) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: parent.path).sorted()
            .filter { FileManager.default.fileExists(atPath: parent.appendingPathComponent($0).appendingPathComponent(CheckpointLayout.headManifest).path) }
            .map { try read(parent.appendingPathComponent($0)) }
    }
}
