// Multi-gate mixture of experts (MMoE, Ma et al. 2018), with the customised gate control
// variant (CGC, the single-level PLE of Tang et al. 2020): one router instance shared by the
// tasks that name it. Loads through the Polyhead C ABI only.
//
// Dimension legend: T tokens, B sequences, H input width, R rows the experts see (B when
// pooling, T per token), K expert width (= H', what the heads receive), E_t experts task t
// mixes (the shared experts, then the task's own).
//
//   X = pool(features) [B, H]   or the token rows themselves [T, H]
//   expert e: h_0 = X, h_l = act(h_{l-1} W_l^T + b_l), l = 1 ... depth; out_e = h_depth [R, K]
//   gate of task t: z = X G_t^T + g_t [R, E_t]; z += noise * N(0, 1) while training
//                   s = softmax(z / temperature)
//   mixture m = sum_e s[:, e] out_e [R, K]
//   outputs [T, K]: m itself per token, or each sequence's row repeated on all its tokens
//   (so a head that pools by cls, mean or max reads back exactly that row).
import CPolyhead
import PluginSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Routers by instance name, for expert_usage and set_temperature.
let liveRouters = InstanceRegistry<MixtureOfExperts>()
let usageText = ReturnedString()

final class MixtureOfExperts: SharedRouter {
    /// One expert: a stack of dense layers, each followed by the activation.
    struct Expert {
        let layers: [Linear]
    }

    /// What forward keeps for backward.
    final class Saved {
        let taskIndex: Int
        let temperature: Float
        let rows: Int
        var pooledInput: [Float] = []        // [B, H] (pooled modes only)
        var argmax: [Int32] = []             // [B, H] (max pooling)
        var preActivations: [[[Float]]] = [] // expert, layer: [R, K]
        var activations: [[[Float]]] = []    // expert, layer: [R, K]
        var gates: [Float] = []              // [R, E_t] softmax weights
        init(taskIndex: Int, temperature: Float, rows: Int) {
            self.taskIndex = taskIndex
            self.temperature = temperature
            self.rows = rows
        }
    }

    let name: String
    let taskNames: [String]
    let inputWidth: Int
    let expertWidth: Int
    let activation: Activation
    /// nil: experts and gates see every token.
    let pooling: Pooling?
    let gateNoise: Float
    let sharedExperts: [Expert]
    /// taskExperts[t]: task t's own experts (CGC); empty for plain MMoE.
    let taskExperts: [[Expert]]
    let gates: [Linear]
    let parameters: ParameterSet
    private let random: OpaquePointer?

    /// Guards the settings and statistics extension functions read and write while a
    /// forward pass may run on another thread.
    private let lock = Lock()
    private var temperatureValue: Float
    private var usageSums: [[Double]]
    private var usageRows: [Int]

    var outputWidth: Int { expertWidth }

    static let configKeys = ["experts", "task_experts", "expert_width", "depth", "activation", "pooling",
                             "gate_temperature", "gate_noise", "initializer_range"]

    init(context: CreateContext) throws {
        let config = context.config
        try config.requireOnly(Self.configKeys)
        name = context.instanceName
        taskNames = context.taskNames
        guard !taskNames.isEmpty else { throw PluginFailure("a router needs at least one task (the host passes the tasks that name it)") }
        inputWidth = context.inputWidth
        let shared = try config.integer("experts", default: 4, range: 0...1024)
        let ownPerTask = try config.integer("task_experts", default: 0, range: 0...1024)
        guard shared + ownPerTask >= 1 else {
            throw PluginFailure("config needs at least one expert: \"experts\" (shared) or \"task_experts\" (per task) above 0")
        }
        expertWidth = try config.integer("expert_width", default: inputWidth, range: 1...65536)
        let depth = try config.integer("depth", default: 1, range: 1...16)
        activation = Activation(rawValue: try config.string("activation", default: "relu", allowed: Activation.allCases.map(\.rawValue)))!
        let poolingName = try config.string("pooling", default: "mean", allowed: Pooling.allCases.map(\.rawValue) + ["token"])
        pooling = Pooling(rawValue: poolingName)
        let temperature = try config.number("gate_temperature", default: 1, range: 1e-3...1e3)
        temperatureValue = Float(temperature)
        gateNoise = Float(try config.number("gate_noise", default: 0, range: 0...100))
        let deviation = try config.number("initializer_range", default: 0.02, range: 0...10)
        random = context.random

        let declared = ParameterSet(), width = expertWidth
        func expert(_ prefix: String) throws -> Expert {
            var layers: [Linear] = []
            for layer in 0..<depth {
                layers.append(try Linear("\(prefix).layers.\(layer)", inputWidth: layer == 0 ? context.inputWidth : width,
                                         outputWidth: width, standardDeviation: deviation, context: context, into: declared))
            }
            return Expert(layers: layers)
        }
        // Parameter names use task indices: task names may hold '-', which parameter names may not.
        sharedExperts = try (0..<shared).map { try expert("experts.\($0)") }
        taskExperts = try context.taskNames.indices.map { task in try (0..<ownPerTask).map { try expert("task_experts.\(task).\($0)") } }
        gates = try context.taskNames.indices.map { task in
            try Linear("gates.\(task)", inputWidth: context.inputWidth, outputWidth: shared + ownPerTask,
                       standardDeviation: deviation, context: context, into: declared)
        }
        parameters = declared
        usageSums = Array(repeating: Array(repeating: 0, count: shared + ownPerTask), count: taskNames.count)
        usageRows = Array(repeating: 0, count: taskNames.count)
        liveRouters.register(self, name: name)
    }

    deinit { liveRouters.unregister(self, name: name) }

    private func experts(of task: Int) -> [Expert] { sharedExperts + taskExperts[task] }

    var temperature: Float { lock.locked { temperatureValue } }

    func setTemperature(_ value: Double) throws {
        guard value.isFinite, value >= 1e-3, value <= 1e3 else {
            throw PluginFailure("the gate temperature must be within 0.001 ... 1000 (got \(value))")
        }
        lock.locked { temperatureValue = Float(value) }
    }

    /// Mean gate weight of each expert per task since the last reset, as JSON text:
    /// {"task": {"rows": N, "usage": [shared experts..., the task's own...]}, ...}.
    func usageReport(reset: Bool) -> String {
        lock.locked {
            var members: [String] = []
            for (task, taskName) in taskNames.enumerated() {
                let rows = usageRows[task]
                let usage = rows == 0 ? "null" : "[" + usageSums[task].map { jsonNumber(Float($0 / Double(rows))) }.joined(separator: ",") + "]"
                members.append("\(jsonQuoted(taskName)):{\"rows\":\(rows),\"usage\":\(usage)}")
                if reset {
                    usageRows[task] = 0
                    usageSums[task] = usageSums[task].map { _ in 0 }
                }
            }
            return "{" + members.joined(separator: ",") + "}"
        }
    }

    func forward(taskIndex: Int, _ input: HeadInput, outputs: Tensor) throws -> AnyObject? {
        guard taskIndex >= 0, taskIndex < taskNames.count else {
            throw PluginFailure("task index \(taskIndex) is not below the \(taskNames.count) tasks sharing this router")
        }
        let rows = pooling == nil ? input.tokens : input.sequences
        let saved = Saved(taskIndex: taskIndex, temperature: temperature, rows: rows)
        if let pooling {
            saved.pooledInput = [Float](repeating: 0, count: rows * inputWidth)
            if pooling == .max { saved.argmax = [Int32](repeating: 0, count: rows * inputWidth) }
            saved.pooledInput.withUnsafeMutableBufferPointer { pooled in
                saved.argmax.withUnsafeMutableBufferPointer { pool(input, pooling, pooled: pooled.baseAddress!, argmax: $0.baseAddress) }
            }
        }
        let experts = experts(of: taskIndex)
        let expertCount = experts.count
        var mixture = [Float](repeating: 0, count: rows * expertWidth)
        try withRows(input, saved) { x in
            // Experts.
            for expert in experts {
                var pre: [[Float]] = [], post: [[Float]] = []
                for (index, layer) in expert.layers.enumerated() {
                    var z = [Float](repeating: 0, count: rows * expertWidth)
                    if index == 0 {
                        z.withUnsafeMutableBufferPointer { layer.forward(x, rows: rows, $0.baseAddress!) }
                    } else {
                        post[index - 1].withUnsafeBufferPointer { h in
                            z.withUnsafeMutableBufferPointer { layer.forward(h.baseAddress!, rows: rows, $0.baseAddress!) }
                        }
                    }
                    pre.append(z)
                    post.append(z.map(activation.apply))
                }
                saved.preActivations.append(pre)
                saved.activations.append(post)
            }
            // The task's gate.
            var logits = [Float](repeating: 0, count: rows * expertCount)
            logits.withUnsafeMutableBufferPointer { gates[taskIndex].forward(x, rows: rows, $0.baseAddress!) }
            if input.training && gateNoise > 0 {
                var noise = [Float](repeating: 0, count: logits.count)
                noise.withUnsafeMutableBufferPointer { hostServices!.pointee.rng_normal(random, $0.baseAddress, Int64($0.count)) }
                for index in logits.indices { logits[index] += gateNoise * noise[index] }
            }
            saved.gates = softmaxRows(logits, rows: rows, width: expertCount, temperature: saved.temperature)
        }
        for (expert, post) in saved.activations.enumerated() {
            let out = post[post.count - 1]
            for row in 0..<rows {
                let weight = saved.gates[row * expertCount + expert]
                let base = row * expertWidth
                for column in 0..<expertWidth { mixture[base + column] += weight * out[base + column] }
            }
        }
        // Outputs: per token, or each sequence's row on all its tokens.
        let destination = outputs.floats
        if pooling == nil {
            destination.update(from: mixture, count: mixture.count)
        } else {
            for sequence in 0..<input.sequences {
                for token in input.start(sequence)..<input.end(sequence) {
                    for column in 0..<expertWidth { destination[token * expertWidth + column] = mixture[sequence * expertWidth + column] }
                }
            }
        }
        lock.locked {
            usageRows[taskIndex] += rows
            for row in 0..<rows {
                for expert in 0..<expertCount { usageSums[taskIndex][expert] += Double(saved.gates[row * expertCount + expert]) }
            }
        }
        return input.training ? saved : nil
    }

    func backward(_ state: AnyObject?, _ input: HeadInput, outputGradient: Tensor, featureGradient: Tensor) throws {
        guard let saved = state as? Saved else { throw PluginFailure("backward needs the state of a training forward pass") }
        let rows = saved.rows, width = expertWidth
        guard rows == (pooling == nil ? input.tokens : input.sequences) else {
            throw PluginFailure("backward got a batch of another shape than its forward pass")
        }
        let experts = experts(of: saved.taskIndex)
        let expertCount = experts.count
        // d(mixture) [R, K]: a sequence's row was copied to each of its tokens, so its
        // gradient is the sum over them.
        var dMixture = [Float](repeating: 0, count: rows * width)
        let dOutputs = outputGradient.floats
        if pooling == nil {
            dMixture.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: dOutputs, count: rows * width) }
        } else {
            for sequence in 0..<input.sequences {
                for token in input.start(sequence)..<input.end(sequence) {
                    for column in 0..<width { dMixture[sequence * width + column] += dOutputs[token * width + column] }
                }
            }
        }
        var dInput = [Float](repeating: 0, count: rows * inputWidth) // d(X) [R, H]
        var dGates = [Float](repeating: 0, count: rows * expertCount) // d(s) [R, E_t]
        try withRows(input, saved) { x in
            for (expertIndex, expert) in experts.enumerated() {
                let pre = saved.preActivations[expertIndex], post = saved.activations[expertIndex]
                let out = post[post.count - 1]
                var dHidden = [Float](repeating: 0, count: rows * width)
                for row in 0..<rows {
                    let weight = saved.gates[row * expertCount + expertIndex]
                    var dot: Float = 0
                    for column in 0..<width {
                        let index = row * width + column
                        dot += dMixture[index] * out[index]
                        dHidden[index] = weight * dMixture[index]
                    }
                    dGates[row * expertCount + expertIndex] = dot
                }
                for layerIndex in stride(from: expert.layers.count - 1, through: 0, by: -1) {
                    let layer = expert.layers[layerIndex]
                    let z = pre[layerIndex]
                    for index in dHidden.indices { dHidden[index] *= activation.derivative(z[index]) }
                    dHidden.withUnsafeBufferPointer { dPre in
                        if layerIndex == 0 {
                            layer.backward(x, rows: rows, dPre.baseAddress!, nil)
                            dInput.withUnsafeMutableBufferPointer { addInputGradient(layer, rows: rows, dPre.baseAddress!, $0.baseAddress!) }
                        } else {
                            post[layerIndex - 1].withUnsafeBufferPointer { layer.backward($0.baseAddress!, rows: rows, dPre.baseAddress!, nil) }
                        }
                    }
                    if layerIndex > 0 {
                        var below = [Float](repeating: 0, count: rows * width)
                        dHidden.withUnsafeBufferPointer { dPre in
                            below.withUnsafeMutableBufferPointer { addInputGradient(layer, rows: rows, dPre.baseAddress!, $0.baseAddress!) }
                        }
                        dHidden = below
                    }
                }
            }
            // Softmax with temperature: dz = s * (ds - sum_j s_j ds_j) / temperature.
            var dLogits = [Float](repeating: 0, count: rows * expertCount)
            for row in 0..<rows {
                var weighted: Float = 0
                for expert in 0..<expertCount { weighted += saved.gates[row * expertCount + expert] * dGates[row * expertCount + expert] }
                for expert in 0..<expertCount {
                    let index = row * expertCount + expert
                    dLogits[index] = saved.gates[index] * (dGates[index] - weighted) / saved.temperature
                }
            }
            let gate = gates[saved.taskIndex]
            dLogits.withUnsafeBufferPointer { dz in
                gate.backward(x, rows: rows, dz.baseAddress!, nil)
                dInput.withUnsafeMutableBufferPointer { addInputGradient(gate, rows: rows, dz.baseAddress!, $0.baseAddress!) }
            }
        }
        let dFeatures = featureGradient.floats
        if let pooling {
            dInput.withUnsafeBufferPointer { dPooled in
                saved.argmax.withUnsafeBufferPointer {
                    unpool(input, pooling, dPooled: dPooled.baseAddress!, argmax: $0.baseAddress, dFeatures: dFeatures)
                }
            }
        } else {
            dFeatures.update(from: dInput, count: dInput.count)
        }
    }

    /// Calls `body` with the rows the experts and gates read: the pooled rows or the tokens.
    private func withRows(_ input: HeadInput, _ saved: Saved, _ body: (UnsafePointer<Float>) throws -> Void) throws {
        if pooling == nil {
            try body(input.features)
        } else {
            try saved.pooledInput.withUnsafeBufferPointer { try body($0.baseAddress!) }
        }
    }
}

/// dx [rows, in] += dy [rows, out] W [out, in].
private func addInputGradient(_ layer: Linear, rows: Int, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>) {
    sgemm(transposeA: false, transposeB: false, m: rows, n: layer.inputWidth, k: layer.outputWidth,
          dy, lda: layer.outputWidth, layer.weight.value, ldb: layer.inputWidth, beta: 1, dx, ldc: layer.inputWidth)
}

/// Row-wise softmax of logits / temperature, [rows, width].
private func softmaxRows(_ logits: [Float], rows: Int, width: Int, temperature: Float) -> [Float] {
    var result = [Float](repeating: 0, count: logits.count)
    for row in 0..<rows {
        let base = row * width
        var maximum = -Float.infinity
        for column in 0..<width { maximum = max(maximum, logits[base + column] / temperature) }
        var sum: Float = 0
        for column in 0..<width {
            let value = expf(logits[base + column] / temperature - maximum)
            result[base + column] = value
            sum += value
        }
        for column in 0..<width { result[base + column] /= sum }
    }
    return result
}

// Extension functions: they name the router instance, since neither the command line nor a
// run config holds an instance pointer.

typealias UsageFunction = @convention(c) (UnsafePointer<CChar>?, Int32, UnsafeMutablePointer<ph_error_sink>?) -> UnsafePointer<CChar>?
typealias TemperatureFunction = @convention(c) (UnsafePointer<CChar>?, Double, UnsafeMutablePointer<ph_error_sink>?) -> Void

let expertUsage: UsageFunction = { name, reset, errors in
    var result: UnsafePointer<CChar>? = nil
    _ = guarded(errors) {
        guard let name else { throw PluginFailure("expert_usage needs the router's instance name") }
        let router = try liveRouters.instance(named: String(cString: name), kind: "polyhead.mmoe")
        result = usageText.keep(router.usageReport(reset: reset != 0))
    }
    return result
}

let setTemperature: TemperatureFunction = { name, temperature, errors in
    _ = guarded(errors) {
        guard let name else { throw PluginFailure("set_temperature needs the router's instance name") }
        try liveRouters.instance(named: String(cString: name), kind: "polyhead.mmoe").setTemperature(temperature)
    }
}

let createMixtureOfExperts: CreateFunction = { args, out, errors in
    createRouter(args, out, errors) { try MixtureOfExperts(context: $0) }
}

nonisolated(unsafe) let pluginTable = makePluginTable(
    id: "polyhead.routers.mmoe", version: "1.0.0", name: "Mixture-of-experts router",
    components: [
        ComponentDefinition(
            kind: .router, id: "polyhead.mmoe", version: "1.0.0", name: "Multi-gate mixture of experts",
            summary: "Experts (small FFNs) shared by several tasks, one softmax gate per task (MMoE); task-specific experts too with task_experts (CGC)",
            exampleConfig: #"{"experts": 4, "expert_width": 64, "depth": 1, "activation": "relu", "pooling": "mean"}"#,
            create: createMixtureOfExperts),
    ],
    extensions: [
        ExtensionDefinition(name: "expert_usage", signature: "s(sie)",
                            summary: "mean gate weight per expert and task since the last reset, as JSON {task: {rows, usage: [shared..., own...]}} (router instance name; reset: 1 to restart the counts); the string stays valid until the call after next",
                            function: unsafeBitCast(expertUsage, to: ph_generic_function.self)),
        ExtensionDefinition(name: "set_temperature", signature: "v(sde)",
                            summary: "sets the gate softmax temperature (router instance name; temperature in 0.001 ... 1000) for the following forward passes",
                            function: unsafeBitCast(setTemperature, to: ph_generic_function.self)),
    ])

@_cdecl("polyhead_plugin_entry")
public func polyheadPluginEntry(_ host: UnsafePointer<ph_host>?, _ out: UnsafeMutablePointer<UnsafePointer<ph_plugin>?>?,
                                _ errors: UnsafeMutablePointer<ph_error_sink>?) -> ph_status {
    answerEntry(host, out, errors) { pluginTable }
}
