import ArgumentParser
import Dispatch
import Encoder
import Foundation
import Kernels

/// A hidden benchmark of the encoder alone, shaped like shared/bench/torch_mtl_step.py:
/// random ids in [1000, vocab), every sequence `--seq` tokens. Run it from a release build
/// next to the PyTorch script (docs/performance.md has the commands).
struct BenchEncoderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-encoder", abstract: "Time the encoder's inference and training passes (benchmark).", shouldDisplay: false)

    @Option(help: "Model directory (config.json + model.safetensors).") var model: String = "models/all-MiniLM-L6-v2"
    @Option(help: "Sequences per pass.") var batch: Int = 32
    @Option(help: "Passes per step (2 x 16 mirrors the PyTorch script's two tasks).") var passes: Int = 1
    @Option(help: "Tokens per sequence.") var seq: Int = 128
    @Option(help: "Timed steps.") var steps: Int = 5
    @Option(help: "Untimed warm-up steps.") var warmup: Int = 1
    @Option(help: "infer, train or both.") var mode: String = "both"
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Option(help: "own-split or blas-threads.") var policy: String = ThreadingPolicy.ownSplit.rawValue
    @Flag(help: "Training steps without dropout.") var noDropout = false

    func run() throws {
        guard let threadingPolicy = ThreadingPolicy(rawValue: policy) else {
            throw ValidationError("--policy must be one of \(ThreadingPolicy.allCases.map(\.rawValue))")
        }
        KernelThreads.configure(policy: threadingPolicy, workers: threads)
        let (encoder, _) = try BertEncoder.load(modelDirectory: URL(fileURLWithPath: model))
        var generator = SystemRandomNumberGenerator()
        let vocabulary = encoder.config.vocabSize
        func randomBatch() throws -> PackedBatch {
            try PackedBatch(sequences: (0..<batch).map { _ in (0..<seq).map { _ in Int32(Int.random(in: 1000..<vocabulary, using: &generator)) } })
        }
        func seconds(_ body: () throws -> Void) rethrows -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        var result: [String: Any] = ["batch": batch, "passes": passes, "seq": seq, "threads": KernelThreads.workerCount, "policy": policy]
        if mode == "infer" || mode == "both" {
            var times: [Double] = []
            let workspace = InferenceWorkspace()
            for step in 0..<(warmup + steps) {
                let batches = try (0..<passes).map { _ in try randomBatch() }
                let time = try seconds { for pass in batches { _ = try encoder.infer(pass, workspace: workspace) } }
                if step >= warmup { times.append(time) }
            }
            result["infer_seq_per_s"] = Double(batch * passes) / median(times)
            result["infer_step_s"] = times
        }
        if mode == "train" || mode == "both" {
            let activations = EncoderActivations()
            let gradients = FloatBuffer(count: encoder.layout.totalCount)
            let trainable = TrainableParameters.all(encoder.layout)
            let upstream = (0..<(batch * seq * encoder.config.hiddenSize)).map { _ in Float.random(in: -1e-3...1e-3, using: &generator) }
            var times: [Double] = []
            for step in 0..<(warmup + steps) {
                let batches = try (0..<passes).map { _ in try randomBatch() }
                let dropout = noDropout ? DropoutSettings.disabled : DropoutSettings.fromConfig(encoder.config, seed: UInt64(step))
                let time = try seconds {
                    gradients.zero()
                    for pass in batches {
                        try encoder.forward(pass, activations: activations, dropout: dropout)
                        try encoder.backward(outputGradient: upstream, activations: activations, gradients: gradients, trainable: trainable)
                    }
                }
                if step >= warmup { times.append(time) }
            }
            result["train_seq_per_s"] = Double(batch * passes) / median(times)
            result["train_step_s"] = times
        }
        let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    private func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? .nan : (sorted[(sorted.count - 1) / 2] + sorted[sorted.count / 2]) / 2
    }
}
