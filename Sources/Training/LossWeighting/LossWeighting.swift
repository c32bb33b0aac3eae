/// Combines the per-task losses of one step into the loss that is backpropagated.
///
/// The trainer computes each task's loss, calls `combine`, scales each head's output
/// gradient by `lossGradients[i]`, and adds `parameterGradients` into
/// `parameters.gradients` when the method learns something. Kept small on purpose: a method
/// that needs more (GradNorm's gradient norms, PCGrad's per-task gradients) gets its own
/// protocol rather than widening this one.
public protocol LossWeighting: AnyObject {
    /// The registry name, as written in the config ("static", "uncertainty").
    var name: String { get }
    /// Number of tasks, fixed at creation; `combine` takes one entry per task.
    var taskCount: Int { get }
    /// Values the method learns, registered with the optimizer as the parameter group
    /// "loss_weighting"; nil when it learns nothing.
    var parameters: LossWeightingParameters? { get }

    /// Combines one step's losses; pure (reads `parameters`, writes nothing).
    /// - Parameter losses: one entry per task, nil for a task with no rows in this step; such
    ///   a task contributes nothing and gets zero gradients.
    /// - Returns: the total and its derivatives.
    func combine(losses: [Float?]) -> LossCombination
}

/// The result of `LossWeighting.combine`.
public struct LossCombination: Sendable, Equatable {
    /// The combined loss.
    public var total: Float
    /// d(total)/d(loss_i) per task; 0 for absent tasks.
    public var lossGradients: [Float]
    /// d(total)/d(parameter_j), one entry per learned value (empty when none).
    public var parameterGradients: [Float]

    public init(total: Float, lossGradients: [Float], parameterGradients: [Float]) {
        self.total = total
        self.lossGradients = lossGradients
        self.parameterGradients = parameterGradients
    }
}

/// The values a loss-weighting method learns, as one flat Float buffer with a gradient
/// buffer mirroring it, so the optimizer registers it like any other parameter block
/// (the property names match the optimizer's `ParameterStorage` requirements).
public final class LossWeightingParameters {
    /// Name of the optimizer parameter group these values belong to.
    public static let groupName = "loss_weighting"

    public let parameterCount: Int
    /// (parameterCount) values, updated in place by the optimizer.
    public let parameterValues: UnsafeMutablePointer<Float>
    /// (parameterCount) gradients; `accumulate` adds into them, the optimizer zeroes them.
    public let parameterGradients: UnsafeMutablePointer<Float>
    /// One name per value, for checkpoints: "loss_weighting.log_variance.<task>".
    public let names: [String]

    public init(names: [String], initialValues: [Float]) {
        precondition(names.count == initialValues.count, "one name per value")
        parameterCount = names.count
        self.names = names
        // One element minimum keeps an empty block's pointers valid and freeable.
        parameterValues = .allocate(capacity: max(parameterCount, 1))
        parameterValues.initialize(repeating: 0, count: max(parameterCount, 1))
        parameterGradients = .allocate(capacity: max(parameterCount, 1))
        parameterGradients.initialize(repeating: 0, count: max(parameterCount, 1))
        for (index, value) in initialValues.enumerated() { parameterValues[index] = value }
    }

    deinit {
        parameterValues.deallocate()
        parameterGradients.deallocate()
    }

    public var values: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: parameterValues, count: parameterCount) }
    public var gradients: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: parameterGradients, count: parameterCount) }

    /// Adds a combination's parameter gradients (gradient accumulation adds across micro-batches).
    public func accumulate(_ combination: LossCombination) {
        precondition(combination.parameterGradients.count == parameterCount, "gradient count does not match the parameters")
        for index in 0..<parameterCount { parameterGradients[index] += combination.parameterGradients[index] }
    }
}
