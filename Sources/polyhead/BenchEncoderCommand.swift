import ArgumentParser
import Dispatch
import Encoder
import Foundation
import Kernels

/// `polyhead bench encoder`: the encoder alone, shaped like shared/bench/torch_mtl_step.py:
/// random ids in [1000, vocab), every sequence `--seq` tokens, a stand-in AdamW step.
/// `polyhead bench mtl` is the full step with heads and Training's optimizer.
struct BenchEncoderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encoder", abstract: "Time the encoder's inference and training passes alone.")

    @Option(help: "Model directory (config.json + model.safetensors).") var model: String = "models/all-MiniLM-L6-v2"
    @Option(help: "Sequences per pass.") var batch: Int = 32
    @Option(help: "Passes per step (2 x 16 mirrors the PyTorch script's two tasks).") var passes: Int = 1
    @Option(help: "Tokens per sequence.") var seq: Int = 128
    @Option(help: "Timed steps.") var steps: Int = 5
    @Option(help: "Untimed warm-up steps.") var warmup: Int = 1
    @Option(help: "infer, train or both.") var mode: String = "both"
    @Flag(help: "Training steps without dropout.") var noDropout = false
    @Flag(help: "Leave out the stand-in AdamW step (clip + update over the whole block).") var noOptimizer = false
    @OptionGroup var threading: BenchThreadingOptions

    func run() throws {
        try threading.apply()
        let policy = threading.policy
        let (encoder, _) = try BertEncoder.load(modelDirectory: URL(fileURLWithPath: model))
        var generator = SplitMix(state: 42)
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
            let moments = FloatBuffer(count: 2 * encoder.layout.totalCount)
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
                    if !noOptimizer { adamWStep(parameters: encoder.parameters, gradients: gradients, moments: moments, step: step + 1) }
                }
                if step >= warmup { times.append(time) }
            }
            result["train_seq_per_s"] = Double(batch * passes) / median(times)
            result["train_step_s"] = times
        }
        let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// A stand-in for the trainer's optimizer so training numbers compare with PyTorch's
    /// (which includes clip_grad_norm_ and AdamW.step): global-norm clip to 1, then AdamW
    /// (lr 2e-5, betas 0.9/0.999, eps 1e-8, weight decay 0.01) over every parameter.
    private func adamWStep(parameters: FloatBuffer, gradients: FloatBuffer, moments: FloatBuffer, step: Int) {
        let count = parameters.count
        let p = parameters.pointer, g = gradients.pointer, m = moments.pointer, v = moments.pointer + count
        var squares: Double = 0
        for index in 0..<count { squares += Double(g[index] * g[index]) }
        let clip = Float(min(1, 1 / (squares.squareRoot() + 1e-6)))
        let rate: Float = 2e-5, beta1: Float = 0.9, beta2: Float = 0.999
        let correction1 = 1 - pow(beta1, Float(step)), correction2 = 1 - pow(beta2, Float(step))
        KernelThreads.parallelRanges(count, minimumChunk: 1 << 16) { range in
            for index in range {
                let gradient = g[index] * clip
                m[index] = beta1 * m[index] + (1 - beta1) * gradient
                v[index] = beta2 * v[index] + (1 - beta2) * gradient * gradient
                let update = (m[index] / correction1) / ((v[index] / correction2).squareRoot() + 1e-8)
                p[index] -= rate * (update + 0.01 * p[index])
            }
        }
    }
}

/// `polyhead bench kernels`: median milliseconds (wall and process CPU) of single kernels on
/// all-MiniLM-L6-v2 shapes, `batch` x `seq` tokens.
struct BenchKernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kernels", abstract: "Time single kernels at MiniLM shapes.")

    @Option(help: "Sequences.") var batch: Int = 32
    @Option(help: "Tokens per sequence.") var seq: Int = 128
    @Option(help: "Timed repetitions (at least 3).") var steps: Int = 5
    @OptionGroup var threading: BenchThreadingOptions

    /// Median milliseconds of single kernels on all-MiniLM-L6-v2 shapes.
    func run() throws {
        try threading.apply()
        let policy = threading.policy
        let n = batch * seq, c = 384, i = 1536, h = 12
        var generator = SplitMix(state: 42)
        func buffer(_ count: Int) -> FloatBuffer {
            let values = FloatBuffer(count: count)
            for index in 0..<count { values.pointer[index] = Float(Int(truncatingIfNeeded: generator.next() % 2001) - 1000) / 1000 }
            return values
        }
        let x = buffer(n * c), w = buffer(i * c), bias = buffer(i), out = buffer(n * i), big = buffer(n * i), qkv = buffer(n * 3 * c)
        let mean = buffer(n), rstd = buffer(n), dW = buffer(i * c)
        let offsets = (0...batch).map { $0 * seq }
        let probabilities = buffer(attentionProbabilityOffsets(sequenceOffsets: offsets, heads: h).last ?? 0)
        let dqkv = buffer(n * 3 * c)
        // Wall time, and process CPU time: on a shared machine the CPU time of a one-thread
        // run is the steadier number.
        func cpuMilliseconds() -> Double {
            var value = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &value)
            return Double(value.tv_sec) * 1e3 + Double(value.tv_nsec) / 1e6
        }
        func time(_ name: String, flops: Double = 0, _ body: () -> Void) -> (String, Any) {
            body()
            var times: [Double] = [], cpuTimes: [Double] = []
            for _ in 0..<max(steps, 3) {
                let start = DispatchTime.now().uptimeNanoseconds, cpuStart = cpuMilliseconds()
                body()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                cpuTimes.append(cpuMilliseconds() - cpuStart)
            }
            let milliseconds = median(times)
            var entry: [String: Double] = ["ms": milliseconds, "cpu_ms": median(cpuTimes)]
            if flops > 0 { entry["gflops"] = flops / milliseconds / 1e6 }
            return (name, entry)
        }
        let results: [(String, Any)] = [
            time("linear_forward_NxC_to_NxI", flops: 2.0 * Double(n * c * i)) {
                linearForward(out.pointer, x.pointer, weight: w.pointer, bias: bias.pointer, rows: n, inChannels: c, outChannels: i) },
            time("linear_forward_NxI_to_NxC", flops: 2.0 * Double(n * c * i)) {
                linearForward(x.pointer, out.pointer, weight: w.pointer, bias: bias.pointer, rows: n, inChannels: i, outChannels: c) },
            time("linear_forward_NxC_to_Nx3C", flops: 2.0 * Double(n * c * 3 * c)) {
                linearForward(qkv.pointer, x.pointer, weight: w.pointer, bias: bias.pointer, rows: n, inChannels: c, outChannels: 3 * c) },
            time("linear_forward_NxC_to_NxC", flops: 2.0 * Double(n * c * c)) {
                linearForward(qkv.pointer, x.pointer, weight: w.pointer, bias: bias.pointer, rows: n, inChannels: c, outChannels: c) },
            time("linear_dinput_NxI_to_NxC", flops: 2.0 * Double(n * c * i)) {
                linearBackward(dinp: x.pointer, dweight: nil, dbias: nil, dout: out.pointer, inp: x.pointer, weight: w.pointer, rows: n, inChannels: c, outChannels: i) },
            time("linear_dweight_IxC", flops: 2.0 * Double(n * c * i)) {
                parallelGemm(dW.pointer, ldc: c, out.pointer, lda: i, transposeA: true, x.pointer, ldb: c, transposeB: false, m: i, n: c, k: n, beta: 1) },
            time("gelu_forward_NxI") { activationForward(big.pointer, out.pointer, count: n * i, activation: .gelu) },
            time("gelu_backward_NxI") { activationBackward(big.pointer, out.pointer, out.pointer, count: n * i, activation: .gelu) },
            time("layernorm_forward_NxC") {
                layerNormForward(qkv.pointer, mean: mean.pointer, rstd: rstd.pointer, x.pointer, weight: w.pointer, bias: bias.pointer, rows: n, channels: c, epsilon: 1e-12) },
            time("layernorm_backward_NxC") {
                layerNormBackward(dinp: qkv.pointer, dweight: dW.pointer, dbias: bias.pointer, dout: x.pointer, inp: x.pointer, weight: w.pointer, mean: mean.pointer, rstd: rstd.pointer, rows: n, channels: c) },
            time("attention_forward", flops: 4.0 * Double(batch * seq * seq * c)) {
                attentionForward(x.pointer, probabilities: probabilities.pointer, dropoutMask: nil, dropoutScale: 1, qkv: qkv.pointer, sequenceOffsets: offsets, channels: c, heads: h) },
            time("attention_backward", flops: 8.0 * Double(batch * seq * seq * c)) {
                attentionBackward(dqkv.pointer, dout: x.pointer, qkv: qkv.pointer, probabilities: probabilities.pointer, dropoutMask: nil, dropoutScale: 1, sequenceOffsets: offsets, channels: c, heads: h) },
        ]
        var object: [String: Any] = ["threads": KernelThreads.workerCount, "policy": policy, "tokens": n]
        for (name, value) in results { object[name] = value }
        print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
    }

}
