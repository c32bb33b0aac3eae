import Kernels
import XCTest
@testable import Training

private struct OptimizerFixture: Decodable {
    struct Group: Decodable {
        var name: String
        var learning_rate: Double
        var weight_decay: Double
        var parameters: [String]
    }
    struct Step: Decodable {
        var gradients: [String: [Float]]
        var norm: Float
        var clipped: [String: [Float]]
        var after: [String: [Float]]
    }
    var max_norm: Float
    var warmup: Int
    var total: Int
    var groups: [Group]
    var initial: [String: [Float]]
    var steps: [Step]
}

final class AdamWTests: XCTestCase {
    /// torch.optim.AdamW + clip_grad_norm_ + linear warmup schedule, fed the same gradients
    /// (optimizer.json). Each group lives in its own storage, as encoder and heads will.
    func testMatchesTorchAdamW() throws {
        let fixture = try decodeFixture(OptimizerFixture.self, "optimizer.json")
        var layout: [String: (FlatParameterStorage, Range<Int>)] = [:]
        var groups: [ParameterGroup] = []
        for group in fixture.groups {
            let values = group.parameters.flatMap { fixture.initial[$0] ?? [] }
            let storage = FlatParameterStorage(values: values)
            var offset = 0
            var ranges: [ParameterRange] = []
            for name in group.parameters {
                let count = try XCTUnwrap(fixture.initial[name]).count
                layout[name] = (storage, offset..<offset + count)
                ranges.append(ParameterRange(name: name, storage: storage, range: offset..<offset + count))
                offset += count
            }
            groups.append(ParameterGroup(name: group.name, learningRate: group.learning_rate, weightDecay: group.weight_decay, parameters: ranges))
        }
        let optimizer = try AdamW(groups: groups)
        let schedule = LearningRateSchedule(kind: .linear, warmupSteps: fixture.warmup, totalSteps: fixture.total)
        XCTAssertEqual(fixture.steps.count, 6)
        var clippedSteps = 0
        for (stepIndex, step) in fixture.steps.enumerated() {
            optimizer.zeroGradients()
            for (name, (storage, range)) in layout {
                let gradients = try XCTUnwrap(step.gradients[name])
                for (index, value) in gradients.enumerated() { storage.gradients[range.lowerBound + index] += value }
            }
            let norm = optimizer.clipGradientNorm(maxNorm: fixture.max_norm)
            XCTAssertEqual(norm, step.norm, accuracy: 1e-6 * step.norm, "norm at step \(stepIndex + 1)")
            if norm > fixture.max_norm { clippedSteps += 1 }
            for (name, (storage, range)) in layout {
                assertClose(Array(storage.gradients[range]), try XCTUnwrap(step.clipped[name]), relative: 1e-6, absolute: 1e-8, "clipped \(name) at step \(stepIndex + 1)")
            }
            optimizer.step(learningRateMultiplier: schedule.multiplier(afterSteps: optimizer.completedSteps))
            for (name, (storage, range)) in layout {
                assertClose(Array(storage.values[range]), try XCTUnwrap(step.after[name]), relative: 2e-6, absolute: 1e-7, "\(name) after step \(stepIndex + 1)")
            }
        }
        XCTAssertEqual(optimizer.completedSteps, 6)
        XCTAssertGreaterThan(clippedSteps, 0, "the fixture should exercise clipping")
    }

    /// The fused path (scale by the clip coefficient as read, update, zero) gives bit for bit
    /// what clipGradientNorm + step + zeroGradients give, clipped or not, on two groups (one
    /// without decay) long enough for the eight-lane loop and its scalar tail.
    func testFusedClipStepAndZeroMatchesTheSeparateCalls() throws {
        func make() throws -> (AdamW, FlatParameterStorage, FlatParameterStorage) {
            var generator = SeededGenerator(seed: 5)
            let a = FlatParameterStorage(values: (0..<1_037).map { _ in Float.random(in: -1...1, using: &generator) })
            let b = FlatParameterStorage(values: (0..<45).map { _ in Float.random(in: -1...1, using: &generator) })
            let optimizer = try AdamW(groups: [
                ParameterGroup(name: "encoder", learningRate: 1e-3, weightDecay: 0.01, parameters: [ParameterRange(name: "w", storage: a, range: 0..<1_037)]),
                ParameterGroup(name: "heads", learningRate: 2e-3, weightDecay: 0, parameters: [ParameterRange(name: "h.bias", storage: b, range: 0..<45)]),
            ])
            return (optimizer, a, b)
        }
        let (separate, a1, b1) = try make()
        let (fused, a2, b2) = try make()
        for step in 0..<4 {
            var generator = SeededGenerator(seed: UInt64(100 + step))
            let scale: Float = step % 2 == 0 ? 10 : 0.01  // clipped, then not
            for storage in [a1, b1] { for index in 0..<storage.values.count { storage.gradients[index] = Float.random(in: -1...1, using: &generator) * scale } }
            generator = SeededGenerator(seed: UInt64(100 + step))
            for storage in [a2, b2] { for index in 0..<storage.values.count { storage.gradients[index] = Float.random(in: -1...1, using: &generator) * scale } }
            let norm = separate.clipGradientNorm(maxNorm: 1)
            separate.step(learningRateMultiplier: 0.5)
            separate.zeroGradients()
            let fusedNorm = fused.gradientNorm()
            XCTAssertEqual(fusedNorm, norm)
            XCTAssertEqual(AdamW.clipCoefficient(norm: fusedNorm, maxNorm: 1) < 1, step % 2 == 0, "step \(step) clips as planned")
            fused.stepAndZeroGradients(learningRateMultiplier: 0.5, gradientScale: AdamW.clipCoefficient(norm: fusedNorm, maxNorm: 1))
            XCTAssertEqual(a2.values.map(\.bitPattern), a1.values.map(\.bitPattern), "step \(step)")
            XCTAssertEqual(b2.values.map(\.bitPattern), b1.values.map(\.bitPattern), "step \(step)")
            XCTAssertTrue(a2.gradients.allSatisfy { $0 == 0 } && b2.gradients.allSatisfy { $0 == 0 }, "gradients zeroed")
        }
    }

    /// With a zero gradient Adam's update is 0, so only decoupled decay moves a parameter,
    /// and only where decay applies.
    func testDecoupledWeightDecay() throws {
        let storage = FlatParameterStorage(values: [2, -4, 3])
        let group = ParameterGroup(name: "encoder", learningRate: 0.1, weightDecay: 0.5, parameters: [
            ParameterRange(name: "dense.weight", storage: storage, range: 0..<2),
            ParameterRange(name: "dense.bias", storage: storage, range: 2..<3),
        ])
        let optimizer = try AdamW(groups: [group])
        optimizer.step()
        XCTAssertEqual(Array(storage.values), [2 * 0.95, -4 * 0.95, 3])
    }

    /// Bias correction makes the first update lr * g / (|g| + eps), about lr * sign(g).
    func testFirstStepIsBiasCorrected() throws {
        let storage = FlatParameterStorage(values: [1, 1, 1])
        for (index, gradient) in [Float(0.001), -30, 0.5].enumerated() { storage.gradients[index] = gradient }
        let optimizer = try AdamW(groups: [ParameterGroup(name: "heads", learningRate: 0.01, parameters: [
            ParameterRange(name: "head.weight", storage: storage, range: 0..<3),
        ])])
        optimizer.step()
        assertClose(Array(storage.values), [0.99, 1.01, 0.99], relative: 1e-6, absolute: 1e-7, "first step")
    }

    /// A frozen range or group has no moments, is not clipped, and never changes.
    func testFrozenParametersCostNothing() throws {
        let encoder = FlatParameterStorage(values: [1, 2, 3, 4, 5, 6])
        let head = FlatParameterStorage(values: [7, 8])
        let optimizer = try AdamW(groups: [
            ParameterGroup(name: "encoder", learningRate: 0.1, weightDecay: 0.1, parameters: [
                ParameterRange(name: "layer.0.weight", storage: encoder, range: 0..<4, trainable: false),
                ParameterRange(name: "layer.1.weight", storage: encoder, range: 4..<6),
            ]),
            ParameterGroup(name: "adapters", learningRate: 0.1, trainable: false, parameters: [
                ParameterRange(name: "adapter.weight", storage: head, range: 0..<1),
            ]),
            ParameterGroup(name: "heads", learningRate: 0.1, parameters: [
                ParameterRange(name: "head.weight", storage: head, range: 1..<2),
            ]),
        ])
        XCTAssertEqual(optimizer.trainableParameterCount, 3)
        XCTAssertEqual(optimizer.trainableParameterNames, ["layer.1.weight", "head.weight"])
        for index in 0..<6 { encoder.gradients[index] = 3 }
        head.gradients[0] = 4
        head.gradients[1] = 4
        // Only the three trainable gradients count: sqrt(9 + 9 + 16).
        XCTAssertEqual(optimizer.gradientNorm(), Float(34).squareRoot(), accuracy: 1e-6)
        optimizer.step()
        XCTAssertEqual(Array(encoder.values[0..<4]), [1, 2, 3, 4])
        XCTAssertEqual(head.values[0], 7)
        XCTAssertNotEqual(encoder.values[4], 5)
        XCTAssertNotEqual(head.values[1], 8)
    }

    func testClippingLeavesSmallGradientsAlone() throws {
        let storage = FlatParameterStorage(count: 2)
        storage.gradients[0] = 0.3
        storage.gradients[1] = 0.4
        let optimizer = try AdamW(groups: [ParameterGroup(name: "heads", learningRate: 1, parameters: [
            ParameterRange(name: "w", storage: storage, range: 0..<2),
        ])])
        XCTAssertEqual(optimizer.clipGradientNorm(maxNorm: 1), 0.5, accuracy: 1e-7)
        XCTAssertEqual(Array(storage.gradients), [0.3, 0.4])
        XCTAssertEqual(optimizer.clipGradientNorm(maxNorm: 0.25), 0.5, accuracy: 1e-7)
        assertClose(Array(storage.gradients), [0.15, 0.2], relative: 1e-5, absolute: 0, "clipped to 0.25")
        optimizer.zeroGradients()
        XCTAssertEqual(Array(storage.gradients), [0, 0])
    }

    func testDefaultWeightDecayRule() {
        XCTAssertTrue(ParameterRange.decaysByDefault(name: "encoder.layer.0.attention.self.query.weight"))
        XCTAssertFalse(ParameterRange.decaysByDefault(name: "encoder.layer.0.attention.self.query.bias"))
        XCTAssertFalse(ParameterRange.decaysByDefault(name: "embeddings.LayerNorm.weight"))
        XCTAssertFalse(ParameterRange.decaysByDefault(name: "heads.tags.layer_norm.weight"))
        XCTAssertTrue(ParameterRange.decaysByDefault(name: "embeddings.word_embeddings.weight"))
    }

    func testRejectsBadRegistrations() {
        let storage = FlatParameterStorage(count: 4)
        XCTAssertThrowsError(try AdamW(groups: [ParameterGroup(name: "g", learningRate: 1, parameters: [
            ParameterRange(name: "a", storage: storage, range: 0..<2), ParameterRange(name: "a", storage: storage, range: 2..<4),
        ])])) { XCTAssertEqual($0 as? TrainingError, .duplicateParameterName("a")) }
        XCTAssertThrowsError(try AdamW(groups: [ParameterGroup(name: "g", learningRate: 1, parameters: [
            ParameterRange(name: "a", storage: storage, range: 0..<3), ParameterRange(name: "b", storage: storage, range: 2..<4),
        ])])) { XCTAssertEqual($0 as? TrainingError, .overlappingParameters(first: "a", second: "b")) }
        XCTAssertThrowsError(try AdamW(groups: [ParameterGroup(name: "g", learningRate: 1, parameters: [
            ParameterRange(name: "a", storage: storage, range: 2..<5),
        ])])) { XCTAssertEqual($0 as? TrainingError, .parameterOutOfBounds(name: "a", range: 2..<5, storageCount: 4)) }
        XCTAssertThrowsError(try AdamW(groups: [], settings: AdamWSettings(beta2: 1)))
        XCTAssertThrowsError(try AdamW(groups: [ParameterGroup(name: "g", learningRate: -1, parameters: [])]))
    }

    func testSetLearningRateByGroup() throws {
        let storage = FlatParameterStorage(values: [1])
        storage.gradients[0] = 1
        let optimizer = try AdamW(groups: [ParameterGroup(name: "heads", learningRate: 0.1, parameters: [
            ParameterRange(name: "w", storage: storage, range: 0..<1),
        ])])
        try optimizer.setLearningRate(0.5, group: "heads")
        optimizer.step()
        XCTAssertEqual(storage.values[0], 0.5, accuracy: 1e-6)
        XCTAssertThrowsError(try optimizer.setLearningRate(0.5, group: "routers"))
    }

    /// The gradient norm and an update over a block large enough to be split across workers
    /// are identical with one worker and with two, and the norm matches a Double sum.
    func testLargeBlocksGiveTheSameResultWithAnyWorkerCount() throws {
        defer { KernelThreads.configure() }
        var generator = SeededGenerator(seed: 21)
        let count = 300_001
        let gradients = (0..<count).map { _ in Float.random(in: -1...1, using: &generator) }
        var results: [(Float, [Float])] = []
        for workers in [1, 2] {
            KernelThreads.configure(workers: workers)
            let storage = FlatParameterStorage(count: count)
            _ = storage.gradients.update(fromContentsOf: gradients)
            let optimizer = try AdamW(groups: [ParameterGroup(name: "encoder", learningRate: 0.01, weightDecay: 0.1, parameters: [
                ParameterRange(name: "word_embeddings.weight", storage: storage, range: 0..<count),
            ])])
            let norm = optimizer.clipGradientNorm(maxNorm: 100)
            optimizer.step()
            results.append((norm, Array(storage.values)))
        }
        XCTAssertEqual(results[0].0, results[1].0)
        XCTAssertEqual(results[0].1, results[1].1)
        let reference = gradients.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        XCTAssertEqual(Double(results[0].0), reference, accuracy: 1e-6 * reference)
    }
}
