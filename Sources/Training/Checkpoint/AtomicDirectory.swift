import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Publishes whole directories into a parent directory so that a process killed at any
/// moment leaves, under each name, either the previous complete directory or the new one.
///
/// Protocol (docs/checkpoint-format.md, "Atomic writes"), for a directory NAME in PARENT:
/// 1. Take an exclusive `flock` on `PARENT/.polyhead.lock` (released by the kernel when the
///    process dies, even by SIGKILL), then run `recover()`.
/// 2. Build everything in `PARENT/.tmp-NAME-PID`; fsync every file and directory in it.
/// 3. If NAME exists, rename it to `PARENT/.old-NAME-PID` and fsync PARENT.
/// 4. Rename `.tmp-NAME-PID` to NAME and fsync PARENT. This rename is the commit point.
/// 5. Remove `.old-NAME-PID` and fsync PARENT.
///
/// `recover()`, run under the lock so no writer is active, repairs what a crash left:
/// `.tmp-*` is an unfinished build and is removed; `.old-NAME-*` is removed when NAME exists
/// (crash after step 4) and renamed back to NAME when it does not (crash between steps 3
/// and 4), restoring the previous directory; `.trash-*` (see `remove`) is removed.
struct AtomicDirectory {
    let parent: URL

    static let lockFileName = ".polyhead.lock"
    private static let temporaryPrefix = ".tmp-"
    private static let oldPrefix = ".old-"
    private static let trashPrefix = ".trash-"

    init(parent: URL) {
        self.parent = parent
    }

    /// Whether a crash left anything for `recover()` to repair.
    func needsRecovery() throws -> Bool {
        guard DurableFiles.isDirectory(parent) else { return false }
        return try DurableFiles.entries(of: parent).contains { Self.leftoverKind($0) != nil }
    }

    /// Runs `body` holding the parent's exclusive lock; waits for another writer to finish.
    func withLock<Result>(_ body: () throws -> Result) throws -> Result {
        try DurableFiles.createDirectory(parent)
        let lockURL = parent.appendingPathComponent(Self.lockFileName)
        let descriptor = open(lockURL.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CheckpointError.cannotWrite(path: lockURL.path, reason: "opening the lock file: \(DurableFiles.errorText())")
        }
        defer { close(descriptor) }
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else {
                throw CheckpointError.cannotWrite(path: lockURL.path, reason: "locking: \(DurableFiles.errorText())")
            }
        }
        defer { flock(descriptor, LOCK_UN) }
        return try body()
    }

    /// Repairs leftovers of interrupted writes. Call only while holding the lock.
    /// - Returns: what was done, one line per entry, for logging.
    @discardableResult
    func recover() throws -> [String] {
        guard DurableFiles.isDirectory(parent) else { return [] }
        var actions: [String] = []
        var changed = false
        for entry in try DurableFiles.entries(of: parent) {
            guard let (kind, name) = Self.leftoverKind(entry) else { continue }
            let url = parent.appendingPathComponent(entry)
            switch kind {
            case Self.oldPrefix:
                let live = parent.appendingPathComponent(name)
                if DurableFiles.exists(live) {
                    try DurableFiles.removeTree(url)
                    actions.append("removed \(entry): '\(name)' had already been replaced")
                } else {
                    try DurableFiles.rename(url, to: live)
                    actions.append("restored '\(name)' from \(entry): its replacement never finished")
                }
            case Self.temporaryPrefix:
                try DurableFiles.removeTree(url)
                actions.append("removed \(entry): an unfinished write of '\(name)'")
            default:
                try DurableFiles.removeTree(url)
                actions.append("removed \(entry): an unfinished removal of '\(name)'")
            }
            changed = true
        }
        if changed { try DurableFiles.syncDirectory(parent) }
        return actions
    }

    /// A fresh, empty build directory for `name`. Call only while holding the lock.
    func makeTemporaryDirectory(for name: String) throws -> URL {
        let url = parent.appendingPathComponent("\(Self.temporaryPrefix)\(name)-\(getpid())")
        try DurableFiles.removeTree(url)
        try DurableFiles.createDirectory(url)
        return url
    }

    /// Steps 2 (sync) to 5: moves the finished `temporary` directory to `name`, replacing
    /// any directory already there. Call only while holding the lock.
    func publish(_ temporary: URL, as name: String) throws {
        try DurableFiles.syncTree(temporary)
        let destination = parent.appendingPathComponent(name)
        let old = parent.appendingPathComponent("\(Self.oldPrefix)\(name)-\(getpid())")
        let replacing = DurableFiles.exists(destination)
        if replacing {
            try DurableFiles.removeTree(old)
            try DurableFiles.rename(destination, to: old)
            try DurableFiles.syncDirectory(parent)
        }
        do {
            try DurableFiles.rename(temporary, to: destination)
        } catch {
            // Put the previous directory back so the name never stays empty.
            if replacing { try? DurableFiles.rename(old, to: destination) }
            throw error
        }
        try DurableFiles.syncDirectory(parent)
        if replacing {
            try DurableFiles.removeTree(old)
            try DurableFiles.syncDirectory(parent)
        }
    }

    /// Removes the directory `name`: renamed aside first, so a crash never leaves a half
    /// deleted directory under the name. Call only while holding the lock.
    func remove(_ name: String) throws {
        let destination = parent.appendingPathComponent(name)
        guard DurableFiles.exists(destination) else { return }
        let trash = parent.appendingPathComponent("\(Self.trashPrefix)\(name)-\(getpid())")
        try DurableFiles.removeTree(trash)
        try DurableFiles.rename(destination, to: trash)
        try DurableFiles.syncDirectory(parent)
        try DurableFiles.removeTree(trash)
    }

    /// For a leftover entry, its prefix and the name it belonged to (the pid suffix removed).
    private static func leftoverKind(_ entry: String) -> (String, String)? {
        for prefix in [temporaryPrefix, oldPrefix, trashPrefix] where entry.hasPrefix(prefix) {
            let rest = entry.dropFirst(prefix.count)
            guard let dash = rest.lastIndex(of: "-"), rest[rest.index(after: dash)...].allSatisfy(\.isNumber) else {
                return nil
            }
            return (prefix, String(rest[..<dash]))
        }
        return nil
    }

    /// Checks that `name` can be a single folder name inside the parent.
    static func validate(name: String) throws {
        guard !name.isEmpty else { throw CheckpointError.invalidName(name: name, reason: "it is empty") }
        guard name.utf8.count <= 200 else { throw CheckpointError.invalidName(name: name, reason: "it is longer than 200 bytes") }
        guard !name.hasPrefix(".") else {
            throw CheckpointError.invalidName(name: name, reason: "names starting with '.' are reserved for temporary and lock files")
        }
        let allowed = name.unicodeScalars.allSatisfy { scalar in
            (scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)))
                || scalar == "-" || scalar == "_" || scalar == "."
        }
        guard allowed else { throw CheckpointError.invalidName(name: name, reason: "it contains a character other than ASCII letters, digits, '-', '_' and '.'") }
    }
}
