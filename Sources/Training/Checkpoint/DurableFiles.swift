import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The enum's own `write`, `rename` and `read` hide the C functions inside it.
#if canImport(Glibc)
private let systemWrite = Glibc.write
private let systemRead = Glibc.read
private let systemRename = Glibc.rename
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
private let systemRead = Darwin.read
private let systemRename = Darwin.rename
#endif

/// File operations that reach the disk before they return: every file and directory they
/// create is fsynced, and single-file replacement goes through a temporary file and rename.
/// Foundation's `Data.write(options: .atomic)` renames but never fsyncs, so after a power
/// loss the new name can point at an empty file.
enum DurableFiles {
    static func errorText() -> String { String(cString: strerror(errno)) }

    /// Writes `bytes` to a new file (replacing any file at `url`) and fsyncs it.
    static func write<Bytes: ContiguousBytes>(_ bytes: Bytes, to url: URL) throws {
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw CheckpointError.cannotWrite(path: url.path, reason: errorText()) }
        defer { close(descriptor) }
        try bytes.withUnsafeBytes { try writeAll($0, to: descriptor, path: url.path) }
        guard fsync(descriptor) == 0 else { throw CheckpointError.cannotWrite(path: url.path, reason: "fsync: \(errorText())") }
    }

    /// Replaces the file at `url` atomically: a reader sees the old bytes or the new ones,
    /// never a mixture, even after a crash.
    static func replace<Bytes: ContiguousBytes>(_ bytes: Bytes, at url: URL) throws {
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        do {
            try write(bytes, to: temporary)
            try rename(temporary, to: url)
        } catch {
            unlink(temporary.path)
            throw error
        }
        try syncDirectory(url.deletingLastPathComponent())
    }

    /// Copies a regular file in 1 MiB chunks and fsyncs the copy.
    static func copy(_ source: URL, to destination: URL) throws {
        let input = open(source.path, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw CheckpointError.cannotRead(path: source.path, reason: errorText()) }
        defer { close(input) }
        let output = open(destination.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard output >= 0 else { throw CheckpointError.cannotWrite(path: destination.path, reason: errorText()) }
        defer { close(output) }
        let chunkSize = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let count = systemRead(input, buffer, chunkSize)
            if count < 0 {
                if errno == EINTR { continue }
                throw CheckpointError.cannotRead(path: source.path, reason: errorText())
            }
            if count == 0 { break }
            try writeAll(UnsafeRawBufferPointer(start: buffer, count: count), to: output, path: destination.path)
        }
        guard fsync(output) == 0 else { throw CheckpointError.cannotWrite(path: destination.path, reason: "fsync: \(errorText())") }
    }

    static func rename(_ source: URL, to destination: URL) throws {
        guard systemRename(source.path, destination.path) == 0 else {
            throw CheckpointError.cannotWrite(path: destination.path, reason: "rename from \(source.lastPathComponent): \(errorText())")
        }
    }

    /// Makes a directory's entries (creations, renames, removals) durable. Some file
    /// systems refuse to fsync directories (EINVAL); there is nothing more to do on those.
    static func syncDirectory(_ url: URL) throws {
        let descriptor = open(url.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw CheckpointError.cannotRead(path: url.path, reason: errorText()) }
        defer { close(descriptor) }
        if fsync(descriptor) != 0 && errno != EINVAL {
            throw CheckpointError.cannotWrite(path: url.path, reason: "fsync: \(errorText())")
        }
    }

    /// fsyncs a file that may have been written by someone else (e.g. an encoder writer).
    static func syncFile(_ url: URL) throws {
        let descriptor = open(url.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw CheckpointError.cannotRead(path: url.path, reason: errorText()) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw CheckpointError.cannotWrite(path: url.path, reason: "fsync: \(errorText())") }
    }

    static func createDirectory(_ url: URL) throws {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw CheckpointError.cannotWrite(path: url.path, reason: "creating the directory: \(error.localizedDescription)")
        }
    }

    static func removeTree(_ url: URL) throws {
        guard exists(url) else { return }
        do {
            try FileManager.default.removeItem(at: url)
        } catch {
            throw CheckpointError.cannotWrite(path: url.path, reason: "removing: \(error.localizedDescription)")
        }
    }

    static func exists(_ url: URL) -> Bool {
        var status = stat()
        return lstat(url.path, &status) == 0
    }

    static func isDirectory(_ url: URL) -> Bool {
        var status = stat()
        return stat(url.path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }

    static func isRegularFile(_ url: URL) -> Bool {
        var status = stat()
        return stat(url.path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG
    }

    /// The size in bytes, or nil when `url` is not a regular file.
    static func fileSize(_ url: URL) -> Int? {
        var status = stat()
        guard stat(url.path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(status.st_size)
    }

    static func contents(of url: URL) throws -> Data {
        do {
            return try Data(contentsOf: url)
        } catch {
            throw CheckpointError.cannotRead(path: url.path, reason: error.localizedDescription)
        }
    }

    /// Names in a directory (no "." or ".."), sorted by their bytes so results are stable.
    static func entries(of directory: URL) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: directory.path)
                .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        } catch {
            throw CheckpointError.cannotRead(path: directory.path, reason: error.localizedDescription)
        }
    }

    /// Regular files below `root`, as paths relative to it with "/" separators, sorted.
    /// Symbolic links are refused: a checkpoint must hold its own bytes.
    static func regularFiles(under root: URL) throws -> [String] {
        var result: [String] = []
        func walk(_ directory: URL, prefix: String) throws {
            for name in try entries(of: directory) {
                let url = directory.appendingPathComponent(name)
                let relative = prefix.isEmpty ? name : prefix + "/" + name
                var status = stat()
                guard lstat(url.path, &status) == 0 else {
                    throw CheckpointError.cannotRead(path: url.path, reason: errorText())
                }
                switch status.st_mode & S_IFMT {
                case S_IFDIR: try walk(url, prefix: relative)
                case S_IFREG: result.append(relative)
                default:
                    throw CheckpointError.cannotWrite(path: url.path, reason: "only regular files and directories may go into a checkpoint")
                }
            }
        }
        try walk(root, prefix: "")
        return result.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    /// fsyncs every file and directory below `root`, and `root` itself, children first.
    static func syncTree(_ root: URL) throws {
        for name in try entries(of: root) {
            let url = root.appendingPathComponent(name)
            if isDirectory(url) {
                try syncTree(url)
            } else {
                try syncFile(url)
            }
        }
        try syncDirectory(root)
    }

    private static func writeAll(_ buffer: UnsafeRawBufferPointer, to descriptor: Int32, path: String) throws {
        guard let base = buffer.baseAddress else { return }
        var written = 0
        while written < buffer.count {
            let result = systemWrite(descriptor, base + written, buffer.count - written)
            if result < 0 {
                if errno == EINTR { continue }
                throw CheckpointError.cannotWrite(path: path, reason: errorText())
            }
            written += result
        }
    }
}
