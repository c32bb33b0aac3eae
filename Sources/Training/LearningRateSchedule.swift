import Foundation

/// A learning-rate multiplier per optimizer step, shared by all parameter groups, matching
/// transformers' `get_constant_schedule_with_warmup`, `get_linear_schedule_with_warmup` and
/// `get_cosine_schedule_with_warmup` driven by torch's LambdaLR.
///
/// LambdaLR evaluates the lambda at the number of steps already taken, so optimizer step k
/// (counting from 1) uses `multiplier(afterSteps: k - 1)`; with warmup the first step's
/// learning rate is therefore 0, exactly as in a transformers training run.
public struct LearningRateSchedule: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable {
        /// 1 after warmup.
        case constant
        /// Linear decay from 1 after warmup to 0 at `totalSteps`.
        case linear
        /// Half a cosine (by default) from 1 after warmup to 0 at `totalSteps`.
        case cosine
    }

    public var kind: Kind
    /// Steps of linear ramp from 0 to 1.
    public var warmupSteps: Int
    /// Steps in the whole run; required by linear and cosine.
    public var totalSteps: Int?
    /// Number of cosine waves over the decay; transformers' default 0.5 goes from 1 to 0 once.
    public var cosineCycles: Double

    public init(kind: Kind, warmupSteps: Int = 0, totalSteps: Int? = nil, cosineCycles: Double = 0.5) {
        self.kind = kind
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.cosineCycles = cosineCycles
    }

    public static let constant = LearningRateSchedule(kind: .constant)

    /// Checks the fields against each other.
    /// - Throws: `TrainingError.invalidSchedule` naming the field to change.
    public func validate() throws {
        guard warmupSteps >= 0 else { throw TrainingError.invalidSchedule("warmup steps \(warmupSteps) is negative; use 0 for no warmup") }
        guard cosineCycles > 0, cosineCycles.isFinite else {
            throw TrainingError.invalidSchedule("cosine cycles \(cosineCycles) must be a finite value > 0")
        }
        if kind == .constant { return }
        guard let totalSteps else { throw TrainingError.invalidSchedule("the \(kind.rawValue) schedule needs total steps") }
        guard totalSteps > 0 else { throw TrainingError.invalidSchedule("total steps \(totalSteps) must be at least 1") }
        guard warmupSteps <= totalSteps else {
            throw TrainingError.invalidSchedule("warmup steps \(warmupSteps) exceed total steps \(totalSteps); shorten the warmup")
        }
    }

    /// The multiplier for the optimizer step taken after `step` completed steps.
    public func multiplier(afterSteps step: Int) -> Double {
        if step < warmupSteps { return Double(step) / Double(max(1, warmupSteps)) }
        guard kind != .constant, let totalSteps else { return 1 }
        let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
        switch kind {
        case .constant:
            return 1
        case .linear:
            return max(0, Double(totalSteps - step) / Double(max(1, totalSteps - warmupSteps)))
        case .cosine:
            return max(0, 0.5 * (1 + cos(Double.pi * cosineCycles * 2 * progress)))
        }
    }
}
