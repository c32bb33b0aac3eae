import Foundation
import SafeTensors
import XCTest
@testable import Training

final class AdamWStateTests: XCTestCase {
    /// Two storages (encoder-like and head-like) with a frozen range, and an optimizer.
    private func makeModel(values: [Float]) throws -> (FlatParameterStorage, FlatParameterStorage, AdamW) {
        let body = FlatParameterStorage(values: Array(values[0..<6]))
        let head = FlatParameterStorage(values: Array(values[6...]))
        let optimizer = try AdamW(groups: [
            ParameterGroup(name: "encoder", learningRate: 0.01, weightDecay: 0.1, parameters: [
                ParameterRange(name: "layer.weight", storage: body, range: 0..<4),
                ParameterRange(name: "layer.bias", storage: body, range: 4..<5),
                ParameterRange(name: "frozen.weight", storage: body, range: 5..<6, trainable: false),
            ]),
            ParameterGroup(name: "heads", learningRate: 0.05, parameters: [
                ParameterRange(name: "head.weight", storage: head, range: 0..<3),
            ]),
        ])
        return (body, head, optimizer)
    }

    private func trainSteps(_ model: (FlatParameterStorage, FlatParameterStorage, AdamW), steps: Range<Int>) {
        let (body, head, optimizer) = model
        for step in steps {
            optimizer.zeroGradients()
            for index in 0..<6 { body.gradients[index] = sin(Float(step * 7 + index)) }
            for index in 0..<3 { head.gradients[index] = cos(Float(step * 5 + index)) }
            optimizer.clipGradientNorm(maxNorm: 1)
            optimizer.step()
        }
    }

    /// Save after 3 steps, load into a fresh optimizer, 3 more steps: bit-identical to 6
    /// uninterrupted steps.
    func testResumeMatchesUninterruptedTraining() throws {
        let initial: [Float] = [0.5, -0.2, 0.3, 0.9, 0.1, 2, -1, 0.4, 0.7]
        let uninterrupted = try makeModel(values: initial)
        trainSteps(uninterrupted, steps: 0..<6)

        let first = try makeModel(values: initial)
        trainSteps(first, steps: 0..<3)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("polyhead-adamw-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("optimizer.safetensors")
        try first.2.saveState(to: url)

        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(Set(file.tensorNames), ["exp_avg.layer.weight", "exp_avg_sq.layer.weight", "exp_avg.layer.bias",
                                               "exp_avg_sq.layer.bias", "exp_avg.head.weight", "exp_avg_sq.head.weight"],
                       "frozen parameters have no state")
        XCTAssertEqual(file.metadata["adamw.completed_steps"], "3")

        let resumed = try makeModel(values: Array(first.0.values) + Array(first.1.values))
        try resumed.2.loadState(from: url)
        XCTAssertEqual(resumed.2.completedSteps, 3)
        trainSteps(resumed, steps: 3..<6)
        XCTAssertEqual(Array(resumed.0.values), Array(uninterrupted.0.values))
        XCTAssertEqual(Array(resumed.1.values), Array(uninterrupted.1.values))

        // Without the state the continuation differs, so the comparison above means something.
        let restarted = try makeModel(values: Array(first.0.values) + Array(first.1.values))
        trainSteps(restarted, steps: 3..<6)
        XCTAssertNotEqual(Array(restarted.0.values), Array(uninterrupted.0.values))
    }

    func testRejectsStateOfOtherParameters() throws {
        let model = try makeModel(values: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        trainSteps(model, steps: 0..<2)
        var writer = SafeTensorsWriter()
        try model.2.writeState(into: &writer)
        let file = try SafeTensorsFile(bytes: writer.data())

        // A model where the bias is frozen: the file has moments it cannot place.
        let body = FlatParameterStorage(count: 6), head = FlatParameterStorage(count: 3)
        let other = try AdamW(groups: [ParameterGroup(name: "encoder", learningRate: 0.1, parameters: [
            ParameterRange(name: "layer.weight", storage: body, range: 0..<4),
            ParameterRange(name: "layer.bias", storage: body, range: 4..<5, trainable: false),
            ParameterRange(name: "head.weight", storage: head, range: 0..<3),
        ])])
        XCTAssertThrowsError(try other.readState(from: file)) {
            XCTAssertTrue("\($0)".contains("exp_avg.layer.bias"), "\($0)")
        }
        XCTAssertEqual(other.completedSteps, 0, "a rejected file changes nothing")

        // A model with a parameter the file lacks.
        let extra = try AdamW(groups: [ParameterGroup(name: "encoder", learningRate: 0.1, parameters: [
            ParameterRange(name: "layer.weight", storage: body, range: 0..<4),
            ParameterRange(name: "layer.bias", storage: body, range: 4..<5),
            ParameterRange(name: "head.weight", storage: head, range: 0..<3),
            ParameterRange(name: "router.weight", storage: body, range: 5..<6),
        ])])
        XCTAssertThrowsError(try extra.readState(from: file)) {
            XCTAssertEqual($0 as? TrainingError, .optimizerStateMismatch("exp_avg.router.weight is missing but router.weight is trainable"))
        }

        // A safetensors file that is not optimizer state at all.
        var plain = SafeTensorsWriter()
        try plain.add("weight", shape: [1], floats: [1])
        XCTAssertThrowsError(try model.2.readState(from: SafeTensorsFile(bytes: plain.data()))) {
            XCTAssertTrue("\($0)".contains("adamw.format"), "\($0)")
        }
    }
}
