import Foundation

/// What the sampler is built from; saved with its state so a resumed run can check that
/// nothing changed.
public struct SamplerConfiguration: Sendable, Equatable {
    /// Training examples per task, in task order.
    public var taskSizes: [Int]
    public var strategy: SamplingStrategy
    /// Per-task oversampling factor (1 = none).
    public var oversample: [Double]
    /// Per-task cap on the effective size, nil = none.
    public var caps: [Int?]
    public var seed: UInt64

    public init(taskSizes: [Int], strategy: SamplingStrategy, oversample: [Double]? = nil, caps: [Int?]? = nil, seed: UInt64) {
        self.taskSizes = taskSizes
        self.strategy = strategy
        self.oversample = oversample ?? [Double](repeating: 1, count: taskSizes.count)
        self.caps = caps ?? [Int?](repeating: nil, count: taskSizes.count)
        self.seed = seed
    }

    /// The configuration of a run's loaded data (task order as in the config).
    public init(data: MultiTaskData, settings: TrainingSettings) {
        self.init(taskSizes: data.tasks.map(\.train.count), strategy: settings.sampling,
                  oversample: data.tasks.map(\.config.sampling.oversample), caps: data.tasks.map(\.config.sampling.cap), seed: settings.seed)
    }
}

/// A sampler configuration or saved state that cannot be used.
public struct SamplingError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Examples chosen for one training batch.
public struct SampledBatch: Sendable, Equatable {
    /// One entry per task present, tasks ascending; `examples` index the task's training set.
    public var parts: [Part]
    public var exampleCount: Int { parts.reduce(0) { $0 + $1.examples.count } }

    public struct Part: Sendable, Equatable {
        public var task: Int
        public var examples: [Int]
    }
}

/// Chooses tasks and examples for training batches: seeded, and exactly resumable from
/// `state`.
///
/// Effective size of task i: n'_i = min(cap_i, round(n_i * oversample_i)), at least 1.
/// Task probabilities: proportional p_i ∝ n'_i; temperature p_i ∝ n'_i^(1/T); uniform
/// p_i = 1/K; round_robin visits the tasks in order (one example or one batch each), so
/// oversampling and caps change only the epoch length there.
///
/// Within a task, examples come in a shuffled order that is reshuffled each time the task's
/// examples are used up (a "pass"); a task drawn more often than its size simply starts more
/// passes, and a capped task continues where it stopped, so every example is eventually seen.
/// A `perTask` batch larger than its task wraps into the next pass, so it may repeat examples.
///
/// An epoch is sum_i n'_i examples drawn over all tasks: `stepsPerEpoch(batchSize:)`
/// batches. It is the unit of `training.epochs`; with proportional sampling and no
/// oversampling or caps, it visits each task's examples once in expectation.
public struct TaskSampler: Sendable {
    public let configuration: SamplerConfiguration
    /// n'_i per task.
    public let effectiveSizes: [Int]
    /// p_i per task; for round_robin the long-run share, 1/K.
    public let probabilities: [Double]
    private let cumulative: [Double]

    private var random: RandomSource
    /// Per task: the current pass's order and the position in it.
    private var orders: [[Int]]
    private var passes: [Int]
    private var cursors: [Int]
    private var roundRobinNext = 0
    /// Examples drawn since the start of the run.
    public private(set) var drawnExamples = 0

    /// - Throws: `SamplingError` for no tasks, an empty task, or mismatched per-task lists.
    public init(configuration: SamplerConfiguration) throws {
        let count = configuration.taskSizes.count
        guard count > 0 else { throw SamplingError(message: "the sampler needs at least one task") }
        guard configuration.oversample.count == count, configuration.caps.count == count else {
            throw SamplingError(message: "oversample and caps need one entry per task (\(count))")
        }
        for (task, size) in configuration.taskSizes.enumerated() where size <= 0 {
            throw SamplingError(message: "task \(task) has no training examples to sample")
        }
        if case .temperature(let temperature) = configuration.strategy, !(temperature > 0) {
            throw SamplingError(message: "temperature must be > 0, got \(temperature)")
        }
        self.configuration = configuration
        effectiveSizes = (0..<count).map { task in
            let scaled = max(1, Int((Double(configuration.taskSizes[task]) * configuration.oversample[task]).rounded()))
            return min(scaled, configuration.caps[task] ?? scaled)
        }
        let weights: [Double]
        switch configuration.strategy {
        case .proportional: weights = effectiveSizes.map(Double.init)
        case .temperature(let temperature): weights = effectiveSizes.map { pow(Double($0), 1 / temperature) }
        case .uniform, .roundRobin: weights = [Double](repeating: 1, count: count)
        }
        let total = weights.reduce(0, +)
        probabilities = weights.map { $0 / total }
        var running = 0.0
        cumulative = probabilities.map { running += $0; return running }
        random = RandomSource(seed: configuration.seed)
        passes = [Int](repeating: 0, count: count)
        cursors = [Int](repeating: 0, count: count)
        orders = []
        orders = (0..<count).map { order(task: $0, pass: 0) }
    }

    public var taskCount: Int { effectiveSizes.count }

    /// Examples in one epoch: the sum of the effective sizes.
    public var epochSize: Int { effectiveSizes.reduce(0, +) }

    /// Batches in one epoch (the last one may be partly from the next epoch).
    public func stepsPerEpoch(batchSize: Int) -> Int { (epochSize + batchSize - 1) / max(batchSize, 1) }

    /// Epochs completed so far, fractional.
    public var epochsCompleted: Double { Double(drawnExamples) / Double(epochSize) }

    /// The task of the next example (or batch).
    public mutating func nextTask() -> Int {
        if configuration.strategy == .roundRobin {
            let task = roundRobinNext
            roundRobinNext = (roundRobinNext + 1) % taskCount
            return task
        }
        let unit = random.nextUnit()
        // Binary search for the first cumulative probability above the draw.
        var low = 0, high = taskCount - 1
        while low < high {
            let middle = (low + high) / 2
            if unit < cumulative[middle] { high = middle } else { low = middle + 1 }
        }
        return low
    }

    /// The next example of a task, as an index into its training set.
    public mutating func nextExample(task: Int) -> Int {
        if cursors[task] == orders[task].count {
            passes[task] += 1
            orders[task] = order(task: task, pass: passes[task])
            cursors[task] = 0
        }
        let example = orders[task][cursors[task]]
        cursors[task] += 1
        drawnExamples += 1
        return example
    }

    /// The next batch of `size` examples: each from its own sampled task (`mixed`), or all
    /// from one sampled task (`perTask`).
    public mutating func nextBatch(size: Int, mixing: BatchMixing) -> SampledBatch {
        var byTask = [[Int]](repeating: [], count: taskCount)
        switch mixing {
        case .mixed:
            for _ in 0..<size {
                let task = nextTask()
                byTask[task].append(nextExample(task: task))
            }
        case .perTask:
            let task = nextTask()
            for _ in 0..<size { byTask[task].append(nextExample(task: task)) }
        }
        return SampledBatch(parts: byTask.enumerated().compactMap { task, examples in
            examples.isEmpty ? nil : SampledBatch.Part(task: task, examples: examples)
        })
    }

    /// A pass's order depends only on (seed, task, pass), so a restored sampler rebuilds
    /// the current one instead of storing it.
    private func order(task: Int, pass: Int) -> [Int] {
        var mixer = configuration.seed ^ (UInt64(task) &* 0xD6E8_FEB8_6659_FD93) ^ (UInt64(pass) &* 0xA076_1D64_78BD_642F)
        var generator = RandomSource(seed: RandomSource.splitMix(&mixer))
        var indices = Array(0..<configuration.taskSizes[task])
        // Fisher-Yates with an unbiased bounded draw, written out so the order never depends
        // on the standard library's shuffle algorithm.
        if indices.count > 1 {
            for position in stride(from: indices.count - 1, to: 0, by: -1) {
                let other = Int(generator.next(upperBound: UInt64(position + 1)))
                indices.swapAt(position, other)
            }
        }
        return indices
    }

    // MARK: State

    /// Everything needed to continue exactly where the sampler is now.
    public var state: SamplerState {
        SamplerState(configuration: configuration, randomState: random.stateWords, passes: passes, cursors: cursors,
                     roundRobinNext: roundRobinNext, drawnExamples: drawnExamples)
    }

    /// A sampler that continues a saved one draw for draw.
    /// - Parameters:
    ///   - configuration: this run's configuration; it must equal the saved one.
    ///   - state: from `state`, typically through `SamplerState.encoded()` in a checkpoint.
    /// - Throws: `SamplingError` naming what differs from the saved run, or a state that
    ///   does not fit its own configuration.
    public init(configuration: SamplerConfiguration, restoring state: SamplerState) throws {
        if let difference = state.configuration.difference(from: configuration) {
            throw SamplingError(message: "the checkpoint's sampler was built with \(difference); resume with the same data and sampling settings, or start a new run")
        }
        try self.init(configuration: configuration)
        let count = taskCount
        guard state.randomState.count == 4, state.passes.count == count, state.cursors.count == count,
              (0..<count).contains(state.roundRobinNext), state.drawnExamples >= 0,
              state.passes.allSatisfy({ $0 >= 0 }),
              zip(state.cursors, configuration.taskSizes).allSatisfy({ (0...$1).contains($0) }) else {
            throw SamplingError(message: "the saved sampler state is inconsistent with its configuration (corrupt checkpoint?)")
        }
        random = RandomSource(state: state.randomState)
        passes = state.passes
        cursors = state.cursors
        roundRobinNext = state.roundRobinNext
        drawnExamples = state.drawnExamples
        orders = (0..<count).map { order(task: $0, pass: passes[$0]) }
    }
}

extension SamplerConfiguration {
    /// A description of the first field that differs, or nil when equal.
    func difference(from other: SamplerConfiguration) -> String? {
        if taskSizes != other.taskSizes { return "task sizes \(taskSizes), now \(other.taskSizes)" }
        if strategy != other.strategy { return "sampling \(strategy.name) (\(strategy)), now \(other.strategy.name) (\(other.strategy))" }
        if oversample != other.oversample { return "oversample \(oversample), now \(other.oversample)" }
        if caps != other.caps { return "caps \(caps.map { $0.map(String.init) ?? "none" }), now \(other.caps.map { $0.map(String.init) ?? "none" })" }
        if seed != other.seed { return "seed \(seed), now \(other.seed)" }
        return nil
    }
}

/// A sampler's complete state, for checkpoints. `encoded()` writes JSON in which 64-bit
/// words are hex strings (JSON numbers lose precision above 2^53).
public struct SamplerState: Sendable, Equatable, Codable {
    public static let formatVersion = 1

    public var configuration: SamplerConfiguration
    public var randomState: [UInt64]
    public var passes: [Int]
    public var cursors: [Int]
    public var roundRobinNext: Int
    public var drawnExamples: Int

    enum CodingKeys: String, CodingKey {
        case version, taskSizes = "task_sizes", strategy, temperature, oversample, caps, seed
        case randomState = "random_state", passes, cursors, roundRobinNext = "round_robin_next", drawnExamples = "drawn_examples"
    }

    init(configuration: SamplerConfiguration, randomState: [UInt64], passes: [Int], cursors: [Int], roundRobinNext: Int, drawnExamples: Int) {
        self.configuration = configuration
        self.randomState = randomState
        self.passes = passes
        self.cursors = cursors
        self.roundRobinNext = roundRobinNext
        self.drawnExamples = drawnExamples
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Self.formatVersion, forKey: .version)
        try container.encode(configuration.taskSizes, forKey: .taskSizes)
        try container.encode(configuration.strategy.name, forKey: .strategy)
        if case .temperature(let temperature) = configuration.strategy { try container.encode(temperature, forKey: .temperature) }
        try container.encode(configuration.oversample, forKey: .oversample)
        try container.encode(configuration.caps, forKey: .caps)
        try container.encode(String(configuration.seed, radix: 16), forKey: .seed)
        try container.encode(randomState.map { String($0, radix: 16) }, forKey: .randomState)
        try container.encode(passes, forKey: .passes)
        try container.encode(cursors, forKey: .cursors)
        try container.encode(roundRobinNext, forKey: .roundRobinNext)
        try container.encode(drawnExamples, forKey: .drawnExamples)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let version = try container.decode(Int.self, forKey: .version)
        guard version == Self.formatVersion else {
            throw DecodingError.dataCorruptedError(forKey: .version, in: container,
                                                   debugDescription: "sampler state version \(version); this build reads version \(Self.formatVersion)")
        }
        func word(_ text: String, _ key: CodingKeys) throws -> UInt64 {
            guard let value = UInt64(text, radix: 16) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "expected a hexadecimal 64-bit word, got \"\(text)\"")
            }
            return value
        }
        let strategyName = try container.decode(String.self, forKey: .strategy)
        let strategy: SamplingStrategy
        switch strategyName {
        case "round_robin": strategy = .roundRobin
        case "proportional": strategy = .proportional
        case "uniform": strategy = .uniform
        case "temperature": strategy = .temperature(try container.decode(Double.self, forKey: .temperature))
        default:
            throw DecodingError.dataCorruptedError(forKey: .strategy, in: container, debugDescription: "unknown sampling strategy \"\(strategyName)\"")
        }
        configuration = SamplerConfiguration(taskSizes: try container.decode([Int].self, forKey: .taskSizes), strategy: strategy,
                                             oversample: try container.decode([Double].self, forKey: .oversample),
                                             caps: try container.decode([Int?].self, forKey: .caps),
                                             seed: try word(try container.decode(String.self, forKey: .seed), .seed))
        randomState = try container.decode([String].self, forKey: .randomState).map { try word($0, .randomState) }
        passes = try container.decode([Int].self, forKey: .passes)
        cursors = try container.decode([Int].self, forKey: .cursors)
        roundRobinNext = try container.decode(Int.self, forKey: .roundRobinNext)
        drawnExamples = try container.decode(Int.self, forKey: .drawnExamples)
    }

    /// JSON text for a checkpoint.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(self)
    }

    /// Reads `encoded()` output.
    /// - Throws: `SamplingError` saying what is wrong with the data.
    public static func decode(_ data: Data) throws -> SamplerState {
        do {
            return try JSONDecoder().decode(SamplerState.self, from: data)
        } catch {
            throw SamplingError(message: "cannot read the saved sampler state: \(error)")
        }
    }
}
