import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(Glibc)
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
#endif

/// What a `metrics.jsonl` line reports.
public enum MetricsKind: String, Codable, Sendable, CaseIterable {
    /// Training losses (and run-wide values such as the learning rate) at a log step.
    case train
    /// Metrics on the dev split.
    case eval
    /// Metrics on the test split.
    case test
    /// A free-text event (resumed, checkpoint saved, early stop, ...).
    case note
}

/// One line of `metrics.jsonl`, e.g.
/// `{"elapsed":61.2,"kind":"eval","step":400,"tasks":{"sentiment":{"accuracy":0.91}},"values":{},"wall_time":1718000000.5}`.
public struct MetricsRecord: Codable, Equatable, Sendable {
    public var step: Int
    public var kind: MetricsKind
    /// Seconds since 1970 when the line was written.
    public var wallTime: Double
    /// Seconds of the run so far, including time before a resume.
    public var elapsed: Double
    /// Task name -> metric name -> value (e.g. "loss", "accuracy", "macro_f1").
    public var tasks: [String: [String: Double]]
    /// Run-wide values: "learning_rate", "loss" (the weighted total), "sequences_per_second".
    public var values: [String: Double]
    /// For `.note` lines.
    public var message: String?

    public init(step: Int, kind: MetricsKind, wallTime: Double, elapsed: Double,
                tasks: [String: [String: Double]] = [:], values: [String: Double] = [:], message: String? = nil) {
        self.step = step
        self.kind = kind
        self.wallTime = wallTime
        self.elapsed = elapsed
        self.tasks = tasks
        self.values = values
        self.message = message
    }

    enum CodingKeys: String, CodingKey {
        case step, kind, tasks, values, message, elapsed
        case wallTime = "wall_time"
    }
}

/// Appends `MetricsRecord`s to `metrics.jsonl`, one JSON object per line, each line handed
/// to the kernel in one `write` as soon as it is logged, so a killed run keeps every line it
/// logged. Non-finite values are written as the strings "NaN", "Infinity", "-Infinity".
///
/// ```swift
/// let log = try MetricsLog(url: out.appendingPathComponent("metrics.jsonl"))
/// try log.append(step: 100, kind: .train, tasks: ["sentiment": ["loss": 0.41]], values: ["learning_rate": 2e-5])
/// ```
public final class MetricsLog {
    public static let fileName = "metrics.jsonl"

    public let url: URL
    private let descriptor: Int32
    private let elapsedOffset: Double
    private let openedAt: Double
    private let encoder: JSONEncoder

    /// Opens (creating) the log for appending. A last line cut short by a crash is removed.
    /// When resuming from a checkpoint taken at `step`, lines logged after it by the run
    /// that died are removed so the resumed run does not log those steps twice.
    /// - Parameters:
    ///   - resumingAfter: the checkpoint step a resumed run continues from; nil for a new run.
    ///   - elapsedOffset: seconds the run had already taken before this process.
    /// - Throws: `CheckpointError` naming the file, or `MetricsLogError` for a line that
    ///   does not parse when resuming (it must be read to decide whether to keep it).
    public init(url: URL, resumingAfter step: Int? = nil, elapsedOffset: Double = 0) throws {
        self.url = url
        self.elapsedOffset = elapsedOffset
        self.openedAt = Self.monotonicSeconds()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        self.encoder = encoder
        try DurableFiles.createDirectory(url.deletingLastPathComponent())
        if DurableFiles.exists(url) {
            let data = try DurableFiles.contents(of: url)
            var keptLength = data.count
            if let last = data.last, last != UInt8(ascii: "\n") {
                keptLength = (data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 }) ?? 0
            }
            var kept = data.prefix(keptLength)
            if let step {
                var lines: [Data] = []
                for (index, line) in kept.split(separator: UInt8(ascii: "\n")).enumerated() {
                    let record = try Self.decode(Data(line), path: url.path, lineNumber: index + 1)
                    if record.step <= step { lines.append(Data(line)) }
                }
                kept = lines.reduce(into: Data()) { $0.append($1); $0.append(UInt8(ascii: "\n")) }
            }
            if kept.count != data.count {
                try DurableFiles.replace(Data(kept), at: url)
            }
        }
        let descriptor = open(url.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CheckpointError.cannotWrite(path: url.path, reason: DurableFiles.errorText())
        }
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }

    /// Seconds of the run so far, as written in `elapsed`.
    public var elapsed: Double {
        elapsedOffset + Self.monotonicSeconds() - openedAt
    }

    /// Logs one line stamped with the current wall time and elapsed time.
    public func append(step: Int, kind: MetricsKind, tasks: [String: [String: Double]] = [:],
                       values: [String: Double] = [:], message: String? = nil) throws {
        try append(MetricsRecord(step: step, kind: kind, wallTime: Date().timeIntervalSince1970, elapsed: elapsed,
                                 tasks: tasks, values: values, message: message))
    }

    /// Logs `record` as one line.
    /// - Throws: `CheckpointError.cannotWrite` naming the file.
    public func append(_ record: MetricsRecord) throws {
        var line = try encoder.encode(record)
        line.append(UInt8(ascii: "\n"))
        try line.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            var written = 0
            while written < buffer.count {
                let result = systemWrite(descriptor, base + written, buffer.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    throw CheckpointError.cannotWrite(path: url.path, reason: DurableFiles.errorText())
                }
                written += result
            }
        }
    }

    /// Every record of a `metrics.jsonl` file, in order.
    /// - Throws: `MetricsLogError` naming the file and line of a line that does not parse.
    public static func read(_ url: URL) throws -> [MetricsRecord] {
        let data = try DurableFiles.contents(of: url)
        var records: [MetricsRecord] = []
        for (index, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            records.append(try decode(Data(line), path: url.path, lineNumber: index + 1))
        }
        return records
    }

    private static func decode(_ line: Data, path: String, lineNumber: Int) throws -> MetricsRecord {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        do {
            return try decoder.decode(MetricsRecord.self, from: line)
        } catch {
            throw MetricsLogError(path: path, lineNumber: lineNumber, reason: describe(error))
        }
    }

    /// Seconds on the monotonic clock (never jumps with the wall clock).
    public static func monotonicSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }
}

/// A `metrics.jsonl` line that is not a metrics record.
public struct MetricsLogError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let lineNumber: Int
    public let reason: String
    public var description: String {
        "\(path):\(lineNumber): not a metrics record (\(reason)); remove or fix the line, it was not written by polyhead."
    }
}
