import Foundation
import SafeTensors

/// One trained head shipped as ONE file: a safetensors file whose tensors are the head's
/// weights and whose `__metadata__` holds the manifest JSON under `polyhead.head.manifest`.
/// Python's `safetensors.safe_open` reads it as it reads any safetensors file.
///
/// ```swift
/// try HeadBundle.export(modelDirectory: runA, task: "sentiment", to: URL(fileURLWithPath: "sentiment.head"))
/// try HeadBundle.import(URL(fileURLWithPath: "sentiment.head"), into: runB)   // refuses another encoder
/// ```
///
/// A model directory is either a checkpoint (`encoder/` beside `heads/`) or a plain Hugging
/// Face model directory (config.json and model.safetensors at its top); heads live in
/// `heads/<task>/` in both.
public enum HeadBundle {
    public static let manifestMetadataKey = "polyhead.head.manifest"
    public static let formatMetadataKey = "polyhead.head.format_version"
    public static let formatVersion = 1

    /// How `import` may relax its checks. The hidden size is never relaxed: a head cannot
    /// run on features of another width.
    public struct ImportOptions: Sendable {
        /// Accept an encoder whose model.safetensors checksum differs from the one the head
        /// was trained with (e.g. the same base model fine-tuned further). The manifest keeps
        /// the checksum of the encoder the head was trained with.
        public var allowDifferentEncoder: Bool
        /// Replace an existing head of the same task.
        public var replaceExisting: Bool
        /// Install under this task name instead of the manifest's.
        public var taskName: String?

        public init(allowDifferentEncoder: Bool = false, replaceExisting: Bool = false, taskName: String? = nil) {
            self.allowDifferentEncoder = allowDifferentEncoder
            self.replaceExisting = replaceExisting
            self.taskName = taskName
        }
    }

    /// Writes the head of `task` in `modelDirectory` to `file` (atomically). In a checkpoint,
    /// the head's files are first verified against `checkpoint.json`.
    /// - Returns: the manifest written into the bundle.
    /// - Throws: `CheckpointError.headNotFound` listing the heads there are, or the errors of
    ///   verification and writing.
    @discardableResult
    public static func export(modelDirectory: URL, task: String, to file: URL) throws -> HeadManifest {
        let layout = ModelDirectoryLayout(modelDirectory)
        try AtomicDirectory.validate(name: task)
        let folder = layout.headsDirectory.appendingPathComponent(task)
        guard DurableFiles.isDirectory(folder) else {
            throw CheckpointError.headNotFound(modelDirectory: modelDirectory.path, task: task, available: try layout.headTasks())
        }
        if let manifest = try layout.checkpointManifest() {
            try CheckpointVerifier.verify(manifest, in: modelDirectory, level: .full,
                                          only: CheckpointLayout.headsDirectory + "/" + task + "/")
        }
        let components = try componentsServing(task: task, in: modelDirectory)
        guard components.isEmpty else {
            throw CheckpointError.headNeedsComponents(modelDirectory: modelDirectory.path, task: task, components: components)
        }
        let head = try HeadFolder.read(folder)
        var writer = SafeTensorsWriter()
        for name in head.weights.tensorNames {
            try tensor(named: name, in: head.weights).add(to: &writer)
        }
        writer.metadata[manifestMetadataKey] = String(decoding: try head.manifest.jsonData(), as: UTF8.self)
        writer.metadata[formatMetadataKey] = String(formatVersion)
        do {
            try writer.write(to: file)
        } catch let error as SafeTensorsError {
            throw CheckpointError.cannotWrite(path: file.path, reason: error.description)
        }
        return head.manifest
    }

    /// The adapters and routers of `modelDirectory` that `task`'s features go through, as
    /// "adapter NAME (adapters/NAME/)": a head trained through them cannot ship alone.
    static func componentsServing(task: String, in modelDirectory: URL) throws -> [String] {
        var found: [String] = []
        for (kind, directory) in [("adapter", CheckpointLayout.adaptersDirectory), ("router", CheckpointLayout.routersDirectory)] {
            for folder in try HeadFolder.readAll(in: modelDirectory, kind: directory) {
                let tasks = folder.manifest.labelNames
                // An adapter manifest without tasks (written before per-task adapters) serves all.
                if tasks.contains(task) || (kind == "adapter" && tasks.isEmpty) {
                    found.append("\(kind) \(folder.directory.lastPathComponent) (\(directory)/\(folder.directory.lastPathComponent)/)")
                }
            }
        }
        return found
    }

    /// Reads a bundle's manifest and opens its weights without installing anything.
    /// - Throws: `CheckpointError.notAHeadBundle` or `.invalidHeadManifest` naming `file`.
    public static func read(_ file: URL) throws -> (manifest: HeadManifest, weights: SafeTensorsFile) {
        let weights: SafeTensorsFile
        do {
            weights = try SafeTensorsFile(contentsOf: file)
        } catch {
            throw CheckpointError.notAHeadBundle(path: file.path, reason: "\(error)")
        }
        guard let text = weights.metadata[manifestMetadataKey] else {
            throw CheckpointError.notAHeadBundle(path: file.path, reason: "its safetensors metadata has no '\(manifestMetadataKey)'")
        }
        if let version = weights.metadata[formatMetadataKey], Int(version).map({ $0 > formatVersion }) ?? true {
            throw CheckpointError.notAHeadBundle(path: file.path, reason: "bundle format version '\(version)'; this polyhead reads up to \(formatVersion)")
        }
        let manifest = try HeadManifest.decode(Data(text.utf8), source: "\(file.path) (metadata '\(manifestMetadataKey)')")
        return (manifest, weights)
    }

    /// Installs the head in `file` as `heads/<task>/` of `modelDirectory` after checking that
    /// the model's encoder has the head's hidden size and (unless allowed otherwise) the
    /// checksum it was trained with. In a checkpoint, `checkpoint.json` is updated to list
    /// the new files. Atomic: a crash leaves the previous head folder or the new one.
    /// - Returns: the manifest as installed.
    /// - Throws: `CheckpointError.hiddenSizeMismatch`, `.encoderChecksumMismatch` or
    ///   `.headAlreadyExists`, each naming both sides; read and write errors.
    @discardableResult
    public static func `import`(_ file: URL, into modelDirectory: URL, options: ImportOptions = ImportOptions()) throws -> HeadManifest {
        let bundle = try read(file)
        var manifest = bundle.manifest
        let weights = bundle.weights
        if let taskName = options.taskName {
            try AtomicDirectory.validate(name: taskName)
            manifest.task = taskName
        }
        let layout = ModelDirectoryLayout(modelDirectory)
        let encoder = try layout.encoderDirectory()
        let hiddenSize = try encoderHiddenSize(configAt: encoder.appendingPathComponent(EncoderFiles.config))
        guard hiddenSize == manifest.encoderHiddenSize else {
            throw CheckpointError.hiddenSizeMismatch(bundle: file.path, bundleHiddenSize: manifest.encoderHiddenSize,
                                                     modelDirectory: modelDirectory.path, modelHiddenSize: hiddenSize)
        }
        let checksum = try SHA256.hash(fileAt: encoder.appendingPathComponent(EncoderFiles.weights)).hexString
        guard checksum == manifest.encoderSHA256 || options.allowDifferentEncoder else {
            throw CheckpointError.encoderChecksumMismatch(bundle: file.path, bundleChecksum: manifest.encoderSHA256,
                                                          modelDirectory: modelDirectory.path, modelChecksum: checksum)
        }
        let tensors = try weights.tensorNames.map { try tensor(named: $0, in: weights) }

        let heads = AtomicDirectory(parent: layout.headsDirectory)
        try heads.withLock {
            try heads.recover()
            if DurableFiles.exists(layout.headsDirectory.appendingPathComponent(manifest.task)) && !options.replaceExisting {
                throw CheckpointError.headAlreadyExists(modelDirectory: modelDirectory.path, task: manifest.task)
            }
            let temporary = try heads.makeTemporaryDirectory(for: manifest.task)
            do {
                try HeadFolder.write(manifest: manifest, tensors: tensors, to: temporary)
                try heads.publish(temporary, as: manifest.task)
            } catch {
                try? DurableFiles.removeTree(temporary)
                throw error
            }
            if var checkpoint = try layout.checkpointManifest() {
                try relist(&checkpoint, task: manifest.task, in: modelDirectory)
            }
        }
        return manifest
    }

    /// Rewrites `checkpoint.json` so it lists the files of `heads/<task>/` as they now are.
    private static func relist(_ checkpoint: inout CheckpointManifest, task: String, in modelDirectory: URL) throws {
        let prefix = CheckpointLayout.headsDirectory + "/" + task + "/"
        let folder = modelDirectory.appendingPathComponent(prefix)
        let newEntries = try CheckpointManifest.entries(in: folder).map {
            CheckpointManifest.FileEntry(path: prefix + $0.path, size: $0.size, sha256: $0.sha256)
        }
        checkpoint.files = (checkpoint.files.filter { !$0.path.hasPrefix(prefix) } + newEntries)
            .sorted { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }
        checkpoint.heads = Array(Set(checkpoint.heads + [task])).sorted()
        try DurableFiles.replace(checkpoint.jsonData(), at: modelDirectory.appendingPathComponent(CheckpointManifest.fileName))
    }

    /// A tensor of `file` as F32 or I64 values; other dtypes are widened to F32.
    private static func tensor(named name: String, in file: SafeTensorsFile) throws -> NamedTensor {
        let info = try file.info(name)
        if info.dtype == .i64 {
            return NamedTensor(name, shape: info.shape, int64s: try file.int64s(name))
        }
        return NamedTensor(name, shape: info.shape, floats: try file.floats(name))
    }
}

/// Where the encoder and heads of a model directory are.
struct ModelDirectoryLayout {
    let root: URL

    init(_ root: URL) {
        self.root = root
    }

    var headsDirectory: URL { root.appendingPathComponent(CheckpointLayout.headsDirectory) }

    /// `encoder/` in a checkpoint, else the directory itself when it holds config.json.
    func encoderDirectory() throws -> URL {
        let nested = root.appendingPathComponent(EncoderFiles.directory)
        for candidate in [nested, root] where DurableFiles.isRegularFile(candidate.appendingPathComponent(EncoderFiles.config)) {
            guard DurableFiles.isRegularFile(candidate.appendingPathComponent(EncoderFiles.weights)) else {
                throw CheckpointError.encoderIncomplete(directory: candidate.path, missing: EncoderFiles.weights)
            }
            return candidate
        }
        throw CheckpointError.encoderIncomplete(directory: root.path, missing: "\(EncoderFiles.directory)/\(EncoderFiles.config) or \(EncoderFiles.config)")
    }

    /// The parsed `checkpoint.json`, or nil in a plain model directory.
    func checkpointManifest() throws -> CheckpointManifest? {
        let url = root.appendingPathComponent(CheckpointManifest.fileName)
        guard DurableFiles.exists(url) else { return nil }
        return try CheckpointManifest.decode(DurableFiles.contents(of: url), source: url.path)
    }

    func headTasks() throws -> [String] {
        guard DurableFiles.isDirectory(headsDirectory) else { return [] }
        return try DurableFiles.entries(of: headsDirectory).filter {
            !$0.hasPrefix(".") && DurableFiles.isDirectory(headsDirectory.appendingPathComponent($0))
        }
    }
}
