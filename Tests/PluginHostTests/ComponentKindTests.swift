import Foundation
import XCTest
@testable import PluginHost

/// Routers and encoder adapters through the same ABI, with the C fixture's components.
final class ComponentKindTests: XCTestCase {
    private func fixture() throws -> PluginRegistry {
        let registry = PluginRegistry()
        try registry.load(file: try FixtureCompiler.fixture("fixture_plugin.c", output: "libfixture.so"))
        return registry
    }

    func testRouterSharedByTwoTasks() throws {
        let router = try RouterInstance(component: fixture().component(id: "fixture.router"), name: "shared", configJSON: "{}",
                                        inputWidth: 2, taskNames: ["topics", "depth"])
        XCTAssertEqual(router.outputWidth, 2)
        let gate = try XCTUnwrap(router.parameters.info(named: "gate"))
        XCTAssertEqual(gate.shape, [2])
        XCTAssertEqual(Array(router.parameters.values(of: gate)), [1.5, 1.5], "host applied the constant initialiser")
        router.parameters.values(of: gate)[1] = -2
        let features: [Float] = [1, 2, 3, 4, 5, 6]
        let (outputs, saved) = try features.withUnsafeBufferPointer { try router.forward(taskIndex: 1, features: $0, sequenceOffsets: [0, 1, 3], training: true) }
        XCTAssertEqual(outputs, features.map { $0 * -2 })
        let gradient = try features.withUnsafeBufferPointer {
            try router.backward(saved, features: $0, sequenceOffsets: [0, 1, 3], outputGradient: [Float](repeating: 1, count: 6))
        }
        XCTAssertEqual(gradient, [Float](repeating: -2, count: 6))
        XCTAssertEqual(Array(router.parameters.gradients(of: gate)), [0, 21], "only task 1's gate gets the gradient")
        XCTAssertThrowsError(try features.withUnsafeBufferPointer { try router.forward(taskIndex: 2, features: $0, sequenceOffsets: [0, 3], training: false) }) {
            assertOneLine($0, contains: ["task index 2 is not below 2"])
        }
    }

    func testAdapterHooksChosenSitesAndMerges() throws {
        let sites = [LinearSite(name: "encoder.layer.0.attention.self.query", inFeatures: 2, outFeatures: 3),
                     LinearSite(name: "encoder.layer.0.attention.self.key", inFeatures: 2, outFeatures: 3)]
        let adapter = try AdapterInstance(component: fixture().component(id: "fixture.adapter"), name: "lora", configJSON: #"{"match": "query"}"#,
                                          inputWidth: 2, sites: sites)
        XCTAssertEqual(adapter.hookedSites, [0])
        let x: [Float] = [1, 2, 3, 4] // [2, 2]
        var y: [Float] = [10, 10, 10, 20, 20, 20]
        let saved = try adapter.forward(site: 0, x: x, y: &y, training: true)
        XCTAssertEqual(y, [10.5, 11, 10, 21.5, 22, 20], "y += 0.5 x on the shared columns")
        var dx: [Float] = [1, 1, 1, 1]
        try adapter.backward(saved, site: 0, x: x, outputGradient: [1, 1, 1, 1, 1, 1], inputGradient: &dx)
        XCTAssertEqual(dx, [1.5, 1.5, 1.5, 1.5])
        XCTAssertEqual(Array(adapter.parameters.gradients), [10])
        var weight = [Float](repeating: 0, count: 6)
        try adapter.merge(site: 0, weight: &weight)
        XCTAssertEqual(weight, [0.5, 0, 0, 0.5, 0, 0])
        XCTAssertThrowsError(try adapter.forward(site: 1, x: x, y: &y, training: false)) { assertOneLine($0, contains: ["site 1 is not hooked"]) }
    }

    func testKindMismatchIsRefused() throws {
        XCTAssertThrowsError(try HeadInstance(component: fixture().component(id: "fixture.router"), name: "x", configJSON: "{}", inputWidth: 2)) {
            assertOneLine($0, contains: ["fixture.router", "is a router, not a task head"])
        }
    }

    func testParametersLiveInOneHostBlockAndGradientsAccumulate() throws {
        let head = try HeadInstance(component: allHeads.component(id: "polyhead.classification"), name: "topics",
                                    configJSON: #"{"labels": ["a", "b", "c"], "hidden_size": 4, "class_weights": [1, 2, 3]}"#, inputWidth: 5)
        let names = head.parameters.parameters.map(\.name)
        XCTAssertEqual(names, ["dense.weight", "dense.bias", "output.weight", "output.bias", "class_weights"])
        XCTAssertEqual(head.parameters.count, 4 * 5 + 4 + 3 * 4 + 3 + 3)
        let info = try XCTUnwrap(head.parameters.info(named: "class_weights"))
        XCTAssertFalse(info.trainable)
        XCTAssertEqual(Array(head.parameters.values(of: info)), [1, 2, 3], "the plugin filled its buffer at bind")
        XCTAssertTrue(head.parameters.info(named: "output.bias")!.noDecay)
        XCTAssertFalse(head.parameters.info(named: "output.weight")!.noDecay)
        // normal(0, 0.02) initialisation from the seed: small, not all equal, reproducible.
        let weights = Array(head.parameters.values(of: head.parameters.info(named: "output.weight")!))
        XCTAssertLessThan(weights.map(abs).max()!, 0.1)
        XCTAssertGreaterThan(Set(weights).count, 10)
        let again = try HeadInstance(component: head.component, name: "topics", configJSON: #"{"labels": ["a", "b", "c"], "hidden_size": 4, "class_weights": [1, 2, 3]}"#, inputWidth: 5)
        XCTAssertEqual(Array(again.parameters.values), Array(head.parameters.values))

        // Two backward passes without zeroing add up (the optimizer step zeroes).
        var random = TestRandom(seed: 9)
        let problem = try HeadProblem(head: head, features: random.normals(4 * 5), offsets: [0, 2, 4], wordIds: nil, labels: [.string("a"), .string("c")])
        _ = try problem.run(replaying: head.random.position)
        let once = Array(head.parameters.gradients)
        try problem.features.withUnsafeBufferPointer { features in
            let (outputs, saved) = try head.forward(features: features, sequenceOffsets: [0, 2, 4], training: true)
            let (_, gradient) = try head.loss(outputs: outputs, targets: problem.targets)
            _ = try head.backward(saved, features: features, sequenceOffsets: [0, 2, 4], outputGradient: gradient)
        }
        for (twice, single) in zip(head.parameters.gradients, once) { XCTAssertEqual(twice, 2 * single, accuracy: 1e-6) }
        XCTAssertEqual(head.parameters.gradients[head.parameters.info(named: "class_weights")!.offset], 0, "buffers get no gradient")
    }

    func testTokenTargetsAlignToFirstPieces() throws {
        let head = try HeadInstance(component: allHeads.component(id: "polyhead.token_classification"), name: "tags",
                                    configJSON: #"{"labels": ["O", "B", "I"]}"#, inputWidth: 4)
        let targets = try head.encodeTarget(label: try JSONValue(parsing: #"["B", "I", "O"]"#), wordIds: [-1, 0, 0, 1, 2, 2, 2, -1])
        XCTAssertEqual(targets.storage, .indices([-1, 1, -1, 2, 0, -1, -1, -1]))
        XCTAssertThrowsError(try head.encodeTarget(label: try JSONValue(parsing: #"["B"]"#), wordIds: [-1, 0, 1, -1])) {
            assertOneLine($0, contains: ["token 2 belongs to word 1 but the target labels only 1 words"])
        }
        XCTAssertThrowsError(try head.encodeTarget(label: try JSONValue(parsing: #"["X"]"#), wordIds: [0])) {
            assertOneLine($0, contains: ["unknown label \"X\""])
        }
    }
}
