import CPolyhead
import Foundation
import XCTest
@testable import PluginHost

/// The plugin boundary's share of a training step. The boundary is measured with a head
/// that does nothing (the C fixture's "fixture.null"): what remains is the host's side of
/// every call (views, shape and finiteness checks, locks, the error sink) and the indirect
/// calls. It is compared with the real classification head on the same batch and, with
/// POLYHEAD_BENCHMARK=1, with the SGEMM work of one all-MiniLM-L6-v2 training step measured
/// on this machine (a lower bound on the step: its matrix products alone).
final class BoundaryOverheadTests: XCTestCase {
    static let sequences = 16, tokensPerSequence = 128, hidden = 384

    private func secondsPerStep(_ head: HeadInstance, features: [Float], offsets: [Int64], targets: HeadTargets, steps: Int) throws -> Double {
        var featureGradient = [Float](repeating: 0, count: features.count)
        func step() throws {
            try features.withUnsafeBufferPointer { features in
                let (outputs, saved) = try head.forward(features: features, sequenceOffsets: offsets, training: true)
                let (_, outputGradient) = try head.loss(outputs: outputs, targets: targets)
                try featureGradient.withUnsafeMutableBufferPointer {
                    try head.backward(saved, features: features, sequenceOffsets: offsets, outputGradient: outputGradient, featureGradient: $0)
                }
            } // saved state released here
        }
        for _ in 0..<10 { try step() }
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<steps { try step() }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(steps)
    }

    func testBoundaryShareOfATrainingStep() throws {
        let registry = PluginRegistry()
        try registry.load(file: try FixtureCompiler.fixture("fixture_plugin.c", output: "libfixture.so"))
        let tokens = Self.sequences * Self.tokensPerSequence
        var random = TestRandom(seed: 1)
        let features = random.normals(tokens * Self.hidden)
        let offsets = (0...Self.sequences).map { Int64($0 * Self.tokensPerSequence) }

        let null = try HeadInstance(component: registry.component(id: "fixture.null"), name: "null", configJSON: "{}", inputWidth: Self.hidden)
        let nullTargets = try HeadTargets.concatenating((0..<Self.sequences).map { _ in try null.encodeTarget(label: .number(0)) })
        let boundary = try secondsPerStep(null, features: features, offsets: offsets, targets: nullTargets, steps: 200)

        let classification = try HeadInstance(component: allHeads.component(id: "polyhead.classification"), name: "topics",
                                              configJSON: #"{"labels": ["a", "b", "c", "d"], "pooling": "cls", "dropout": 0.1}"#, inputWidth: Self.hidden)
        let labels = ["a", "b", "c", "d"]
        let targets = try HeadTargets.concatenating((0..<Self.sequences).map { try classification.encodeTarget(label: .string(labels[$0 % 4])) })
        let head = try secondsPerStep(classification, features: features, offsets: offsets, targets: targets, steps: 100)

        var report = String(format: "boundary (null head): %.1f us per step (forward + loss + backward + release, %d x %d tokens, width %d); classification head (CLS, 4 classes): %.1f us per step",
                            boundary * 1e6, Self.sequences, Self.tokensPerSequence, Self.hidden, head * 1e6)
        if ProcessInfo.processInfo.environment["POLYHEAD_BENCHMARK"] == "1" {
            let floor = gemmFloorOfMiniLMStep(tokens: tokens)
            report += String(format: "; MiniLM-L6 step SGEMM floor %.2f s; boundary share <= %.4f%%, head share <= %.3f%%",
                             floor, 100 * boundary / floor, 100 * head / floor)
        }
        print(report)
        // Generous: a step of the smallest real encoder takes seconds here, so even 2 ms is <0.1%.
        XCTAssertLessThan(boundary, 2e-3, report)
    }

    /// Seconds for the matrix products of one MiniLM-L6 training step over `tokens` tokens:
    /// one layer's forward GEMMs (Q, K, V, attention output, FFN up and down) timed through
    /// the host's SGEMM service, times 6 layers, times 3 (backward costs two forwards).
    private func gemmFloorOfMiniLMStep(tokens: Int) -> Double {
        let hidden = Self.hidden, intermediate = 4 * hidden
        var random = TestRandom(seed: 2)
        let x = random.normals(tokens * intermediate)
        let w = random.normals(intermediate * hidden)
        var y = [Float](repeating: 0, count: tokens * intermediate)
        let sgemm = HostTables.services.pointee.sgemm!
        func layer() {
            x.withUnsafeBufferPointer { x in
                w.withUnsafeBufferPointer { w in
                    y.withUnsafeMutableBufferPointer { y in
                        for _ in 0..<4 { // Q, K, V, attention output: [T, H] x [H, H]
                            sgemm(PH_NO_TRANSPOSE, PH_TRANSPOSE, Int64(tokens), Int64(hidden), Int64(hidden), 1, x.baseAddress, Int64(hidden), w.baseAddress, Int64(hidden), 0, y.baseAddress, Int64(hidden))
                        }
                        sgemm(PH_NO_TRANSPOSE, PH_TRANSPOSE, Int64(tokens), Int64(intermediate), Int64(hidden), 1, x.baseAddress, Int64(hidden), w.baseAddress, Int64(hidden), 0, y.baseAddress, Int64(intermediate))
                        sgemm(PH_NO_TRANSPOSE, PH_TRANSPOSE, Int64(tokens), Int64(hidden), Int64(intermediate), 1, x.baseAddress, Int64(intermediate), w.baseAddress, Int64(intermediate), 0, y.baseAddress, Int64(hidden))
                    }
                }
            }
        }
        layer()
        let repeats = 3
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<repeats { layer() }
        let perLayer = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(repeats)
        return perLayer * 6 * 3
    }
}
