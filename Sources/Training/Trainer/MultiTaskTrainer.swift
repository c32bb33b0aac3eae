import Encoder
import Foundation
import Kernels
import PluginHost
import SafeTensors

/// What a checkpoint records besides tensors, so that a resumed run continues exactly.
struct TrainerScalars: Codable {
    var step: Int
    var sampler: SamplerState
    var bestValue: Double?
    var bestStep: Int?
    var evaluationsWithoutImprovement: Int
    var trainedSequences: Int
    var trainingSeconds: Double
}

/// Trains one shared encoder and one plugin head per task from a run config: samples mixed
/// batches, runs the encoder once per batch, gives each head its rows, combines the losses,
/// backpropagates, clips, steps AdamW on the schedule, evaluates, checkpoints.
public final class MultiTaskTrainer {
    public let config: RunConfig
    public let model: MultiTaskModel
    public let tasks: [PreparedTask]
    public let totalSteps: Int
    /// Optimizer steps per epoch; dev evaluations and checkpoints follow it when
    /// `eval_interval` is not set.
    public let stepsPerEpoch: Int
    public let outputDirectory: URL
    public var log: (String) -> Void
    /// Periodic `step-N` checkpoints kept (older ones are removed); `final` and `best` are
    /// never removed.
    public var keptStepCheckpoints = 1

    private var sampler: TaskSampler
    private let samplerConfiguration: SamplerConfiguration
    private let optimizer: AdamW
    private let lossWeighting: any LossWeighting
    private let schedule: LearningRateSchedule
    private let trainable: TrainableParameters
    private let encoderGradients: FloatBuffer
    /// Which tasks share an encoder pass (the same adapters), and each pass's activations.
    private let encoderPasses: EncoderPasses
    private let passActivations: [EncoderActivations]
    private var hiddenGradients = FloatBuffer(count: 0)
    private var scalars: TrainerScalars
    /// polyhead.mmoe.expert_usage, when a router is used and its plugin has it.
    private let expertUsage: ExtensionFunction?

    /// Creates the routers and adapters tasks name. An adapter applies to the rows of the tasks
    /// naming it; tasks with different adapters (or none) go through the encoder in separate
    /// passes. A router serves the tasks naming it, in config order.
    static func addComponents(config: RunConfig, to model: MultiTaskModel) throws {
        /// Creates each declared component some task names, with a seed of its own; a plugin's
        /// refusal is reported at the component's place in the config.
        func add(_ declared: [NamedComponent], kind: String, seedSalt: UInt64, namedBy: (TaskConfig) -> String?,
                 _ create: (NamedComponent, _ optionsJSON: String, _ taskNames: [String], _ seed: UInt64) throws -> Void) throws {
            for (index, component) in declared.enumerated() {
                let taskNames = config.tasks.filter { namedBy($0) == component.name }.map(\.name)
                guard !taskNames.isEmpty else { continue }
                do {
                    try create(component, JSONNode.object(component.settings.options).jsonText, taskNames,
                               config.training.seed &+ seedSalt &+ UInt64(index))
                } catch let error as PluginError {
                    throw component.settings.location.error("\(kind) \(component.name): \(error)")
                }
            }
        }
        try add(config.adapters, kind: "adapter", seedSalt: 0x4144_0000, namedBy: \.adapter) { component, options, tasks, seed in
            try model.addAdapter(name: component.name, plugin: component.settings.plugin, optionsJSON: options, taskNames: tasks, seed: seed)
        }
        try add(config.routers, kind: "router", seedSalt: 0x524F_0000, namedBy: \.router) { component, options, tasks, seed in
            try model.addRouter(name: component.name, plugin: component.settings.plugin, optionsJSON: options, taskNames: tasks, seed: seed)
        }
    }

    /// Loads the encoder, the plugins and the data, tokenises (cached), creates the heads and
    /// lets them see their training targets.
    public init(config: RunConfig, outputDirectory: URL? = nil, log: @escaping (String) -> Void) throws {
        self.config = config
        self.log = log
        self.outputDirectory = URL(fileURLWithPath: outputDirectory?.path ?? config.output)
        let (model, ignored) = try MultiTaskModel.loadEncoder(directory: URL(fileURLWithPath: config.model), pluginPaths: config.pluginPaths)
        if !ignored.isEmpty { log("encoder: ignored \(ignored.map(\.name).joined(separator: ", ")) (not used by the encoder)") }
        for refusal in model.registry.refusals { log("plugins: \(refusal)") }
        for task in config.tasks { _ = try model.headComponent(for: task) }  // before the data is read
        self.model = model
        try Self.addComponents(config: config, to: model)
        let unused = config.adapters.map(\.name).filter { name in !model.adapters.contains { $0.name == name } }
            + config.routers.map(\.name).filter { name in !model.routers.contains { $0.name == name } }
        if !unused.isEmpty { log("not created (no task names them): \(unused.joined(separator: ", "))") }
        for adapter in model.adapters {
            log("adapter \(adapter.name): \(adapter.instance.component.id) for \(adapter.taskNames.joined(separator: ", ")), \(adapter.instance.hookedSites.count) sites, \(adapter.instance.parameters.count) parameters")
        }
        for router in model.routers {
            log("router \(router.name): \(router.instance.component.id) for \(router.instance.taskNames.joined(separator: ", ")), output width \(router.instance.outputWidth)")
        }
        expertUsage = model.routers.isEmpty ? nil : try? model.registry.extensionFunction(named: "polyhead.mmoe.expert_usage")

        var loader = DatasetLoader(skipMalformedRows: config.training.skipMalformedRows)
        let data = try loader.load(config)
        if data.skippedRowCount > 0 { log("data: skipped \(data.skippedRowCount) malformed rows (skip_malformed_rows is on)") }
        let preparer = try SplitPreparer(tokenizer: model.tokenizer, modelDirectory: URL(fileURLWithPath: config.model),
                                         maxLength: config.maxLength, cacheDirectory: config.cacheDirectory)
        var prepared: [PreparedTask] = []
        for (index, taskData) in data.tasks.enumerated() {
            func tokenized(_ split: TaskDataset?) throws -> PreparedSplit? {
                try split.map { try preparer.prepare($0, fields: taskData.config.fields) }
            }
            let train = try preparer.prepare(taskData.train, fields: taskData.config.fields)
            try model.addHead(task: taskData.config, labelNames: taskData.labelNames, outputCount: taskData.outputCount,
                              classWeights: taskData.classWeights, seed: config.training.seed &+ UInt64(index + 1))
            let head = model.heads[index]
            let targets = try train.examples.enumerated().map { example, row in
                let wordIds = head.isTokenLevel ? Array(train.tokens[example].wordIds) : nil
                return try head.instance.encodeTarget(label: JSONValue(parsing: row.label.jsonNode(labelNames: taskData.labelNames).jsonText),
                                                      wordIds: wordIds)
            }
            try head.instance.prepare(targets: HeadTargets.concatenating(targets))
            prepared.append(PreparedTask(data: taskData, train: train, dev: try tokenized(taskData.dev),
                                         test: try tokenized(taskData.test), trainTargets: targets))
            log("task \(taskData.config.name): \(train.examples.count) training rows, \(train.tokens.tokenCount) tokens; head \(head.instance.component.id)")
        }
        tasks = prepared

        let settings = config.training
        samplerConfiguration = SamplerConfiguration(data: data, settings: settings)
        sampler = try TaskSampler(configuration: samplerConfiguration)
        stepsPerEpoch = sampler.stepsPerEpoch(batchSize: settings.batchSize * settings.gradientAccumulation)
        switch settings.length {
        case .steps(let steps): totalSteps = steps
        case .epochs(let epochs): totalSteps = epochs * stepsPerEpoch
        }
        lossWeighting = try LossWeightingRegistry.make(settings.lossWeighting, tasks: config.tasks)
        // With an adapter the base encoder is frozen unless the config says otherwise: no
        // gradients, no optimizer state; the backward still reaches the lowest hooked layer.
        let freezeEncoder = settings.freezeEncoder ?? !model.adapters.isEmpty
        trainable = freezeEncoder ? .none(model.encoder.layout) : .all(model.encoder.layout)
        if freezeEncoder { log("encoder: base weights frozen (training.freeze_encoder)") }
        encoderPasses = model.encoderPasses(tasks: prepared.map(\.data.config.name))
        passActivations = encoderPasses.adapters.map { _ in EncoderActivations() }
        if encoderPasses.adapters.count > 1 { log("encoder: \(encoderPasses.adapters.count) passes per batch (tasks with different adapters)") }
        encoderGradients = FloatBuffer(count: model.encoder.layout.totalCount)
        optimizer = try AdamW(groups: model.parameterGroups(optimizer: settings.optimizer, encoderGradients: encoderGradients,
                                                            trainable: trainable, lossWeighting: lossWeighting.parameters),
                              settings: AdamWSettings(beta1: settings.optimizer.beta1, beta2: settings.optimizer.beta2,
                                                      epsilon: settings.optimizer.epsilon))
        let kind: LearningRateSchedule.Kind = switch settings.schedule.kind {
        case .constant: .constant
        case .linear: .linear
        case .cosine: .cosine
        }
        schedule = LearningRateSchedule(kind: kind, warmupSteps: settings.schedule.warmupSteps(totalSteps: totalSteps), totalSteps: totalSteps)
        try schedule.validate()
        scalars = TrainerScalars(step: 0, sampler: sampler.state, bestValue: nil, bestStep: nil,
                                 evaluationsWithoutImprovement: 0, trainedSequences: 0, trainingSeconds: 0)
    }

    // MARK: - One optimizer step

    /// Separates the heads' dropout streams from the encoder's dropout seeds.
    static let headStreamSalt: UInt64 = 0x6865_6164_5F72_6E67

    /// Forward and backward over one sampled batch; gradients accumulate. Tasks with the same
    /// adapters share one encoder pass; a batch mixing tasks of several passes runs each pass
    /// forward, combines every task's loss, then runs each pass backward.
    /// - Returns: each task's loss (nil for tasks absent from the batch) and the weighted total.
    private func accumulate(_ sampled: SampledBatch, microBatch: Int) throws -> (losses: [Float?], total: Float) {
        let encoderConfig = model.encoder.config
        let counter = UInt64(scalars.step * config.training.gradientAccumulation + microBatch)
        // Heads draw dropout masks from their instance's stream. Its position is a function of
        // (seed, micro-batch, task) rather than of everything drawn before, so a resumed run
        // draws the masks the uninterrupted run drew without saving the streams.
        let streamSeed = dropoutSeed(base: config.training.seed ^ Self.headStreamSalt, counter: counter)
        for part in sampled.parts {
            let head = model.heads[part.task]
            head.instance.random.position = RandomStream(seed: streamSeed, name: head.task).position
        }
        for adapter in model.adapters {
            adapter.instance.random.position = RandomStream(seed: streamSeed, name: "adapters/" + adapter.name).position
        }
        for router in model.routers {
            router.instance.random.position = RandomStream(seed: streamSeed, name: "routers/" + router.name).position
        }
        let width = encoderConfig.hiddenSize

        // Per encoder pass: forward, then the heads' forward and loss.
        var losses = [Float?](repeating: nil, count: tasks.count)
        var passes: [(index: Int, batch: AssembledBatch, pending: [PendingHead])] = []
        for pass in encoderPasses.adapters.indices {
            let parts = sampled.parts.filter { encoderPasses.passOfTask[$0.task] == pass }
            guard !parts.isEmpty else { continue }
            let batch = try AssembledBatch(parts: parts.map { part in
                (part.task, part.examples, tasks[part.task].train.tokens, model.heads[part.task].isTokenLevel)
            })
            // Pass 0 keeps the single-pass seed, so runs with one pass are unchanged.
            let dropout = DropoutSettings(
                seed: dropoutSeed(base: config.training.seed &+ UInt64(pass), counter: counter),
                hiddenProbability: encoderConfig.hiddenDropoutProb, attentionProbability: encoderConfig.attentionProbsDropoutProb)
            let hidden = try model.encoder.forward(batch.packed, activations: passActivations[pass], dropout: dropout,
                                                   adapters: encoderPasses.adapters[pass])
            var pending: [PendingHead] = []
            for part in batch.parts {
                let features = UnsafeBufferPointer(rebasing: hidden[(part.tokenRange.lowerBound * width)..<(part.tokenRange.upperBound * width)])
                let (item, loss) = try headForward(part, features: features)
                losses[part.task] = loss
                pending.append(item)
            }
            passes.append((pass, batch, pending))
        }

        // Combine, then per pass: backward through each head into its slice of d(hidden), then
        // the encoder.
        let combination = lossWeighting.combine(losses: losses)
        lossWeighting.parameters?.accumulate(combination)
        let accumulationScale = 1 / Float(config.training.gradientAccumulation)
        for pass in passes {
            let count = pass.batch.packed.tokenCount * width
            if hiddenGradients.count < count { hiddenGradients = FloatBuffer(count: count) }
            for item in pass.pending {
                let destination = UnsafeMutableBufferPointer(start: hiddenGradients.pointer + item.part.tokenRange.lowerBound * width,
                                                             count: item.part.tokenRange.count * width)
                try headBackward(item, scale: combination.lossGradients[item.part.task] * accumulationScale, into: destination)
            }
            _ = try model.encoder.backward(outputGradient: hiddenGradients.pointer, activations: passActivations[pass.index],
                                           gradients: encoderGradients, trainable: trainable)
        }
        return (losses, combination.total)
    }

    /// A task's head (and router) forward state, kept for its backward.
    private struct PendingHead {
        let part: AssembledBatch.Part
        let saved: SavedState?
        let gradient: [Float]
        let features: UnsafeBufferPointer<Float>
        let routed: (router: RouterInstance, saved: SavedState?, outputs: [Float])?
    }

    /// A task's router (if any) and head forward on its slice of the encoder output, and the
    /// head's loss and d(loss)/d(outputs).
    private func headForward(_ part: AssembledBatch.Part, features: UnsafeBufferPointer<Float>) throws -> (PendingHead, Float) {
        let head = model.heads[part.task]
        // A routed task's head sees the router's features for the task.
        var routed: (router: RouterInstance, saved: SavedState?, outputs: [Float])?
        if let route = model.route(of: head.task) {
            let (outputs, saved) = try route.router.instance.forward(taskIndex: route.index, features: features, sequenceOffsets: part.sequenceOffsets,
                                                                     wordIds: part.wordIds, training: true)
            routed = (route.router.instance, saved, outputs)
        }
        let (outputs, saved) = try routed.map { routed in
            try routed.outputs.withUnsafeBufferPointer {
                try head.instance.forward(features: $0, sequenceOffsets: part.sequenceOffsets, wordIds: part.wordIds, training: true)
            }
        } ?? head.instance.forward(features: features, sequenceOffsets: part.sequenceOffsets, wordIds: part.wordIds, training: true)
        let targets = try HeadTargets.concatenating(part.examples.map { tasks[part.task].trainTargets[$0] })
        let (loss, gradient) = try head.instance.loss(outputs: outputs, targets: targets)
        guard loss.isFinite else { throw TrainerError.nonFiniteLoss(step: scalars.step + 1, task: head.task) }
        return (PendingHead(part: part, saved: saved, gradient: gradient, features: features, routed: routed), Float(loss))
    }

    /// A task's head backward (scaled by its loss weight), then its router's, into `destination`
    /// (the task's slice of d(hidden)).
    private func headBackward(_ item: PendingHead, scale: Float, into destination: UnsafeMutableBufferPointer<Float>) throws {
        let head = model.heads[item.part.task].instance
        let outputGradient = item.gradient.map { $0 * scale }
        guard let routed = item.routed else {
            return try head.backward(item.saved, features: item.features, sequenceOffsets: item.part.sequenceOffsets,
                                     wordIds: item.part.wordIds, outputGradient: outputGradient, featureGradient: destination)
        }
        // Head backward into d(router outputs), then the router's backward into d(features).
        var routedGradient = [Float](repeating: 0, count: routed.outputs.count)
        try routed.outputs.withUnsafeBufferPointer { routedFeatures in
            try routedGradient.withUnsafeMutableBufferPointer { gradient in
                try head.backward(item.saved, features: routedFeatures, sequenceOffsets: item.part.sequenceOffsets,
                                  wordIds: item.part.wordIds, outputGradient: outputGradient, featureGradient: gradient)
            }
        }
        let featureGradient = try routed.router.backward(routed.saved, features: item.features, sequenceOffsets: item.part.sequenceOffsets,
                                                         wordIds: item.part.wordIds, outputGradient: routedGradient)
        featureGradient.withUnsafeBufferPointer { destination.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
    }

    /// One optimizer step over `gradient_accumulation` sampled batches.
    private func step() throws -> (losses: [Float?], total: Float, sequences: Int, gradientNorm: Float, learningRateMultiplier: Double) {
        var sums = [Float?](repeating: nil, count: tasks.count)
        var total: Float = 0
        var sequences = 0
        let accumulation = Float(config.training.gradientAccumulation)
        for microBatch in 0..<config.training.gradientAccumulation {
            let sampled = sampler.nextBatch(size: config.training.batchSize, mixing: config.training.mixing)
            sequences += sampled.exampleCount
            let result = try accumulate(sampled, microBatch: microBatch)
            total += result.total / accumulation
            for (task, loss) in result.losses.enumerated() {
                if let loss { sums[task] = (sums[task] ?? 0) + loss / accumulation }
            }
        }
        let norm = optimizer.gradientNorm()
        guard norm.isFinite else {
            optimizer.zeroGradients()
            throw TrainingError.nonFiniteGradient(step: scalars.step + 1, norm: norm)
        }
        // LambdaLR's convention (as ClassificationTrainer): step k uses the multiplier after k - 1 steps.
        let multiplier = schedule.multiplier(afterSteps: scalars.step)
        // Clipping, the update and zeroing in one pass over the parameters.
        let clip = config.training.clipNorm.map { AdamW.clipCoefficient(norm: norm, maxNorm: Float($0)) } ?? 1
        optimizer.stepAndZeroGradients(learningRateMultiplier: multiplier, gradientScale: clip)
        scalars.step += 1
        return (sums, total, sequences, norm, multiplier)
    }

    // MARK: - The run

    /// The files a run writes into its output directory; `run.yaml` is the config the
    /// command line copies there.
    static let runFiles = [MetricsLog.fileName, RunSummary.jsonFileName, RunSummary.markdownFileName, SVGPlot.fileName, "checkpoints", "run.yaml"]
    /// Where a new run moves an earlier run's files.
    public static let previousRunDirectory = "previous"

    /// Keeps a new run from mixing with an earlier run in the same output directory (its
    /// metrics.jsonl would be appended to; its step checkpoints would outlive, and be resumed
    /// instead of, the new ones): the earlier run's files move to `previous/`, which then
    /// holds that run whole; an older `previous/` is removed. A resumed run continues in the
    /// directory as it is.
    public func prepareOutputDirectory(resuming: Bool) throws {
        let files = FileManager.default
        try files.createDirectory(at: outputDirectory, withIntermediateDirectories: true)
        let earlier = Self.runFiles.filter { files.fileExists(atPath: outputDirectory.appendingPathComponent($0).path) }
        guard !resuming, earlier.contains(where: { $0 != "run.yaml" }) else { return }
        let previous = outputDirectory.appendingPathComponent(Self.previousRunDirectory)
        if files.fileExists(atPath: previous.path) { try files.removeItem(at: previous) }
        try files.createDirectory(at: previous, withIntermediateDirectories: false)
        for name in earlier {
            try files.moveItem(at: outputDirectory.appendingPathComponent(name), to: previous.appendingPathComponent(name))
        }
        log("moved the earlier run's \(earlier.joined(separator: ", ")) to \(previous.path)")
    }

    /// Trains to the end (or early stopping), evaluating and checkpointing on schedule.
    /// - Parameter resume: a checkpoint directory written by an earlier run of the same
    ///   config; without it, an earlier run in the output directory is moved aside first
    ///   (see `prepareOutputDirectory`).
    public func run(resume: URL? = nil) throws -> RunSummary {
        let started = Date()
        let store = CheckpointStore(outputDirectory: outputDirectory)
        try prepareOutputDirectory(resuming: resume != nil)
        if let resume { try restore(from: resume) }
        let metrics = try MetricsLog(url: outputDirectory.appendingPathComponent(MetricsLog.fileName),
                                     resumingAfter: resume == nil ? nil : scalars.step)
        let progress = ProgressReporter(totalSteps: totalSteps, startStep: scalars.step, logEvery: config.training.logInterval)
        let evaluator = try Evaluator(model: model)
        let settings = config.training
        let names = tasks.map(\.data.config.name)
        var window = [Double](repeating: 0, count: tasks.count), windowCounts = [Int](repeating: 0, count: tasks.count)
        var totalWindow = 0.0, totalWindowCount = 0
        let evaluationInterval = settings.evalInterval ?? stepsPerEpoch
        var stopEarly = false
        var evaluationSeconds = 0.0
        var notes = resume.map { ["resumed from \($0.path) at step \(scalars.step)"] } ?? []
        log("training \(totalSteps) steps, batch \(settings.batchSize) x \(settings.gradientAccumulation), \(tasks.count) tasks")

        while scalars.step < totalSteps && !stopEarly {
            let stepStart = MetricsLog.monotonicSeconds()
            let result = try step()
            scalars.trainingSeconds += MetricsLog.monotonicSeconds() - stepStart
            scalars.trainedSequences += result.sequences
            var total = 0.0
            for (task, loss) in result.losses.enumerated() {
                guard let loss else { continue }
                window[task] += Double(loss); windowCounts[task] += 1; total += Double(loss)
            }
            totalWindow += Double(result.total); totalWindowCount += 1
            progress.update(step: scalars.step, loss: total, sequences: result.sequences)

            if scalars.step % settings.logInterval == 0 || scalars.step == totalSteps {
                var taskValues: [String: [String: Double]] = [:]
                for task in tasks.indices where windowCounts[task] > 0 {
                    taskValues[names[task]] = ["loss": window[task] / Double(windowCounts[task])]
                }
                var values = ["learning_rate": settings.optimizer.learningRate * result.learningRateMultiplier,
                              "learning_rate_multiplier": result.learningRateMultiplier,
                              "loss": totalWindow / Double(max(totalWindowCount, 1)),
                              "gradient_norm": Double(result.gradientNorm),
                              "sequences_per_second": Double(scalars.trainedSequences) / max(scalars.trainingSeconds, 1e-9)]
                if let weights = lossWeighting.parameters {
                    for (index, name) in weights.names.enumerated() { values["loss_weighting.\(name)"] = Double(weights.values[index]) }
                }
                for (key, value) in try expertUsageValues() { values[key] = value }
                try metrics.append(step: scalars.step, kind: .train, tasks: taskValues, values: values)
                window = window.map { _ in 0 }; windowCounts = windowCounts.map { _ in 0 }
                totalWindow = 0; totalWindowCount = 0
            }

            let evaluateNow = scalars.step % evaluationInterval == 0
            if evaluateNow || scalars.step == totalSteps, tasks.contains(where: { $0.dev != nil }) {
                let evalStart = MetricsLog.monotonicSeconds()
                let report = try evaluator.evaluate(tasks, split: .dev)
                evaluationSeconds += MetricsLog.monotonicSeconds() - evalStart
                try metrics.append(step: scalars.step, kind: .eval, tasks: report.dictionary, values: ["overall": report.overall])
                progress.log("step \(scalars.step): dev \(report.oneLine)")
                stopEarly = try noteEvaluation(report, store: store)
            }
            if evaluateNow || scalars.step == totalSteps {
                scalars.sampler = sampler.state
                _ = try store.save(try checkpointContents(), as: CheckpointStore.stepName(scalars.step))
                _ = try store.pruneStepCheckpoints(keepingLast: keptStepCheckpoints)
            }
        }
        progress.finish()
        if stopEarly {
            notes.append("stopped early at step \(scalars.step): no improvement in \(settings.earlyStopping.metric) for \(settings.earlyStopping.patience ?? 0) evaluations")
            log(notes[notes.count - 1])
        }
        scalars.sampler = sampler.state
        _ = try store.save(try checkpointContents(), as: "final")

        // Test sets: with early stopping, the best checkpoint's weights; else the final ones.
        let evalStart = MetricsLog.monotonicSeconds()
        var testStep: Int?
        if tasks.contains(where: { $0.test != nil }) {
            let (testModel, step) = try modelForTesting(store: store)
            let report = try Evaluator(model: testModel).evaluate(tasks, split: .test)
            try metrics.append(step: scalars.step, kind: .test, tasks: report.dictionary,
                               values: ["overall": report.overall, "weights_step": Double(step)])
            log("test (\(step == scalars.step ? "final" : "best") weights, step \(step)): \(report.oneLine)")
            notes.append("test split scored with the \(step == scalars.step ? "final" : "best") weights (step \(step))")
            testStep = step
        }
        evaluationSeconds += MetricsLog.monotonicSeconds() - evalStart

        let records = try MetricsLog.read(metrics.url)
        var summary = RunSummary(runName: URL(fileURLWithPath: config.file).deletingPathExtension().lastPathComponent, totalSteps: totalSteps)
        summary.completedSteps = scalars.step
        summary.started = ISO8601DateFormatter().string(from: started)
        summary.finished = ISO8601DateFormatter().string(from: Date())
        summary.bestStep = scalars.bestStep
        summary.bestMetricName = settings.earlyStopping.metric
        summary.bestMetricValue = scalars.bestValue
        // The dev column shows the evaluation of the weights the test column used.
        summary.tasks = RunSummary.taskResults(from: records, devStep: testStep ?? scalars.bestStep).map { result in
            var result = result
            result.taskType = config.task(named: result.task)?.type.rawValue
            return result
        }
        summary.checkpoints = Dictionary(uniqueKeysWithValues: try store.list().map { ($0.name, "checkpoints/\($0.name)") })
        summary.notes = notes
        summary.timings = RunSummary.Timings(wallSeconds: Date().timeIntervalSince(started), trainingSeconds: scalars.trainingSeconds,
                                             evaluationSeconds: evaluationSeconds,
                                             sequencesPerSecond: Double(scalars.trainedSequences) / max(scalars.trainingSeconds, 1e-9))
        try summary.write(to: outputDirectory)
        try SVGPlot.trainingCurves(from: records).write(to: outputDirectory.appendingPathComponent(SVGPlot.fileName))
        return summary
    }

    /// The weights the test split is scored with, and their step: the `best` checkpoint when
    /// early stopping is configured (it is the model early stopping selects), otherwise the
    /// weights in memory (those of `final`). A `best` from another run (a stale directory, or
    /// a resume from another output directory) is never used.
    private func modelForTesting(store: CheckpointStore) throws -> (MultiTaskModel, Int) {
        guard config.training.earlyStopping.patience != nil, let bestStep = scalars.bestStep, bestStep != scalars.step else {
            return (model, scalars.step)
        }
        let directory = store.directory.appendingPathComponent("best")
        guard let best = try? CheckpointStore.load(directory: directory, verification: .sizes), best.step == bestStep else {
            log("test: no checkpoint of the best step \(bestStep) in \(directory.path) (resumed from another output directory?); using the final weights")
            return (model, scalars.step)
        }
        return (try MultiTaskModel.load(checkpoint: directory, pluginPaths: config.pluginPaths), bestStep)
    }

    /// Tracks the best dev score; saves "best" on improvement. Returns whether to stop early.
    private func noteEvaluation(_ report: EvaluationReport, store: CheckpointStore) throws -> Bool {
        let stopping = config.training.earlyStopping
        guard let value = report.value(named: stopping.metric) else { return false }
        let better: Bool = switch (scalars.bestValue, stopping.mode) {
        case (nil, _): true
        case (let best?, .max): value > best + stopping.minimumDelta
        case (let best?, .min): value < best - stopping.minimumDelta
        }
        if better {
            scalars.bestValue = value
            scalars.bestStep = scalars.step
            scalars.evaluationsWithoutImprovement = 0
            scalars.sampler = sampler.state
            _ = try store.save(try checkpointContents(), as: "best")
            return false
        }
        scalars.evaluationsWithoutImprovement += 1
        return stopping.patience.map { scalars.evaluationsWithoutImprovement >= $0 } ?? false
    }

    /// Each router's expert usage since the last log line, reset after reading, as
    /// `expert_usage.<router>.<task>.<expert>` (mean gate weight; shared experts first) and
    /// `expert_usage.<router>.<task>.rows` (rows routed) for metrics.jsonl.
    private func expertUsageValues() throws -> [String: Double] {
        guard let expertUsage else { return [:] }
        var values: [String: Double] = [:]
        for router in model.routers where router.instance.component.id == "polyhead.mmoe" {
            guard case .string(let text?) = try expertUsage.call([.string(router.name), .int32(1)]),
                  case .object(let tasks) = try JSONValue(parsing: text) else { continue }
            for (task, value) in tasks {
                guard case .object(let members) = value else { continue }
                if case .number(let rows)? = members["rows"] { values["expert_usage.\(router.name).\(task).rows"] = rows }
                if case .array(let usage)? = members["usage"] {
                    for (expert, weight) in usage.enumerated() {
                        if case .number(let weight) = weight { values["expert_usage.\(router.name).\(task).\(expert)"] = weight }
                    }
                }
            }
        }
        return values
    }

    // MARK: - Checkpoints

    private func checkpointContents() throws -> CheckpointContents {
        var writer = SafeTensorsWriter()
        try optimizer.writeState(into: &writer)
        if let weights = lossWeighting.parameters {
            try writer.add("loss_weighting.values", shape: [weights.parameterCount], floats: Array(weights.values))
        }
        return CheckpointContents(
            step: scalars.step,
            writeEncoder: model.checkpointWriter(configFrom: URL(fileURLWithPath: config.model)),
            tokenizerDirectory: model.tokenizerDirectory,
            heads: try model.headSnapshots(),
            trainerState: try TrainerStateSnapshot(writer: writer, scalars: scalars))
    }

    /// Puts weights, optimizer moments, loss weights, sampler and counters back as they were
    /// when `directory` was saved.
    private func restore(from directory: URL) throws {
        let loaded = try CheckpointStore.load(directory: directory, verification: .full)
        guard let state = loaded.trainerState else {
            throw TrainerError.resume("\(directory.path) has no trainer state (it is an exported model, not a training checkpoint)")
        }
        let weights = try SafeTensorsFile(contentsOf: loaded.encoderDirectory.appendingPathComponent("model.safetensors"))
        _ = try model.encoder.loadWeights(from: weights)
        for head in model.heads {
            let saved = try loaded.head(head.task)
            for parameter in head.instance.parameters.parameters {
                try saved.weights.copyFloats(parameter.name, into: head.instance.parameters.values(of: parameter))
            }
        }
        try model.restoreComponentWeights(from: loaded.directory)
        try optimizer.readState(from: state.tensors)
        if let weightsParameters = lossWeighting.parameters {
            try state.tensors.copyFloats("loss_weighting.values", into: weightsParameters.values)
        }
        scalars = try state.scalars(as: TrainerScalars.self)
        sampler = try TaskSampler(configuration: samplerConfiguration, restoring: scalars.sampler)
        log("resumed from \(directory.path) at step \(scalars.step)")
    }
}

extension EvaluationReport {
    /// task -> metric -> value, for metrics.jsonl.
    var dictionary: [String: [String: Double]] {
        Dictionary(uniqueKeysWithValues: tasks.map { scores in
            (scores.task, Dictionary(uniqueKeysWithValues: scores.values.map { ($0.metric.rawValue, $0.value) } + scores.custom))
        })
    }

    /// "supersense macro_f1 0.512 · depth spearman 0.61 · overall 0.56"
    var oneLine: String {
        (tasks.map { "\($0.task) \($0.primaryMetric.rawValue) \(String(format: "%.3f", $0.primaryValue))" }
            + ["overall \(String(format: "%.3f", overall))"]).joined(separator: " · ")
    }
}
