/// How long to train.
public enum TrainingLength: Sendable, Equatable {
    /// Optimizer steps.
    case steps(Int)
    /// Passes over the sampler's epoch (see `TaskSampler.epochSize`).
    case epochs(Int)
}

/// How the next example's task is chosen.
public enum SamplingStrategy: Sendable, Equatable {
    /// Tasks in config order, one after the other.
    case roundRobin
    /// p(task) proportional to its effective size.
    case proportional
    /// p(task) proportional to size^(1/T): T = 1 is proportional, large T tends to uniform.
    case temperature(Double)
    /// Every task equally likely.
    case uniform

    public var name: String {
        switch self {
        case .roundRobin: return "round_robin"
        case .proportional: return "proportional"
        case .temperature: return "temperature"
        case .uniform: return "uniform"
        }
    }
}

/// What one training batch holds.
public enum BatchMixing: String, Sendable, CaseIterable {
    /// Examples of several tasks in one batch: one encoder pass, each head on its rows.
    case mixed
    /// Every batch comes from one task.
    case perTask = "per_task"
}

/// A loss-weighting method by registry name, with its options.
public struct LossWeightingSettings: Sendable, Equatable {
    /// "static" or "uncertainty" (see `LossWeightingRegistry`).
    public var name: String
    public var options: JSONObject
    public var location: ConfigLocation
}

/// Learning rate and weight decay of one parameter group.
public struct ParameterGroupSettings: Sendable, Equatable {
    /// "encoder", "heads", "routers", "adapters" or "loss_weighting".
    public var name: String
    public var learningRate: Double
    public var weightDecay: Double
}

/// AdamW hyperparameters; the per-group values are already resolved against the defaults.
public struct OptimizerSettings: Sendable, Equatable {
    /// The groups every run has, in this order.
    public static let groupNames = ["encoder", "heads", "routers", "adapters", "loss_weighting"]

    /// Only "adamw" for now.
    public var name: String
    public var learningRate: Double
    public var weightDecay: Double
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    /// One entry per name in `groupNames`.
    public var groups: [ParameterGroupSettings]

    /// The group's settings; every name in `groupNames` is present.
    public func group(named name: String) -> ParameterGroupSettings? {
        groups.first { $0.name == name }
    }
}

/// The learning-rate schedule.
public struct ScheduleSettings: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case constant, linear, cosine
    }

    public enum Warmup: Sendable, Equatable {
        case steps(Int)
        /// A fraction of the run's total optimizer steps.
        case ratio(Double)
    }

    public var kind: Kind
    public var warmup: Warmup

    /// Warmup in optimizer steps for a run of `totalSteps` (a ratio rounds up, as in
    /// transformers' `get_warmup_steps`).
    public func warmupSteps(totalSteps: Int) -> Int {
        switch warmup {
        case .steps(let steps): return steps
        case .ratio(let ratio): return Int((ratio * Double(totalSteps)).rounded(.up))
        }
    }
}

/// Stop when the watched dev metric has not improved for `patience` evaluations.
public struct EarlyStoppingSettings: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable {
        case max, min
    }

    /// "overall" (mean of the tasks' primary metrics) or "task.metric".
    public var metric: String
    /// Evaluations without improvement before stopping; nil disables early stopping.
    public var patience: Int?
    public var mode: Mode
    /// Smallest change that counts as an improvement.
    public var minimumDelta: Double
}

/// The `training` section.
public struct TrainingSettings: Sendable, Equatable {
    public var length: TrainingLength
    /// Examples per optimizer micro-batch, all tasks together.
    public var batchSize: Int
    public var sampling: SamplingStrategy
    public var mixing: BatchMixing
    public var lossWeighting: LossWeightingSettings
    public var optimizer: OptimizerSettings
    public var schedule: ScheduleSettings
    /// Global gradient-norm bound; nil disables clipping.
    public var clipNorm: Double?
    /// Micro-batches whose gradients add up before each optimizer step.
    public var gradientAccumulation: Int
    /// Optimizer steps between dev evaluations; nil evaluates at the end of every epoch.
    public var evalInterval: Int?
    /// Optimizer steps between log lines.
    public var logInterval: Int
    public var earlyStopping: EarlyStoppingSettings
    /// Seeds the sampler, dropout and head initialisation.
    public var seed: UInt64
    /// Skip rows that cannot be read (and report how many) instead of stopping.
    public var skipMalformedRows: Bool
    /// Whether the base encoder's weights stay fixed (no gradients, no optimizer state); nil:
    /// frozen exactly when some task has an adapter (LoRA's usual setting).
    public var freezeEncoder: Bool?
}
