import Foundation
import XCTest
@testable import PluginHost

/// Builds the C example head with its own Makefile (cc and the header, nothing else).
enum ExampleHead {
    static let path: String = {
        let build = (FixtureCompiler.directory as NSString).appendingPathComponent("c-head")
        let library = (build as NSString).appendingPathComponent("libordinal_head.so")
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let hasMake = path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/make") }
        do {
            if hasMake {
                try FixtureCompiler.run("/usr/bin/env", ["make", "-s", "-C", Repository.cHeadExample.path, "BUILD=\(build)"])
            } else {
                // Without make, the same compiler command the Makefile runs.
                _ = try FixtureCompiler.build(source: Repository.cHeadExample.appendingPathComponent("ordinal_head.c").path,
                                              output: "libordinal_head.so", subdirectory: "c-head")
            }
        } catch {
            XCTFail("building examples/c-head failed: \(error)")
        }
        return library
    }()
}

/// All heads this package ships or documents, loaded once: the three Swift heads and the C example.
let allHeads: PluginRegistry = {
    do {
        let registry = try loadBuiltHeads()
        try registry.load(file: ExampleHead.path)
        return registry
    } catch {
        XCTFail("loading the heads failed: \(error)")
        return PluginRegistry()
    }
}()

/// Runs one head on a fixed packed problem: forward, loss, backward.
struct HeadProblem {
    let head: HeadInstance
    var features: [Float]
    let offsets: [Int64]
    let wordIds: [Int32]?
    let targets: HeadTargets

    /// Encodes each example's label through the plugin, as training data would be.
    init(head: HeadInstance, features: [Float], offsets: [Int64], wordIds: [Int32]?, labels: [JSONValue]) throws {
        self.head = head
        self.features = features
        self.offsets = offsets
        self.wordIds = wordIds
        var parts: [HeadTargets] = []
        for (index, label) in labels.enumerated() {
            let words = wordIds.map { Array($0[Int(offsets[index])..<Int(offsets[index + 1])]) }
            parts.append(try head.encodeTarget(label: label, wordIds: head.layout.granularity == .token ? words : nil))
        }
        targets = try HeadTargets.concatenating(parts)
    }

    /// The loss with the stream replayed from `position` (so dropout draws the same mask).
    func loss(replaying position: RandomStream.Position) throws -> Double {
        head.random.position = position
        let (outputs, _) = try features.withUnsafeBufferPointer {
            try head.forward(features: $0, sequenceOffsets: offsets, wordIds: wordIds, training: true)
        }
        return try head.loss(outputs: outputs, targets: targets).loss
    }

    /// Forward, loss and backward from `position`; parameter gradients are zeroed first.
    func run(replaying position: RandomStream.Position) throws -> (outputs: [Float], loss: Double, outputGradient: [Float], featureGradient: [Float]) {
        head.parameters.zeroGradients()
        head.random.position = position
        return try features.withUnsafeBufferPointer { features in
            let (outputs, saved) = try head.forward(features: features, sequenceOffsets: offsets, wordIds: wordIds, training: true)
            let (loss, outputGradient) = try head.loss(outputs: outputs, targets: targets)
            let featureGradient = try head.backward(saved, features: features, sequenceOffsets: offsets, wordIds: wordIds,
                                                    outputGradient: outputGradient)
            return (outputs, loss, outputGradient, featureGradient)
        }
    }
}

func maxDifference(_ left: [Float], _ right: [Double]) -> Double {
    guard left.count == right.count else { return .infinity } // a length mismatch fails any tolerance
    return zip(left, right).map { abs(Double($0) - $1) }.max() ?? 0
}
