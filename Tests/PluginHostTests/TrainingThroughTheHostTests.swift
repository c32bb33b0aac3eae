import Foundation
import XCTest
@testable import PluginHost

/// A head trains through the host: the host owns the parameters, the plugin only adds
/// gradients into them, and a plain SGD step on the host's block makes the loss fall. The
/// C example head learns ordered levels from features whose first column encodes the level.
final class TrainingThroughTheHostTests: XCTestCase {
    func testCExampleHeadLearnsOrderedLevels() throws {
        let head = try HeadInstance(component: allHeads.component(id: "example.ordinal"), name: "gloss_length",
                                    configJSON: #"{"levels": ["short", "medium", "long"], "pooling": "mean"}"#, inputWidth: 4, seed: 7)
        var random = TestRandom(seed: 21)
        let sequences = 24, tokensPerSequence = 3
        var features: [Float] = []
        var labels: [JSONValue] = []
        for sequence in 0..<sequences {
            let level = sequence % 3
            labels.append(.number(Double(level)))
            for _ in 0..<tokensPerSequence {
                features += [Float(level) - 1 + 0.3 * random.normal(), random.normal(), random.normal(), random.normal()]
            }
        }
        let offsets = (0...sequences).map { Int64($0 * tokensPerSequence) }
        let problem = try HeadProblem(head: head, features: features, offsets: offsets, wordIds: nil, labels: labels)
        let rankError = try allHeads.extensionFunction(named: "example.ordinal.mean_absolute_rank_error")

        var losses: [Double] = []
        var lastOutputs: [Float] = []
        for _ in 0..<150 {
            let step = try problem.run(replaying: head.random.position)
            losses.append(step.loss)
            lastOutputs = step.outputs
            for index in head.parameters.values.indices { head.parameters.values[index] -= 0.5 * head.parameters.gradients[index] }
        }
        guard case .double(let error) = try rankError.call([.tensor(values: lastOutputs, shape: [sequences, 2]),
                                                            .indexTensor(values: (0..<sequences).map { Int64($0 % 3) }, shape: [sequences])]) else {
            return XCTFail("mean_absolute_rank_error returns a double")
        }
        print(String(format: "ordinal C head: loss %.4f -> %.4f in 150 SGD steps, mean absolute rank error %.3f", losses[0], losses.last!, error))
        XCTAssertLessThan(losses.last!, 0.3 * losses[0])
        XCTAssertLessThan(error, 0.2)
        let decoded = try head.decode(outputs: Array(lastOutputs[4..<6]), wordIds: nil)
        XCTAssertEqual(decoded, #"{"label":"long","rank":2}"#)
    }
}
