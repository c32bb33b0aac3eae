import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Training progress for people. On a terminal: one line redrawn in place (at most every
/// `minimumRedrawInterval` seconds) with step, loss, throughput and ETA. Otherwise (a log
/// file, CI): a plain line every `logEvery` steps and at the last step.
///
/// ```swift
/// let progress = ProgressReporter(totalSteps: 2000)
/// for step in 1...2000 {
///     ...
///     progress.update(step: step, loss: loss, sequences: batchSize)
/// }
/// progress.finish()
/// ```
/// Sample line: `step 120/2000 (6.0%)  loss 0.4312  3.12 seq/s  0.85 s/step  ETA 26m 38s`.
public final class ProgressReporter {
    public enum Style: Sendable {
        /// Redraw one line in place.
        case terminal
        /// Append whole lines.
        case plain

        /// `.terminal` when standard error is a terminal.
        public static var automatic: Style {
            isatty(STDERR_FILENO) != 0 ? .terminal : .plain
        }
    }

    public let totalSteps: Int
    public let style: Style
    public let logEvery: Int
    public let minimumRedrawInterval: Double

    private let clock: () -> Double
    private let output: (String) -> Void
    /// Recent (time, step, cumulative sequences) samples: rates are measured over these, so
    /// the numbers follow the current speed instead of averaging in start-up.
    private var samples: [(time: Double, step: Int, sequences: Int)] = []
    private let windowSize = 32
    private var totalSequences = 0
    private var lastRedraw = -Double.infinity
    private var lastLine = ""
    private var lineIsOpen = false

    /// - Parameters:
    ///   - totalSteps: the step the run ends at.
    ///   - startStep: the step a resumed run starts from (so rates ignore earlier steps).
    ///   - clock: seconds from any fixed origin (monotonic by default).
    ///   - output: receives text to show; standard error by default.
    public init(totalSteps: Int, startStep: Int = 0, style: Style = .automatic, logEvery: Int = 50,
                minimumRedrawInterval: Double = 0.2, clock: @escaping () -> Double = MetricsLog.monotonicSeconds,
                output: @escaping (String) -> Void = ProgressReporter.writeToStandardError) {
        self.totalSteps = totalSteps
        self.style = style
        self.logEvery = max(logEvery, 1)
        self.minimumRedrawInterval = minimumRedrawInterval
        self.clock = clock
        self.output = output
        samples.append((clock(), startStep, 0))
    }

    /// Records that `step` finished after processing `sequences` sequences.
    public func update(step: Int, loss: Double?, sequences: Int) {
        let now = clock()
        totalSequences += sequences
        samples.append((now, step, totalSequences))
        if samples.count > windowSize { samples.removeFirst(samples.count - windowSize) }
        let line = describe(step: step, loss: loss)
        lastLine = line
        switch style {
        case .terminal:
            guard now - lastRedraw >= minimumRedrawInterval || step >= totalSteps else { return }
            lastRedraw = now
            output("\r" + line + "\u{1B}[K")
            lineIsOpen = true
        case .plain:
            guard step % logEvery == 0 || step >= totalSteps else { return }
            output(line + "\n")
        }
    }

    /// Prints a message on its own line without garbling the progress line.
    public func log(_ message: String) {
        switch style {
        case .terminal:
            output("\r\u{1B}[K" + message + "\n")
            if lineIsOpen { output(lastLine) }
        case .plain:
            output(message + "\n")
        }
    }

    /// Ends the progress line (terminal) so later output starts on a fresh line.
    public func finish() {
        if style == .terminal && lineIsOpen {
            output("\r" + lastLine + "\u{1B}[K\n")
            lineIsOpen = false
        }
    }

    /// Sequences per second over the recent window; nil until two samples are apart in time.
    public var sequencesPerSecond: Double? {
        guard let first = samples.first, let last = samples.last, last.time > first.time else { return nil }
        return Double(last.sequences - first.sequences) / (last.time - first.time)
    }

    /// Seconds per step over the recent window.
    public var secondsPerStep: Double? {
        guard let first = samples.first, let last = samples.last, last.step > first.step else { return nil }
        return (last.time - first.time) / Double(last.step - first.step)
    }

    /// Seconds until `totalSteps` at the recent pace.
    public var estimatedSecondsRemaining: Double? {
        guard let perStep = secondsPerStep, let last = samples.last else { return nil }
        return perStep * Double(max(totalSteps - last.step, 0))
    }

    private func describe(step: Int, loss: Double?) -> String {
        let percent = totalSteps > 0 ? 100 * Double(step) / Double(totalSteps) : 0
        var parts = ["step \(step)/\(totalSteps) (\(String(format: "%.1f", percent))%)"]
        if let loss { parts.append("loss " + (loss.isFinite ? String(format: "%.4f", loss) : "\(loss)")) }
        if let rate = sequencesPerSecond { parts.append(String(format: "%.2f seq/s", rate)) }
        if let perStep = secondsPerStep { parts.append(String(format: "%.2f s/step", perStep)) }
        if let remaining = estimatedSecondsRemaining { parts.append("ETA " + RunSummary.duration(remaining)) }
        return parts.joined(separator: "  ")
    }

    public static let writeToStandardError: @Sendable (String) -> Void = { text in
        FileHandle.standardError.write(Data(text.utf8))
    }
}
