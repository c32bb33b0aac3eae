import ArgumentParser
import Dispatch
import Encoder
import Foundation
import Kernels
import PluginHost
import Training

/// `polyhead bench`: throughput benchmarks that print one JSON object on stdout.
/// scripts/bench/compare.sh runs them side by side with the PyTorch references and
/// docs/performance.md explains the method and the numbers.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time training and inference (benchmarks; JSON on stdout).",
        discussion: """
        mtl      the workload of shared/bench/torch_mtl_step.py: two tasks (4-class classification \
        on [CLS], regression on mean pooling), batch 16 per task, random ids, length 128, AdamW, \
        clip 1.0, fp32, through the plugin heads (the default)
        wordnet  the real trainer on a run config (the WordNet tasks): tokens/s and time per epoch
        encoder  the encoder alone, with a stand-in optimizer
        kernels  single kernels at MiniLM shapes
        scripts/bench/compare.sh runs these next to the PyTorch scripts and prints the ratios.
        """,
        subcommands: [BenchMultiTaskCommand.self, BenchWordNetCommand.self, BenchEncoderCommand.self, BenchKernelsCommand.self],
        defaultSubcommand: BenchMultiTaskCommand.self)
}

/// Options every benchmark shares.
struct BenchThreadingOptions: ParsableArguments {
    @Option(help: "Worker threads (default: POLYHEAD_THREADS, else all cores).") var threads: Int?
    @Option(help: "own-split (OpenBLAS single-threaded, Polyhead splits) or blas-threads.") var policy: String = ThreadingPolicy.ownSplit.rawValue

    func apply() throws {
        guard let threadingPolicy = ThreadingPolicy(rawValue: policy) else {
            throw ValidationError("--policy must be one of \(ThreadingPolicy.allCases.map(\.rawValue))")
        }
        KernelThreads.configure(policy: threadingPolicy, workers: threads)
    }
}

// MARK: - Helpers shared by the benchmarks

enum BenchClock {
    /// Monotonic seconds.
    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// CPU seconds of the whole process (all threads): steadier than wall time on a loaded machine.
    static func cpu() -> Double {
        var value = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &value)
        return Double(value.tv_sec) + Double(value.tv_nsec) / 1e9
    }

    /// Peak resident set size of this process so far, in MiB (getrusage).
    static func peakRSSMiB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : (sorted[(sorted.count - 1) / 2] + sorted[sorted.count / 2]) / 2
}

func printJSON(_ object: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

/// A seeded generator: SystemRandomNumberGenerator makes one getrandom call per value.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A head plugin's host-allocated parameters as the optimizer sees them.
final class BenchHeadStorage: ParameterStorage {
    let block: ParameterBlock
    init(_ block: ParameterBlock) { self.block = block }
    var parameterCount: Int { block.values.count }
    var parameterValues: UnsafeMutablePointer<Float> { block.values.baseAddress! }
    var parameterGradients: UnsafeMutablePointer<Float> { block.gradients.baseAddress! }
}

// MARK: - polyhead bench mtl

/// The workload of shared/bench/torch_mtl_step.py, through the pieces the trainer uses:
/// the encoder, the polyhead.classification and polyhead.regression plugins (loaded from their
/// .so files), Training's AdamW with global-norm clipping.
///
/// One training step: 2 x `batch` sequences of `seq` random ids in [1000, vocab); the
/// classification task's sequences and the regression task's go through one encoder forward
/// as one packed batch (`--separate-passes`: one forward and backward per task, like the
/// PyTorch script); each head reads its rows; the losses add; one backward; clip to 1.0; one
/// AdamW step (lr 2e-5, weight decay 0.01 on every parameter, as torch.optim.AdamW's
/// defaults in the script); dropout as the model config says. Inference: the encoder in
/// eval mode and both heads' forward on the same kind of batch.
struct BenchMultiTaskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mtl", abstract: "The two-task training and inference step of shared/bench/torch_mtl_step.py.")

    @Option(help: "Model directory (config.json + model.safetensors).") var model: String = "models/all-MiniLM-L6-v2"
    @Option(help: "Sequences per task.") var batch: Int = 16
    @Option(help: "Tokens per sequence.") var seq: Int = 128
    @Option(help: "Timed steps.") var steps: Int = 8
    @Option(help: "Untimed warm-up steps.") var warmup: Int = 2
    @Option(help: "train, infer or both.") var mode: String = "both"
    @Option(help: "Directory of the head plugins (default: next to the executable).") var pluginPath: [String] = []
    @Flag(help: "One encoder pass per task, as the PyTorch script does (default: one pass for both).") var separatePasses = false
    @Flag(help: "Training without dropout.") var noDropout = false
    @OptionGroup var threading: BenchThreadingOptions

    func run() throws {
        guard ["train", "infer", "both"].contains(mode) else { throw ValidationError("--mode must be train, infer or both") }
        try threading.apply()
        let (encoder, _) = try BertEncoder.load(modelDirectory: URL(fileURLWithPath: model))
        let registry = PluginRegistry()
        registry.load(searchPath: PluginSearchPath.resolve(commandLine: pluginPath))
        let width = encoder.config.hiddenSize
        let classifier = try HeadInstance(component: registry.component(id: "polyhead.classification"), name: "cls",
                                          configJSON: #"{"labels": ["a", "b", "c", "d"], "pooling": "cls"}"#, inputWidth: width, seed: 1)
        let regressor = try HeadInstance(component: registry.component(id: "polyhead.regression"), name: "reg",
                                         configJSON: #"{"pooling": "mean"}"#, inputWidth: width, seed: 2)
        let heads = [classifier, regressor]
        var generator = SplitMix(state: 42)
        let vocabulary = encoder.config.vocabSize, lowestId = min(1000, vocabulary - 1)

        /// One task's sequences and targets.
        struct TaskBatch { var sequences: [[Int32]]; var targets: HeadTargets }
        func taskBatches() throws -> [TaskBatch] {
            try heads.enumerated().map { index, head in
                let sequences = (0..<batch).map { _ in (0..<seq).map { _ in Int32(Int.random(in: lowestId..<vocabulary, using: &generator)) } }
                let labels = try (0..<batch).map { _ -> HeadTargets in
                    let label = index == 0 ? "\"\(["a", "b", "c", "d"][Int.random(in: 0..<4, using: &generator)])\""
                                           : "\(Float.random(in: 0..<1, using: &generator))"
                    return try head.encodeTarget(label: JSONValue(parsing: label))
                }
                return TaskBatch(sequences: sequences, targets: try HeadTargets.concatenating(labels))
            }
        }
        /// The passes of one step: (packed batch, per task: its sequence range in the pass).
        func passes(_ tasks: [TaskBatch]) throws -> [(PackedBatch, [(task: Int, sequences: Range<Int>)])] {
            if separatePasses {
                return try tasks.enumerated().map { index, task in (try PackedBatch(sequences: task.sequences), [(index, 0..<batch)]) }
            }
            return [(try PackedBatch(sequences: tasks.flatMap(\.sequences)), tasks.indices.map { ($0, ($0 * batch)..<(($0 + 1) * batch)) })]
        }
        /// A task's slice of a pass: its token range and its offsets rebased to 0.
        func slice(_ packed: PackedBatch, _ sequences: Range<Int>) -> (tokens: Range<Int>, offsets: [Int64]) {
            let start = packed.sequenceOffsets[sequences.lowerBound], end = packed.sequenceOffsets[sequences.upperBound]
            return (start..<end, packed.sequenceOffsets[sequences.lowerBound...sequences.upperBound].map { Int64($0 - start) })
        }

        var result: [String: Any] = [
            "bench": "mtl", "batch": batch, "seq": seq, "steps": steps, "warmup": warmup, "threads": KernelThreads.workerCount,
            "policy": threading.policy, "encoder_passes_per_step": separatePasses ? 2 : 1,
        ]
        if mode == "train" || mode == "both" {
            let gradients = FloatBuffer(count: encoder.layout.totalCount)
            let encoderStorage = FlatParameterStorage(wrapping: encoder.parameters, gradients: gradients)
            var ranges = encoder.layout.views.map {
                ParameterRange(name: $0.name, storage: encoderStorage, range: $0.range, appliesWeightDecay: true)
            }
            for head in heads {
                let storage = BenchHeadStorage(head.parameters)
                ranges += head.parameters.parameters.map {
                    ParameterRange(name: "heads.\(head.name).\($0.name)", storage: storage, range: $0.offset..<($0.offset + $0.count),
                                   appliesWeightDecay: true)
                }
            }
            let optimizer = try AdamW(groups: [ParameterGroup(name: "all", learningRate: 2e-5, weightDecay: 0.01, parameters: ranges)])
            let trainable = TrainableParameters.all(encoder.layout)
            let activations = EncoderActivations()
            var hiddenGradient = FloatBuffer(count: 0)
            var wall: [Double] = [], cpu: [Double] = []
            // Per phase: encoder forward, heads (forward, loss, backward), encoder backward,
            // clipping + AdamW + zeroing.
            var phases: [String: [Double]] = ["encoder_forward": [], "heads": [], "encoder_backward": [], "optimizer": []]
            var lastLoss = 0.0
            for step in 0..<(warmup + steps) {
                let tasks = try taskBatches()
                let dropout = noDropout ? DropoutSettings.disabled : DropoutSettings.fromConfig(encoder.config, seed: UInt64(step + 1))
                let wallStart = BenchClock.now(), cpuStart = BenchClock.cpu()
                var total = 0.0
                var spent: [String: Double] = [:]
                var mark = wallStart
                func lap(_ phase: String) {
                    let now = BenchClock.now()
                    spent[phase, default: 0] += now - mark
                    mark = now
                }
                for (packed, parts) in try passes(tasks) {
                    let hidden = try encoder.forward(packed, activations: activations, dropout: dropout)
                    lap("encoder_forward")
                    if hiddenGradient.count < hidden.count { hiddenGradient = FloatBuffer(count: hidden.count) }
                    for (task, sequences) in parts {
                        let (tokens, offsets) = slice(packed, sequences)
                        let head = heads[task]
                        let features = UnsafeBufferPointer(rebasing: hidden[(tokens.lowerBound * width)..<(tokens.upperBound * width)])
                        let (outputs, saved) = try head.forward(features: features, sequenceOffsets: offsets, training: true)
                        let (loss, outputGradient) = try head.loss(outputs: outputs, targets: tasks[task].targets)
                        total += loss
                        try head.backward(saved, features: features, sequenceOffsets: offsets, outputGradient: outputGradient,
                                          featureGradient: UnsafeMutableBufferPointer(start: hiddenGradient.pointer + tokens.lowerBound * width,
                                                                                      count: tokens.count * width))
                    }
                    lap("heads")
                    try encoder.backward(outputGradient: hiddenGradient.pointer, activations: activations, gradients: gradients, trainable: trainable)
                    lap("encoder_backward")
                }
                // As the trainer does it: clip, update and zero in one pass after the norm.
                let norm = optimizer.gradientNorm()
                optimizer.stepAndZeroGradients(learningRateMultiplier: 1, gradientScale: AdamW.clipCoefficient(norm: norm, maxNorm: 1))
                lap("optimizer")
                if step >= warmup {
                    wall.append(BenchClock.now() - wallStart)
                    cpu.append(BenchClock.cpu() - cpuStart)
                    for (phase, seconds) in spent { phases[phase, default: []].append(seconds) }
                }
                lastLoss = total
            }
            result["train_phase_median_ms"] = phases.mapValues { median($0) * 1000 }
            let sequences = Double(heads.count * batch)
            // Like the PyTorch script: all timed sequences over all timed seconds.
            result["train_seq_per_s"] = sequences * Double(steps) / wall.reduce(0, +)
            result["train_seq_per_s_median_step"] = sequences / median(wall)
            result["train_seq_per_cpu_s"] = sequences * Double(steps) / cpu.reduce(0, +)
            result["train_step_s"] = wall
            result["train_last_loss"] = lastLoss
            result["train_peak_rss_mib"] = BenchClock.peakRSSMiB()
        }
        if mode == "infer" || mode == "both" {
            let workspace = InferenceWorkspace()
            var wall: [Double] = [], cpu: [Double] = []
            for step in 0..<(warmup + steps) {
                let tasks = try taskBatches()
                let wallStart = BenchClock.now(), cpuStart = BenchClock.cpu()
                for (packed, parts) in try passes(tasks) {
                    let hidden = try encoder.inferInPlace(packed, workspace: workspace)
                    for (task, sequences) in parts {
                        let (tokens, offsets) = slice(packed, sequences)
                        let features = UnsafeBufferPointer(rebasing: hidden[(tokens.lowerBound * width)..<(tokens.upperBound * width)])
                        _ = try heads[task].forward(features: features, sequenceOffsets: offsets, training: false)
                    }
                }
                if step >= warmup {
                    wall.append(BenchClock.now() - wallStart)
                    cpu.append(BenchClock.cpu() - cpuStart)
                }
            }
            let sequences = Double(heads.count * batch)
            result["infer_seq_per_s"] = sequences * Double(steps) / wall.reduce(0, +)
            result["infer_seq_per_s_median_step"] = sequences / median(wall)
            result["infer_seq_per_cpu_s"] = sequences * Double(steps) / cpu.reduce(0, +)
            result["infer_step_s"] = wall
        }
        result["peak_rss_mib"] = BenchClock.peakRSSMiB()
        try printJSON(result)
    }
}

// MARK: - polyhead bench wordnet

/// The real trainer (`polyhead train`'s MultiTaskTrainer) on a run config for a fixed number
/// of steps, without dev or test evaluation: training seconds as the trainer counts them
/// (sampling, batch assembly, encoder, heads, clipping, AdamW), real tokens of the batches it
/// drew (replayed from the same sampler), and the time of one epoch at that rate.
struct BenchWordNetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wordnet", abstract: "Train a run config (default: the WordNet tasks) for N steps and report tokens/s and time per epoch.")

    @Argument(help: "The run config (YAML).") var config: String = "examples/wordnet/config.yaml"
    @Option(help: "Optimizer steps to time (default: one epoch).") var steps: Int?
    @Option(help: "Write each step's batch (task, ids, type ids) as JSON lines here, for scripts/bench/torch_wordnet_epoch.py.")
    var dumpBatches: String?
    @Flag(help: "Only write --dump-batches; do not train.") var dumpOnly = false
    @OptionGroup var threading: BenchThreadingOptions

    func run() throws {
        try threading.apply()
        var runConfig = try RunConfig.load(file: config)
        // Timing only: no dev or test evaluation.
        for index in runConfig.tasks.indices {
            runConfig.tasks[index].data.dev = nil
            runConfig.tasks[index].data.test = nil
        }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("polyhead-bench-\(getpid())")
        defer { try? FileManager.default.removeItem(at: output) }
        let log: (String) -> Void = { FileHandle.standardError.write(Data("polyhead bench: \($0)\n".utf8)) }
        // One epoch unless --steps says otherwise; the schedule's warmup follows the length
        // (irrelevant to timing).
        runConfig.training.length = steps.map { .steps($0) } ?? .epochs(1)
        runConfig.training.logInterval = 1_000_000
        let settings = runConfig.training
        let trainer = try MultiTaskTrainer(config: runConfig, outputDirectory: output, log: log)
        let tasks = trainer.tasks
        let samplerConfiguration = SamplerConfiguration(
            taskSizes: tasks.map(\.train.examples.count), strategy: settings.sampling,
            oversample: tasks.map(\.data.config.sampling.oversample), caps: tasks.map(\.data.config.sampling.cap), seed: settings.seed)
        var sampler = try TaskSampler(configuration: samplerConfiguration)
        let stepsPerEpoch = sampler.stepsPerEpoch(batchSize: settings.batchSize * settings.gradientAccumulation)
        let timedSteps = trainer.totalSteps

        // Replay the sampler: the same batches the trainer will draw.
        var realTokens = 0, paddedTokens = 0, sequences = 0
        let dump = try dumpBatches.map { path -> FileHandle in
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        }
        if let dump {
            let header: [String: Any] = ["tasks": tasks.map { task -> [String: Any] in
                ["name": task.data.config.name, "type": task.data.config.type.rawValue,
                 "outputs": task.data.outputCount ?? max(task.data.labelNames.count, 1)]
            }, "steps": timedSteps, "steps_per_epoch": stepsPerEpoch]
            dump.write(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]) + Data("\n".utf8))
        }
        for _ in 0..<timedSteps {
            for _ in 0..<settings.gradientAccumulation {
                let sampled = sampler.nextBatch(size: settings.batchSize, mixing: settings.mixing)
                var longest = 0, count = 0
                var rows: [[String: Any]] = []
                for part in sampled.parts {
                    let tokens = tasks[part.task].train.tokens
                    for example in part.examples {
                        let length = tokens.offsets[example + 1] - tokens.offsets[example]
                        realTokens += length
                        longest = max(longest, length)
                        count += 1
                        if dump != nil {
                            let range = tokens.offsets[example]..<tokens.offsets[example + 1]
                            rows.append(["task": part.task, "ids": Array(tokens.ids[range]), "types": Array(tokens.typeIds[range])])
                        }
                    }
                }
                paddedTokens += longest * count
                sequences += count
                if let dump { dump.write(try JSONSerialization.data(withJSONObject: rows) + Data("\n".utf8)) }
            }
        }
        try dump?.close()
        var result: [String: Any] = [
            "bench": "wordnet", "config": config, "steps": timedSteps, "steps_per_epoch": stepsPerEpoch,
            "batch_size": settings.batchSize, "threads": KernelThreads.workerCount, "policy": threading.policy,
            "sequences": sequences, "train_tokens": realTokens, "train_padded_tokens": paddedTokens,
            "tasks": tasks.map(\.data.config.name),
        ]
        if dumpOnly { return try printJSON(result) }

        let cpuStart = BenchClock.cpu()
        let summary = try trainer.run()
        let cpuSeconds = BenchClock.cpu() - cpuStart
        let seconds = summary.timings.trainingSeconds
        result["train_seconds"] = seconds
        result["train_tokens_per_s"] = Double(realTokens) / seconds
        result["train_seq_per_s"] = Double(sequences) / seconds
        result["epoch_seconds"] = seconds * Double(stepsPerEpoch) / Double(timedSteps)
        result["process_cpu_seconds_during_run"] = cpuSeconds
        result["peak_rss_mib"] = BenchClock.peakRSSMiB()
        try printJSON(result)
    }
}
