import CPolyhead
import Foundation

/// A plugin refused at load time, or a plugin call that failed. The description is one
/// line naming the plugin file and component, what went wrong, and what to do.
public struct PluginError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The file could not become a plugin (no entry, ABI mismatch, bad table, ...).
        case refused
        /// A second component with an id that is already loaded.
        case duplicateComponent
        /// No loaded plugin provides what was asked for.
        case notFound
        /// A plugin function returned an error status.
        case callFailed
        /// The host was asked for something invalid (bad arguments, shapes).
        case invalidRequest
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// A readable name for a status code, for messages.
func statusName(_ status: ph_status) -> String {
    switch status {
    case PH_STATUS_OK: return "ok"
    case PH_STATUS_ERROR: return "error"
    case PH_STATUS_INVALID_ARGUMENT: return "invalid argument"
    case PH_STATUS_OUT_OF_MEMORY: return "out of memory"
    case PH_STATUS_UNSUPPORTED: return "unsupported"
    case PH_STATUS_NOT_FOUND: return "not found"
    case PH_STATUS_NOT_FINITE: return "not finite"
    default: return "unknown status \(status)"
    }
}

/// Owns one ph_error_sink and collects the first message a failing plugin call reports
/// through it. One collector per call.
final class ErrorCollector {
    var status: ph_status = PH_STATUS_OK
    var message: String?
    let sink: UnsafeMutablePointer<ph_error_sink>

    init() {
        sink = .allocate(capacity: 1)
        sink.initialize(to: ph_error_sink(size: UInt32(MemoryLayout<ph_error_sink>.size), context: nil,
                                          report: reportIntoCollector))
        sink.pointee.context = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit { sink.deallocate() }

    /// Turns a non-OK status (or a reported message) into a PluginError whose text starts
    /// with `context`, e.g. "libX.so: component x.y forward".
    func check(_ status: ph_status, _ context: @autoclosure () -> String) throws {
        guard status != PH_STATUS_OK else { return }
        let detail = message.map { oneLine($0) }
            ?? "returned status \(status) (\(statusName(status))) without a message"
        throw PluginError(.callFailed, "\(context()) failed: \(detail)")
    }

    /// Runs `body` with a fresh sink and checks the status it returns.
    static func call(_ context: @autoclosure () -> String,
                     _ body: (UnsafeMutablePointer<ph_error_sink>) -> ph_status) throws {
        let collector = ErrorCollector()
        let status = withExtendedLifetime(collector) { body(collector.sink) }
        try collector.check(status, context())
    }
}

/// The sink's report function: keeps the first message only.
private let reportIntoCollector: @convention(c) (UnsafeMutablePointer<ph_error_sink>?, ph_status, UnsafePointer<CChar>?) -> Void = { sink, status, message in
    guard let context = sink?.pointee.context else { return }
    let collector = Unmanaged<ErrorCollector>.fromOpaque(context).takeUnretainedValue()
    guard collector.message == nil else { return }
    collector.status = status
    collector.message = message.map { String(cString: $0) } ?? "(no message)"
}

/// Newlines in a plugin's message would break the one-line rule of every error.
func oneLine(_ text: String) -> String {
    text.split(whereSeparator: \.isNewline).joined(separator: " ").trimmingCharacters(in: .whitespaces)
}
