import Foundation
import XCTest
@testable import PluginHost

/// The MMoE router (Plugins/MMoERouter) through the host and its real .so: forward and
/// backward against PyTorch (scripts/reference/mmoe_fixtures.py), finite differences with gate
/// noise on, sharing between tasks, the expert_usage and set_temperature extension
/// functions, and refusals.
final class MMoETests: XCTestCase {
    static let registry: PluginRegistry = {
        let registry = PluginRegistry()
        do {
            try registry.load(file: Repository.builtPlugin("MMoERouter"))
        } catch {
            XCTFail("loading libMMoERouter.so failed: \(error)")
        }
        return registry
    }()

    static let fixtures = Repository.root.appendingPathComponent("Tests/Fixtures/mmoe")
    static let width = 6
    static let offsets: [Int64] = [0, 3, 7, 8, 12] // includes a one-token sequence

    private func router(_ config: String, tasks: [String], name: String, width: Int = width, seed: UInt64 = 0) throws -> RouterInstance {
        try RouterInstance(component: Self.registry.component(id: "polyhead.mmoe"), name: name, configJSON: config,
                           inputWidth: width, taskNames: tasks, seed: seed)
    }

    private func randomize(_ router: RouterInstance, _ random: inout TestRandom, scale: Float = 0.5) {
        for parameter in router.parameters.parameters {
            let values = router.parameters.values(of: parameter)
            for index in values.indices { values[index] = random.normal() * scale }
        }
    }

    // MARK: PyTorch reference

    struct Fixture: Decodable {
        struct Expected: Decodable {
            let output_width: Int
            let outputs: [Double]
            let d_features: [Double]
            let gradients: [String: [Double]]
        }
        let config: JSONValue
        let tasks: [String]
        let task_index: Int
        let hidden_size: Int
        let features: [Float]
        let sequence_offsets: [Int64]
        let parameters: [String: [Float]]
        let output_gradient: [Float]
        let expected: Expected
    }

    private func checkReference(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("\(name).json")))
        let router = try router(fixture.config.text, tasks: fixture.tasks, name: "reference-\(name)", width: fixture.hidden_size)
        XCTAssertEqual(router.outputWidth, fixture.expected.output_width, file: file, line: line)
        XCTAssertEqual(Set(router.parameters.parameters.map(\.name)), Set(fixture.parameters.keys), "\(name): parameter names", file: file, line: line)
        for parameter in router.parameters.parameters {
            let values = try XCTUnwrap(fixture.parameters[parameter.name])
            XCTAssertEqual(values.count, parameter.count, "\(name): \(parameter.name) size", file: file, line: line)
            _ = router.parameters.values(of: parameter).update(fromContentsOf: values)
        }
        let (outputs, featureGradient) = try fixture.features.withUnsafeBufferPointer { features in
            let (outputs, saved) = try router.forward(taskIndex: fixture.task_index, features: features,
                                                      sequenceOffsets: fixture.sequence_offsets, training: true)
            let gradient = try router.backward(saved, features: features, sequenceOffsets: fixture.sequence_offsets,
                                               outputGradient: fixture.output_gradient)
            return (outputs, gradient)
        }
        let differences: [(String, Double)] = [
            ("outputs", maxDifference(outputs, fixture.expected.outputs)),
            ("d_features", maxDifference(featureGradient, fixture.expected.d_features)),
        ] + router.parameters.parameters.map { parameter in
            ("grad \(parameter.name)", maxDifference(Array(router.parameters.gradients(of: parameter)), fixture.expected.gradients[parameter.name] ?? []))
        }
        print("\(name): " + differences.map { "\($0.0) \(String(format: "%.1e", $0.1))" }.joined(separator: ", "))
        for (what, difference) in differences {
            XCTAssertLessThanOrEqual(difference, 1e-5, "\(name): \(what)", file: file, line: line)
        }
    }

    func testReferenceMeanPoolingGELUDepthTwo() throws { try checkReference("mmoe-mean-gelu-depth2") }
    func testReferencePerTokenTanh() throws { try checkReference("mmoe-token-tanh") }
    func testReferenceCGCMaxPoolingReLU() throws { try checkReference("cgc-max-relu") }
    func testReferenceCLSReLUDepthThree() throws { try checkReference("mmoe-cls-relu-depth3") }

    // MARK: Finite differences through the .so

    /// loss = sum(G * outputs) + 0.5 sum(outputs^2) with a fixed G, so d(outputs) = G + outputs.
    private func checkGradients(_ config: String, tasks: [String], task: Int, seed: UInt64, separated: Bool = false,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let router = try router(config, tasks: tasks, name: "fd-\(seed)", seed: seed)
        var random = TestRandom(seed: seed)
        randomize(router, &random)
        let tokens = Int(Self.offsets.last!)
        var features = random.normals(tokens * Self.width)
        if separated {
            // Gaps of 0.37 within a sequence's column: a perturbation never changes max pooling's pick.
            for (start, end) in zip(Self.offsets, Self.offsets.dropFirst()) {
                for column in 0..<Self.width {
                    var ranks = Array(0..<Int(end - start))
                    for index in ranks.indices.reversed() { ranks.swapAt(index, Int(random.next() % UInt64(index + 1))) }
                    for (offset, rank) in ranks.enumerated() { features[(Int(start) + offset) * Self.width + column] = Float(rank) * 0.37 - 0.8 }
                }
            }
        }
        let projection = random.normals(tokens * router.outputWidth)
        let position = router.core.random.position

        func loss() throws -> Double {
            router.core.random.position = position
            let outputs = try features.withUnsafeBufferPointer {
                try router.forward(taskIndex: task, features: $0, sequenceOffsets: Self.offsets, training: true).outputs
            }
            return zip(outputs, projection).reduce(0.0) { $0 + Double($1.1) * Double($1.0) + 0.5 * Double($1.0) * Double($1.0) }
        }

        router.parameters.zeroGradients()
        router.core.random.position = position
        let featureGradient = try features.withUnsafeBufferPointer { buffer in
            let (outputs, saved) = try router.forward(taskIndex: task, features: buffer, sequenceOffsets: Self.offsets, training: true)
            return try router.backward(saved, features: buffer, sequenceOffsets: Self.offsets, outputGradient: zip(outputs, projection).map { $0 + $1 })
        }
        let parameterGradients = Array(router.parameters.gradients)

        let epsilon: Float = 1e-2
        // The loss sums ~50 float32 outputs, so a central difference resolves a gradient only
        // to a few 1e-5: the error floor scales with the largest gradient.
        let largest = (featureGradient + parameterGradients).map { abs(Double($0)) }.max() ?? 0
        let floor = 1e-3 + 2e-3 * largest
        var worst = (error: 0.0, what: "")
        func compare(_ numeric: Double, _ exact: Double, _ what: String) {
            let error = abs(numeric - exact) / (floor + abs(exact))
            if error > worst.error { worst = (error, "\(what) numeric \(numeric) exact \(exact)") }
        }
        for index in features.indices {
            let original = features[index]
            features[index] = original + epsilon
            let plus = try loss()
            features[index] = original - epsilon
            let minus = try loss()
            features[index] = original
            compare((plus - minus) / Double(2 * epsilon), Double(featureGradient[index]), "d_features[\(index)]")
        }
        var touched = 0
        for parameter in router.parameters.parameters {
            let values = router.parameters.values(of: parameter)
            for index in values.indices {
                let original = values[index]
                values[index] = original + epsilon
                let plus = try loss()
                values[index] = original - epsilon
                let minus = try loss()
                values[index] = original
                let exact = Double(parameterGradients[parameter.offset + index])
                if exact != 0 { touched += 1 }
                compare((plus - minus) / Double(2 * epsilon), exact, "\(parameter.name)[\(index)]")
            }
        }
        print("mmoe \(config) task \(task): worst relative error \(String(format: "%.2e", worst.error)) at \(worst.what)")
        XCTAssertGreaterThan(featureGradient.map { abs($0) }.max() ?? 0, 1e-3, "the check is vacuous if the gradient is zero", file: file, line: line)
        XCTAssertGreaterThan(touched, 0, file: file, line: line)
        XCTAssertLessThan(worst.error, 2e-2, "finite differences disagree at \(worst.what)", file: file, line: line)
    }

    func testGradientsMeanPoolingGELUWithNoiseAndTemperature() throws {
        try checkGradients(#"{"experts": 3, "expert_width": 4, "depth": 2, "activation": "gelu", "pooling": "mean", "gate_temperature": 0.6, "gate_noise": 0.5}"#,
                           tasks: ["topics", "depth"], task: 1, seed: 41)
    }

    func testGradientsPerTokenTanhWithNoise() throws {
        try checkGradients(#"{"experts": 2, "expert_width": 3, "activation": "tanh", "pooling": "token", "gate_noise": 1.0}"#,
                           tasks: ["tags"], task: 0, seed: 42)
    }

    func testGradientsCGCMaxPooling() throws {
        try checkGradients(#"{"experts": 2, "task_experts": 1, "expert_width": 3, "activation": "tanh", "pooling": "max", "gate_temperature": 2}"#,
                           tasks: ["a", "b"], task: 0, seed: 43, separated: true)
    }

    func testGradientsCLSGELUDepthThree() throws {
        try checkGradients(#"{"experts": 2, "expert_width": 3, "depth": 3, "activation": "gelu", "pooling": "cls"}"#,
                           tasks: ["a", "b"], task: 1, seed: 44)
    }

    // MARK: Sharing, noise, extension functions

    func testTasksShareExpertsButNotGates() throws {
        let router = try router(#"{"experts": 2, "task_experts": 1, "expert_width": 4}"#, tasks: ["first", "second"], name: "sharing")
        XCTAssertEqual(router.outputWidth, 4)
        XCTAssertEqual(router.parameters.info(named: "gates.0.weight")?.shape, [3, Self.width], "2 shared + 1 own expert")
        var random = TestRandom(seed: 7)
        randomize(router, &random)
        let features = random.normals(12 * Self.width)
        let (outputs, saved) = try features.withUnsafeBufferPointer {
            try router.forward(taskIndex: 0, features: $0, sequenceOffsets: Self.offsets, training: true)
        }
        // A pooled router repeats each sequence's row on all its tokens.
        XCTAssertEqual(Array(outputs[0..<4]), Array(outputs[4..<8]))
        XCTAssertEqual(Array(outputs[0..<4]), Array(outputs[8..<12]))
        XCTAssertNotEqual(Array(outputs[0..<4]), Array(outputs[12..<16]))
        _ = try features.withUnsafeBufferPointer {
            try router.backward(saved, features: $0, sequenceOffsets: Self.offsets, outputGradient: [Float](repeating: 1, count: outputs.count))
        }
        func gradientSize(_ name: String) -> Float {
            router.parameters.gradients(of: router.parameters.info(named: name)!).map(abs).max() ?? 0
        }
        XCTAssertGreaterThan(gradientSize("experts.0.layers.0.weight"), 0)
        XCTAssertGreaterThan(gradientSize("task_experts.0.0.layers.0.weight"), 0)
        XCTAssertGreaterThan(gradientSize("gates.0.weight"), 0)
        XCTAssertEqual(gradientSize("gates.1.weight"), 0, "task 0's backward leaves task 1's gate alone")
        XCTAssertEqual(gradientSize("task_experts.1.0.layers.0.weight"), 0, "and task 1's own expert")
        // The other task mixes differently from the same shared experts.
        let other = try features.withUnsafeBufferPointer {
            try router.forward(taskIndex: 1, features: $0, sequenceOffsets: Self.offsets, training: false).outputs
        }
        XCTAssertNotEqual(other, outputs)
    }

    func testGateNoiseOnlyWhileTrainingAndFromTheHostStream() throws {
        let router = try router(#"{"experts": 3, "expert_width": 4, "gate_noise": 1.0}"#, tasks: ["only"], name: "noise")
        var random = TestRandom(seed: 8)
        randomize(router, &random)
        let features = random.normals(12 * Self.width)
        func run(training: Bool) throws -> [Float] {
            try features.withUnsafeBufferPointer { try router.forward(taskIndex: 0, features: $0, sequenceOffsets: Self.offsets, training: training).outputs }
        }
        let evaluation = try run(training: false)
        XCTAssertEqual(try run(training: false), evaluation, "no noise at evaluation")
        let position = router.core.random.position
        let noisy = try run(training: true)
        XCTAssertNotEqual(noisy, evaluation, "noise while training")
        XCTAssertNotEqual(try run(training: true), noisy, "the stream moved on")
        router.core.random.position = position
        XCTAssertEqual(try run(training: true), noisy, "the same stream position, the same noise")
    }

    func testExpertUsageAndTemperature() throws {
        let router = try router(#"{"experts": 3, "expert_width": 4, "pooling": "cls"}"#, tasks: ["topics", "depth-2"], name: "usage-test")
        var random = TestRandom(seed: 9)
        randomize(router, &random, scale: 1.5)
        let features = random.normals(12 * Self.width)
        let usage = try Self.registry.extensionFunction(named: "polyhead.mmoe.expert_usage")
        let setTemperature = try Self.registry.extensionFunction(named: "polyhead.mmoe.set_temperature")
        XCTAssertEqual(usage.signature, "s(sie)")
        XCTAssertEqual(setTemperature.signature, "v(sde)")

        func report(reset: Bool = false) throws -> [String: (rows: Int, usage: [Double]?)] {
            guard case .string(let text?) = try usage.call([.string("usage-test"), .int32(reset ? 1 : 0)]),
                  case .object(let tasks) = try JSONValue(parsing: text) else { XCTFail("expert_usage returned no JSON object"); return [:] }
            var result: [String: (Int, [Double]?)] = [:]
            for (task, value) in tasks {
                guard case .object(let members) = value, case .number(let rows)? = members["rows"] else { continue }
                if case .array(let values)? = members["usage"] {
                    result[task] = (Int(rows), values.compactMap { if case .number(let number) = $0 { return number } else { return nil } })
                } else {
                    result[task] = (Int(rows), nil)
                }
            }
            return result
        }
        func forward(_ task: Int) throws {
            _ = try features.withUnsafeBufferPointer { try router.forward(taskIndex: task, features: $0, sequenceOffsets: Self.offsets, training: false) }
        }

        try forward(0)
        try forward(0)
        var current = try report()
        XCTAssertEqual(current["topics"]?.rows, 8, "two passes of four sequences")
        XCTAssertEqual(current["depth-2"]?.rows, 0)
        XCTAssertNil(current["depth-2"]?.usage ?? nil, "no rows, no usage")
        let topics = try XCTUnwrap(current["topics"]?.usage)
        XCTAssertEqual(topics.count, 3)
        XCTAssertEqual(topics.reduce(0, +), 1, accuracy: 1e-5, "mean gate weights sum to one")

        // A near-infinite temperature makes every gate uniform; a tiny one picks one expert per row.
        _ = try setTemperature.call([.string("usage-test"), .double(1000)])
        _ = try report(reset: true)
        XCTAssertEqual(try report()["topics"]?.rows, 0, "reset")
        try forward(0)
        for value in try XCTUnwrap(try report(reset: true)["topics"]?.usage) { XCTAssertEqual(value, 1.0 / 3, accuracy: 2e-3) }
        _ = try setTemperature.call([.string("usage-test"), .double(0.001)])
        try forward(1)
        current = try report()
        let sharp = try XCTUnwrap(current["depth-2"]?.usage)
        // Each row's weights are one-hot, so every mean is a multiple of 1/4 (four sequences).
        for value in sharp { XCTAssertEqual(value * 4, (value * 4).rounded(), accuracy: 1e-3) }
        XCTAssertEqual(current["topics"]?.rows, 0)

        XCTAssertThrowsError(try setTemperature.call([.string("usage-test"), .double(0)])) { assertOneLine($0, contains: ["temperature must be within"]) }
        XCTAssertThrowsError(try usage.call([.string("no-such-router"), .int32(0)])) {
            assertOneLine($0, contains: ["no polyhead.mmoe instance named \"no-such-router\"", "usage-test"])
        }
    }

    func testRefusals() throws {
        let cases: [(String, [String])] = [
            (#"{"experts": 2, "widht": 3}"#, ["unknown config key \"widht\""]),
            (#"{"activation": "swish"}"#, ["\"activation\" must be one of tanh, relu, gelu"]),
            (#"{"experts": 0}"#, ["at least one expert"]),
            (#"{"pooling": "first"}"#, ["\"pooling\" must be one of cls, mean, max, token"]),
            (#"{"gate_temperature": 0}"#, ["\"gate_temperature\" must be within"]),
            (#"{"depth": 0}"#, ["\"depth\" must be within 1"]),
        ]
        for (config, fragments) in cases {
            XCTAssertThrowsError(try router(config, tasks: ["a"], name: "refused"), config) {
                assertOneLine($0, contains: ["polyhead.mmoe", "create failed"] + fragments)
            }
        }
        let router = try router("{}", tasks: ["a"], name: "defaults")
        XCTAssertEqual(router.outputWidth, Self.width, "expert width defaults to the input width")
        XCTAssertEqual(router.parameters.parameters.filter { $0.name.hasPrefix("experts.") }.count, 8, "4 experts of one layer")
        let features = [Float](repeating: 0.5, count: 3 * Self.width)
        XCTAssertThrowsError(try features.withUnsafeBufferPointer {
            try router.backward(nil, features: $0, sequenceOffsets: [0, 3], outputGradient: [Float](repeating: 0, count: 3 * Self.width))
        }) { assertOneLine($0, contains: ["needs the state of a training forward pass"]) }
    }
}
