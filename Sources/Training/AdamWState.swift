import Foundation
import SafeTensors

/// Optimizer state on disk, for checkpoints and resuming: one safetensors file holding, per
/// trainable parameter, `exp_avg.<name>` and `exp_avg_sq.<name>` (torch's names for m and v)
/// and, in the metadata, the format, its version and the completed step count.
///
/// Moments are keyed by parameter name rather than stored as one flat buffer so that a file
/// written with one registration order still loads after the order changes, and a file that
/// does not belong to these parameters fails with the name at fault.
extension AdamW {
    static let stateFormat = "polyhead-adamw"
    static let stateVersion = "1"

    /// Adds this optimizer's state to `writer` (metadata keys start with `adamw.`).
    /// - Throws: `SafeTensorsError` if a tensor name is already in the writer.
    public func writeState(into writer: inout SafeTensorsWriter) throws {
        writer.metadata["adamw.format"] = AdamW.stateFormat
        writer.metadata["adamw.version"] = AdamW.stateVersion
        writer.metadata["adamw.completed_steps"] = String(completedSteps)
        for segment in segments {
            try writer.add("exp_avg.\(segment.name)", shape: [segment.count],
                           float32Buffer: UnsafeBufferPointer(start: firstMoments + segment.momentOffset, count: segment.count))
            try writer.add("exp_avg_sq.\(segment.name)", shape: [segment.count],
                           float32Buffer: UnsafeBufferPointer(start: secondMoments + segment.momentOffset, count: segment.count))
        }
    }

    /// Replaces the moments and step count with those in `file`. Nothing changes unless the
    /// whole file matches: every trainable parameter present with its size, and no moments
    /// for a parameter that is not trainable now.
    /// - Throws: `TrainingError.optimizerStateMismatch` naming the parameter or field at fault.
    public func readState(from file: SafeTensorsFile) throws {
        let location = file.path.map { " in \($0)" } ?? ""
        guard file.metadata["adamw.format"] == AdamW.stateFormat else {
            throw TrainingError.optimizerStateMismatch("no \(AdamW.stateFormat) state\(location) (metadata adamw.format is \(file.metadata["adamw.format"] ?? "missing"))")
        }
        guard file.metadata["adamw.version"] == AdamW.stateVersion else {
            throw TrainingError.optimizerStateMismatch("state version \(file.metadata["adamw.version"] ?? "missing")\(location) is not \(AdamW.stateVersion)")
        }
        guard let steps = file.metadata["adamw.completed_steps"].flatMap({ Int($0) }), steps >= 0 else {
            throw TrainingError.optimizerStateMismatch("adamw.completed_steps\(location) is missing or not a count")
        }
        var expected = Set<String>()
        for segment in segments {
            for name in ["exp_avg.\(segment.name)", "exp_avg_sq.\(segment.name)"] {
                expected.insert(name)
                guard let info = try? file.info(name) else {
                    throw TrainingError.optimizerStateMismatch("\(name) is missing\(location) but \(segment.name) is trainable")
                }
                let count = info.elementCount
                guard count == segment.count else {
                    throw TrainingError.optimizerStateMismatch("\(name)\(location) has \(count) values but \(segment.name) has \(segment.count)")
                }
            }
        }
        if let extra = file.tensorNames.first(where: { ($0.hasPrefix("exp_avg.") || $0.hasPrefix("exp_avg_sq.")) && !expected.contains($0) }) {
            throw TrainingError.optimizerStateMismatch("\(extra)\(location) belongs to a parameter that is not registered as trainable")
        }
        for segment in segments {
            try file.copyFloats("exp_avg.\(segment.name)", into: UnsafeMutableBufferPointer(start: firstMoments + segment.momentOffset, count: segment.count))
            try file.copyFloats("exp_avg_sq.\(segment.name)", into: UnsafeMutableBufferPointer(start: secondMoments + segment.momentOffset, count: segment.count))
        }
        completedSteps = steps
    }

    /// Writes the state to its own safetensors file (atomically, by the writer).
    public func saveState(to url: URL) throws {
        var writer = SafeTensorsWriter()
        try writeState(into: &writer)
        try writer.write(to: url)
    }

    /// Reads state written by `saveState(to:)`.
    public func loadState(from url: URL) throws {
        try readState(from: SafeTensorsFile(contentsOf: url))
    }
}
