import Foundation

/// Homoscedastic uncertainty weighting (Kendall, Gal and Cipolla, 2018), in the common form
/// total = sum_i exp(-s_i) * L_i + s_i, with one learned log-variance s_i per task.
///
/// A noisy task (large loss) drives its s_i up and so its weight exp(-s_i) down; the + s_i
/// term stops every weight from collapsing to zero. The paper's regression form has factors
/// 1/2; they only rescale s and the learning rate, so one form serves every task type.
///
/// Gradients: d(total)/d(L_i) = exp(-s_i); d(total)/d(s_i) = 1 - exp(-s_i) * L_i. A task absent
/// from a step leaves its s_i untouched (zero gradient).
public final class UncertaintyLossWeighting: LossWeighting {
    public let name = "uncertainty"
    public let taskCount: Int
    private let storage: LossWeightingParameters
    public var parameters: LossWeightingParameters? { storage }

    /// - Parameters:
    ///   - taskNames: one per task, in task order; they name the parameters in checkpoints.
    ///   - initialLogVariance: the starting s_i (0 = weight 1 for every task).
    public init(taskNames: [String], initialLogVariance: Float = 0) {
        taskCount = taskNames.count
        storage = LossWeightingParameters(names: taskNames.map { "\(LossWeightingParameters.groupName).log_variance.\($0)" },
                                          initialValues: [Float](repeating: initialLogVariance, count: taskNames.count))
    }

    /// The current weights exp(-s_i).
    public var weights: [Float] { (0..<taskCount).map { Float(exp(-Double(storage.parameterValues[$0]))) } }

    public func combine(losses: [Float?]) -> LossCombination {
        precondition(losses.count == taskCount, "combine needs one loss slot per task")
        var total: Double = 0
        var lossGradients = [Float](repeating: 0, count: taskCount)
        var parameterGradients = [Float](repeating: 0, count: taskCount)
        for (index, loss) in losses.enumerated() {
            guard let loss else { continue }
            let logVariance = Double(storage.parameterValues[index])
            let weight = exp(-logVariance)
            total += weight * Double(loss) + logVariance
            lossGradients[index] = Float(weight)
            parameterGradients[index] = Float(1 - weight * Double(loss))
        }
        return LossCombination(total: Float(total), lossGradients: lossGradients, parameterGradients: parameterGradients)
    }
}
