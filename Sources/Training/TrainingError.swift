/// Everything in the Training module that can go wrong, each case naming the value at fault
/// and what to change.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
    /// A buffer's element count does not match the shape the caller declared.
    case shapeMismatch(what: String, expected: Int, actual: Int)
    /// A class target is neither in `0..<classes` nor the ignore index.
    case targetOutOfRange(row: Int, target: Int32, classes: Int, ignoreIndex: Int32)
    /// A loss option is outside its valid range.
    case invalidLossOption(name: String, value: String, expected: String)
    /// A learning-rate schedule is inconsistent (for example warmup longer than training).
    case invalidSchedule(String)
    /// An optimizer hyperparameter is outside its valid range.
    case invalidOptimizerSetting(name: String, value: Double, expected: String)
    /// A parameter range does not fit inside the storage it points into.
    case parameterOutOfBounds(name: String, range: Range<Int>, storageCount: Int)
    /// Two parameter ranges share a name; names key the optimizer state on disk.
    case duplicateParameterName(String)
    /// Two parameter ranges in one storage overlap, so AdamW would update those values twice.
    case overlappingParameters(first: String, second: String)
    /// Saved optimizer state does not match the parameters registered now.
    case optimizerStateMismatch(String)
    /// A gradient norm came out NaN or infinite.
    case nonFiniteGradient(step: Int, norm: Float)

    public var description: String {
        switch self {
        case let .shapeMismatch(what, expected, actual):
            return "\(what) has \(actual) elements but its shape needs \(expected); check the rows/classes passed with it"
        case let .targetOutOfRange(row, target, classes, ignoreIndex):
            return "target \(target) at row \(row) is outside 0..<\(classes) and is not the ignore index \(ignoreIndex); check the label mapping"
        case let .invalidLossOption(name, value, expected):
            return "loss option \(name) = \(value) is invalid; expected \(expected)"
        case let .invalidSchedule(message):
            return "invalid learning-rate schedule: \(message)"
        case let .invalidOptimizerSetting(name, value, expected):
            return "optimizer setting \(name) = \(value) is invalid; expected \(expected)"
        case let .parameterOutOfBounds(name, range, storageCount):
            return "parameter \(name) covers \(range.lowerBound)..<\(range.upperBound) but its storage holds only \(storageCount) values; register it against the storage that owns it"
        case let .duplicateParameterName(name):
            return "parameter name \(name) is registered twice; give every parameter a unique name (prefix head parameters with the head's name)"
        case let .overlappingParameters(first, second):
            return "parameters \(first) and \(second) overlap in the same storage; each value must belong to exactly one parameter"
        case let .optimizerStateMismatch(message):
            return "optimizer state does not match the registered parameters: \(message); resume with the same model, heads and trainable set it was saved with"
        case let .nonFiniteGradient(step, norm):
            return "gradient norm is \(norm) at step \(step); lower the learning rate or check the inputs for NaN"
        }
    }
}
