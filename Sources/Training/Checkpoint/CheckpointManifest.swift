import Foundation

/// `checkpoint.json`: written last into a checkpoint, it lists every other file with its
/// size and SHA-256 so a load can tell a complete checkpoint from a damaged one.
public struct CheckpointManifest: Codable, Equatable, Sendable {
    public static let currentFormatVersion = 1
    public static let fileName = "checkpoint.json"

    /// One file of the checkpoint, relative to the checkpoint directory.
    public struct FileEntry: Codable, Equatable, Sendable {
        public var path: String
        public var size: Int
        public var sha256: String
    }

    /// Always "polyhead-checkpoint"; tells this file apart from other JSON.
    public var format: String
    public var formatVersion: Int
    /// ISO 8601, UTC.
    public var created: String
    /// The optimizer step the checkpoint was taken after.
    public var step: Int
    /// Tasks with a folder under `heads/`, sorted.
    public var heads: [String]
    /// SHA-256 of `encoder/model.safetensors`, the value recorded in each head manifest.
    public var encoderSHA256: String
    public var hasTrainerState: Bool
    /// Every file but `checkpoint.json`, sorted by path.
    public var files: [FileEntry]

    enum CodingKeys: String, CodingKey {
        case format
        case formatVersion = "format_version"
        case created
        case step
        case heads
        case encoderSHA256 = "encoder_sha256"
        case hasTrainerState = "has_trainer_state"
        case files
    }

    static let formatName = "polyhead-checkpoint"

    func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    static func decode(_ data: Data, source: String) throws -> CheckpointManifest {
        let manifest: CheckpointManifest
        do {
            manifest = try JSONDecoder().decode(CheckpointManifest.self, from: data)
        } catch {
            throw CheckpointError.invalidCheckpointManifest(path: source, reason: describe(error))
        }
        guard manifest.format == formatName else {
            throw CheckpointError.invalidCheckpointManifest(path: source, reason: "format is '\(manifest.format)', expected '\(formatName)'")
        }
        guard manifest.formatVersion <= currentFormatVersion else {
            throw CheckpointError.unsupportedFormatVersion(path: source, found: manifest.formatVersion, supported: currentFormatVersion)
        }
        for entry in manifest.files {
            // Listed paths are joined to the checkpoint directory: none may climb out of it.
            let components = entry.path.split(separator: "/", omittingEmptySubsequences: false)
            guard !entry.path.hasPrefix("/"), !components.contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }) else {
                throw CheckpointError.invalidCheckpointManifest(path: source, reason: "file path '\(entry.path)' is not a plain relative path")
            }
        }
        return manifest
    }

    /// Entries for the regular files under `directory` (except checkpoint.json) whose
    /// relative path `include` accepts, hashed from what is on disk.
    static func entries(in directory: URL, where include: (String) -> Bool = { _ in true }) throws -> [FileEntry] {
        try DurableFiles.regularFiles(under: directory)
            .filter { $0 != fileName && include($0) }
            .map { path in
                let url = directory.appendingPathComponent(path)
                guard let size = DurableFiles.fileSize(url) else {
                    throw CheckpointError.cannotRead(path: url.path, reason: "not a regular file")
                }
                return FileEntry(path: path, size: size, sha256: try SHA256.hash(fileAt: url).hexString)
            }
    }
}

/// How thoroughly `CheckpointStore.load` checks the files against `checkpoint.json`.
public enum CheckpointVerification: Sendable {
    /// Every listed file exists with its listed size and SHA-256 (reads every byte).
    case full
    /// Every listed file exists with its listed size (no hashing; for quick listings).
    case sizes
}

/// Reads and checks a checkpoint's file list.
enum CheckpointVerifier {
    static func verify(_ manifest: CheckpointManifest, in directory: URL, level: CheckpointVerification, only prefix: String? = nil) throws {
        for entry in manifest.files where prefix.map({ entry.path.hasPrefix($0) }) ?? true {
            let url = directory.appendingPathComponent(entry.path)
            guard let size = DurableFiles.fileSize(url) else {
                throw CheckpointError.missingFile(checkpoint: directory.path, file: entry.path)
            }
            guard size == entry.size else {
                throw CheckpointError.fileSizeMismatch(checkpoint: directory.path, file: entry.path, expected: entry.size, actual: size)
            }
            if level == .full {
                let actual = try SHA256.hash(fileAt: url).hexString
                guard actual == entry.sha256 else {
                    throw CheckpointError.checksumMismatch(checkpoint: directory.path, file: entry.path, expected: entry.sha256, actual: actual)
                }
            }
        }
    }
}
