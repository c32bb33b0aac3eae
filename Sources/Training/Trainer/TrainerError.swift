/// Failures of a multi-task run that are not the fault of one module: what the run config,
/// the data and the plugins say does not fit together.
public enum TrainerError: Error, CustomStringConvertible, Equatable {
    case missingFile(String, String)
    case headMismatch(task: String, message: String)
    case prediction(task: String, message: String)
    case resume(String)
    case nonFiniteLoss(step: Int, task: String)
    case evaluation(String)

    public var description: String {
        switch self {
        case .missingFile(let path, let what):
            return "\(path): missing (\(what)); check the path, or run scripts/setup for the default model"
        case .headMismatch(let task, let message):
            return "task \(task): \(message)"
        case .prediction(let task, let message):
            return "task \(task): cannot read the head's prediction: \(message)"
        case .resume(let message):
            return "cannot resume: \(message)"
        case .nonFiniteLoss(let step, let task):
            return "step \(step): task \(task) produced a non-finite loss; lower the learning rate or check its labels"
        case .evaluation(let message):
            return "cannot evaluate: \(message)"
        }
    }
}
