/// total = sum_i w_i * L_i with fixed weights (the tasks' `loss_weight`).
public final class StaticLossWeighting: LossWeighting {
    public let name = "static"
    public let weights: [Float]
    public var taskCount: Int { weights.count }
    public var parameters: LossWeightingParameters? { nil }

    public init(weights: [Float]) {
        self.weights = weights
    }

    public func combine(losses: [Float?]) -> LossCombination {
        precondition(losses.count == weights.count, "combine needs one loss slot per task")
        var total: Double = 0
        var gradients = [Float](repeating: 0, count: weights.count)
        for (index, loss) in losses.enumerated() {
            guard let loss else { continue }
            total += Double(weights[index]) * Double(loss)
            gradients[index] = weights[index]
        }
        return LossCombination(total: Float(total), lossGradients: gradients, parameterGradients: [])
    }
}
