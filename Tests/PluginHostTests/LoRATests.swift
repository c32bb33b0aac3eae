import Foundation
import XCTest
@testable import PluginHost

/// The LoRA adapter (Plugins/LoRAAdapter) through the host and its real .so, on fake sites: a
/// plain linear layer y = x W^T + b computed here, to which the adapter adds its term.
final class LoRATests: XCTestCase {
    static let registry: PluginRegistry = {
        let registry = PluginRegistry()
        do {
            try registry.load(file: Repository.builtPlugin("LoRAAdapter"))
        } catch {
            XCTFail("loading libLoRAAdapter.so failed: \(error)")
        }
        return registry
    }()

    /// Two BERT layers of hidden size 6 and intermediate size 10.
    static let sites = PEFTAdapterFormat.bertLinearSites(layerCount: 2, hiddenSize: 6, intermediateSize: 10)

    static func adapter(_ config: String, name: String = "lora", seed: UInt64 = 0) throws -> AdapterInstance {
        try AdapterInstance(component: registry.component(id: "polyhead.lora"), name: name, configJSON: config, inputWidth: 6,
                            sites: sites, seed: seed)
    }

    static func siteIndex(_ name: String) -> Int { sites.firstIndex { $0.name == name }! }

    /// y = x W^T + b, [rows, out].
    static func linear(_ x: [Float], _ weight: [Float], _ bias: [Float], rows: Int, inFeatures: Int, outFeatures: Int) -> [Float] {
        var y = [Float](repeating: 0, count: rows * outFeatures)
        for row in 0..<rows {
            for output in 0..<outFeatures {
                var sum = Double(bias[output])
                for input in 0..<inFeatures { sum += Double(x[row * inFeatures + input]) * Double(weight[output * inFeatures + input]) }
                y[row * outFeatures + output] = Float(sum)
            }
        }
        return y
    }

    private func randomize(_ adapter: AdapterInstance, _ random: inout TestRandom) {
        for parameter in adapter.parameters.parameters where parameter.trainable {
            let values = adapter.parameters.values(of: parameter)
            for index in values.indices { values[index] = random.normal() * 0.5 }
        }
    }

    func testHooksTheChosenTargetsOnTheChosenLayers() throws {
        let adapter = try Self.adapter(#"{"rank": 2, "targets": ["query", "attention_output", "output"], "layers": [1]}"#)
        XCTAssertEqual(adapter.hookedSites.map { Self.sites[$0].name },
                       ["encoder.layer.1.attention.self.query", "encoder.layer.1.attention.output.dense", "encoder.layer.1.output.dense"])
        XCTAssertEqual(adapter.parameters.info(named: "encoder.layer.1.output.dense.lora_A.weight")?.shape, [2, 10])
        XCTAssertEqual(adapter.parameters.info(named: "encoder.layer.1.output.dense.lora_B.weight")?.shape, [6, 2])
        let defaults = try Self.adapter("{}")
        XCTAssertEqual(defaults.hookedSites.map { Self.sites[$0].name },
                       ["encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.value",
                        "encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.value"],
                       "PEFT's BERT default: query and value of every layer")
        let all = try Self.adapter(#"{"targets": ["query", "key", "value", "attention_output", "intermediate", "output"], "layers": "all"}"#)
        XCTAssertEqual(all.hookedSites, Array(Self.sites.indices))
    }

    func testInitialisationLikePEFTAndScaling() throws {
        let adapter = try Self.adapter(#"{"rank": 4, "alpha": 12, "targets": ["intermediate"]}"#, seed: 5)
        let down = try XCTUnwrap(adapter.parameters.info(named: "encoder.layer.0.intermediate.dense.lora_A.weight"))
        let up = try XCTUnwrap(adapter.parameters.info(named: "encoder.layer.0.intermediate.dense.lora_B.weight"))
        // kaiming_uniform(a = sqrt(5)) on [4, 6]: U(-1/sqrt(6), 1/sqrt(6)).
        let values = Array(adapter.parameters.values(of: down))
        XCTAssertLessThanOrEqual(values.map(abs).max()!, 1 / Float(6).squareRoot())
        XCTAssertGreaterThan(values.map(abs).max()!, 0.6 / Float(6).squareRoot(), "spread over the whole range")
        XCTAssertEqual(Array(adapter.parameters.values(of: up)), [Float](repeating: 0, count: 40), "B starts at zero")
        XCTAssertTrue(down.trainable && up.trainable)
        XCTAssertEqual(adapter.parameters.values(of: adapter.parameters.info(named: "scaling")!)[0], 3, "alpha / rank")
        XCTAssertFalse(adapter.parameters.info(named: "scaling")!.trainable)
        // With B zero the adapter adds nothing.
        let site = Self.siteIndex("encoder.layer.0.intermediate.dense")
        let x = (0..<18).map { Float($0) * 0.1 - 0.7 }
        var y = [Float](repeating: 0.25, count: 30)
        _ = try adapter.forward(site: site, x: x, y: &y, training: false)
        XCTAssertEqual(y, [Float](repeating: 0.25, count: 30))

        let stabilised = try Self.adapter(#"{"rank": 4, "alpha": 12, "rslora": true, "init": "gaussian"}"#, seed: 5)
        XCTAssertEqual(stabilised.parameters.values(of: stabilised.parameters.info(named: "scaling")!)[0], 6, "alpha / sqrt(rank)")
        let gaussian = Array(stabilised.parameters.values(of: stabilised.parameters.info(named: "encoder.layer.0.attention.self.query.lora_A.weight")!))
        let deviation = (gaussian.map { Double($0 * $0) }.reduce(0, +) / Double(gaussian.count)).squareRoot()
        XCTAssertEqual(deviation, 0.25, accuracy: 0.1, "N(0, 1/rank)")
    }

    /// loss = sum(G * y) + 0.5 sum(y^2), y = x W^T + b + LoRA(x): every d(x), d(A), d(B)
    /// against central differences, dropout on (the stream is rewound before each pass).
    func testGradientsAgainstFiniteDifferencesWithDropout() throws {
        let adapter = try Self.adapter(#"{"rank": 3, "alpha": 5, "dropout": 0.25, "targets": ["query", "intermediate", "output"], "layers": [1]}"#, seed: 3)
        var random = TestRandom(seed: 21)
        randomize(adapter, &random)
        XCTAssertEqual(adapter.hookedSites.count, 3)
        let rows = 5
        for site in adapter.hookedSites {
            let shape = Self.sites[site]
            let weight = random.normals(shape.outFeatures * shape.inFeatures), bias = random.normals(shape.outFeatures)
            let projection = random.normals(rows * shape.outFeatures)
            var x = random.normals(rows * shape.inFeatures)
            let position = adapter.core.random.position

            func output(_ x: [Float]) throws -> (y: [Float], saved: SavedState?) {
                adapter.core.random.position = position
                var y = Self.linear(x, weight, bias, rows: rows, inFeatures: shape.inFeatures, outFeatures: shape.outFeatures)
                let saved = try adapter.forward(site: site, x: x, y: &y, training: true)
                return (y, saved)
            }
            func loss() throws -> Double {
                zip(try output(x).y, projection).reduce(0.0) { $0 + Double($1.1) * Double($1.0) + 0.5 * Double($1.0) * Double($1.0) }
            }

            adapter.parameters.zeroGradients()
            let (y, saved) = try output(x)
            let dy = zip(y, projection).map { $0 + $1 }
            // The base layer's d(x) = dy W; the adapter adds its part.
            var dx = [Float](repeating: 0, count: rows * shape.inFeatures)
            for row in 0..<rows {
                for input in 0..<shape.inFeatures {
                    var sum = 0.0
                    for out in 0..<shape.outFeatures { sum += Double(dy[row * shape.outFeatures + out]) * Double(weight[out * shape.inFeatures + input]) }
                    dx[row * shape.inFeatures + input] = Float(sum)
                }
            }
            let baseOnly = dx
            try adapter.backward(saved, site: site, x: x, outputGradient: dy, inputGradient: &dx)
            XCTAssertNotEqual(dx, baseOnly, "the adapter adds to d(x)")
            let gradients = Array(adapter.parameters.gradients)

            let epsilon: Float = 1e-2
            let largest = (dx + gradients).map { abs(Double($0)) }.max() ?? 0
            let floor = 1e-3 + 2e-3 * largest // float32 sums resolve a difference only that far
            var worst = (error: 0.0, what: "")
            func compare(_ numeric: Double, _ exact: Double, _ what: String) {
                let error = abs(numeric - exact) / (floor + abs(exact))
                if error > worst.error { worst = (error, "\(what): numeric \(numeric), exact \(exact)") }
            }
            for index in x.indices {
                let original = x[index]
                x[index] = original + epsilon
                let plus = try loss()
                x[index] = original - epsilon
                let minus = try loss()
                x[index] = original
                compare((plus - minus) / Double(2 * epsilon), Double(dx[index]), "d_x[\(index)]")
            }
            for parameter in adapter.parameters.parameters where parameter.trainable {
                let values = adapter.parameters.values(of: parameter)
                let own = parameter.name.hasPrefix(shape.name + ".")
                for index in values.indices {
                    let exact = Double(gradients[parameter.offset + index])
                    guard own else {
                        XCTAssertEqual(exact, 0, "\(parameter.name) belongs to another site")
                        continue
                    }
                    let original = values[index]
                    values[index] = original + epsilon
                    let plus = try loss()
                    values[index] = original - epsilon
                    let minus = try loss()
                    values[index] = original
                    compare((plus - minus) / Double(2 * epsilon), exact, "\(parameter.name)[\(index)]")
                }
            }
            print("lora \(shape.name): worst relative error \(String(format: "%.2e", worst.error)) at \(worst.what)")
            XCTAssertLessThan(worst.error, 2e-2, "\(shape.name): finite differences disagree at \(worst.what)")
        }
    }

    func testDropoutOnlyWhileTrainingAndBackwardWithoutSavedState() throws {
        let adapter = try Self.adapter(#"{"rank": 2, "dropout": 0.5, "targets": ["value"], "layers": [0]}"#)
        var random = TestRandom(seed: 4)
        randomize(adapter, &random)
        let site = Self.siteIndex("encoder.layer.0.attention.self.value")
        let x = random.normals(4 * 6)
        func run(_ training: Bool) throws -> [Float] {
            var y = [Float](repeating: 0, count: 24)
            _ = try adapter.forward(site: site, x: x, y: &y, training: training)
            return y
        }
        let evaluation = try run(false)
        _ = adapter.core.random.next()
        XCTAssertEqual(try run(false), evaluation, "no dropout at evaluation")
        XCTAssertNotEqual(try run(true), evaluation, "dropout while training")
        var dx = [Float](repeating: 0, count: 24)
        XCTAssertThrowsError(try adapter.backward(nil, site: site, x: x, outputGradient: [Float](repeating: 1, count: 24), inputGradient: &dx)) {
            assertOneLine($0, contains: ["needs the state of a training forward pass (dropout is on)"])
        }
        // Without dropout, a backward without saved state recomputes what it needs.
        let plain = try Self.adapter(#"{"rank": 2, "targets": ["value"], "layers": [0]}"#)
        randomize(plain, &random)
        var y = [Float](repeating: 0, count: 24)
        let saved = try plain.forward(site: site, x: x, y: &y, training: true)
        var withState = [Float](repeating: 0, count: 24), withoutState = withState
        try plain.backward(saved, site: site, x: x, outputGradient: y, inputGradient: &withState)
        let first = Array(plain.parameters.gradients)
        plain.parameters.zeroGradients()
        try plain.backward(nil, site: site, x: x, outputGradient: y, inputGradient: &withoutState)
        XCTAssertEqual(withoutState, withState)
        XCTAssertEqual(Array(plain.parameters.gradients), first)
    }

    /// x (W + merge)^T = x W^T + adapter(x), and unmerging gives W back.
    func testMergeMatchesTheAdapterAndUnmergeRestoresTheWeight() throws {
        let adapter = try Self.adapter(#"{"rank": 3, "alpha": 7, "dropout": 0.3, "targets": ["key", "output"]}"#)
        var random = TestRandom(seed: 6)
        randomize(adapter, &random)
        XCTAssertEqual(adapter.hookedSites.count, 4)
        let rows = 3
        for site in adapter.hookedSites {
            let shape = Self.sites[site]
            let weight = random.normals(shape.outFeatures * shape.inFeatures), bias = random.normals(shape.outFeatures)
            let x = random.normals(rows * shape.inFeatures)
            var adapted = Self.linear(x, weight, bias, rows: rows, inFeatures: shape.inFeatures, outFeatures: shape.outFeatures)
            _ = try adapter.forward(site: site, x: x, y: &adapted, training: false)
            var merged = weight
            try adapter.merge(site: site, weight: &merged)
            XCTAssertNotEqual(merged, weight)
            let fromMerged = Self.linear(x, merged, bias, rows: rows, inFeatures: shape.inFeatures, outFeatures: shape.outFeatures)
            XCTAssertLessThan(maxDifference(fromMerged, adapted.map(Double.init)), 1e-5, shape.name)
            try adapter.unmerge(site: site, weight: &merged)
            XCTAssertLessThan(maxDifference(merged, weight.map(Double.init)), 1e-6, shape.name)
        }
        var weight = [Float](repeating: 0, count: 36)
        XCTAssertThrowsError(try adapter.merge(site: Self.siteIndex("encoder.layer.0.attention.self.query"), weight: &weight)) {
            assertOneLine($0, contains: ["site 0 is not hooked"])
        }
    }

    func testRefusals() throws {
        let cases: [(String, [String])] = [
            (#"{"rank": 4, "targets": ["qurey"]}"#, ["\"targets\" names \"qurey\"", "query, key, value, attention_output, intermediate, output"]),
            (#"{"layers": [2]}"#, ["\"layers\" holds 2, but the encoder has layers 0 ... 1"]),
            (#"{"targets": []}"#, ["\"targets\" is empty"]),
            (#"{"rank": 0}"#, ["\"rank\" must be within 1"]),
            (#"{"alpha": 8, "scale": 2}"#, ["unknown config key \"scale\""]),
            (#"{"init": "pissa"}"#, ["\"init\" must be one of kaiming, gaussian"]),
            (#"{"layers": "most"}"#, ["\"layers\" must be \"all\" or a non-empty array"]),
        ]
        for (config, fragments) in cases {
            XCTAssertThrowsError(try Self.adapter(config), config) { assertOneLine($0, contains: ["polyhead.lora", "create failed"] + fragments) }
        }
        XCTAssertThrowsError(try AdapterInstance(component: Self.registry.component(id: "polyhead.lora"), name: "no-sites", configJSON: "{}",
                                                 inputWidth: 6, sites: [LinearSite(name: "pooler.dense", inFeatures: 6, outFeatures: 6)])) {
            assertOneLine($0, contains: ["offers no BERT linear sites"])
        }
    }
}
