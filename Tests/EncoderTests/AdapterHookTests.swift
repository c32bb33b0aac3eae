import Foundation
import Kernels
import XCTest
@testable import Encoder

/// A LoRA adapter written against the hook protocol: y += s (x A^T) B^T with A [r, in],
/// B [out, r]; gradients kept per hooked site.
final class TestLoRA: EncoderAdapter {
    struct Site: Hashable { let layer: Int, linear: EncoderLinear }
    final class Saved { let hidden: [Float]; init(_ hidden: [Float]) { self.hidden = hidden } }

    let rank = 3, scale: Float = 0.5
    let config: BertConfig
    var a: [Site: [Float]] = [:], b: [Site: [Float]] = [:]
    var da: [Site: [Float]] = [:], db: [Site: [Float]] = [:]

    init(config: BertConfig, sites: [Site], seed: UInt64) {
        self.config = config
        var state = seed
        func value() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int(state >> 40) % 2001 - 1000) / 4000
        }
        for site in sites {
            let inputs = site.linear.inFeatures(config), outputs = site.linear.outFeatures(config)
            a[site] = (0..<(rank * inputs)).map { _ in value() }
            b[site] = (0..<(outputs * rank)).map { _ in value() }
            da[site] = [Float](repeating: 0, count: rank * inputs)
            db[site] = [Float](repeating: 0, count: outputs * rank)
        }
    }

    func hooks(layer: Int, linear: EncoderLinear) -> Bool { a[Site(layer: layer, linear: linear)] != nil }

    func forward(layer: Int, linear: EncoderLinear, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                 rows: Int, batch: PackedBatch, training: Bool) throws -> AnyObject? {
        let site = Site(layer: layer, linear: linear), inputs = linear.inFeatures(config), outputs = linear.outFeatures(config)
        var hidden = [Float](repeating: 0, count: rows * rank)
        gemm(&hidden, ldc: rank, input, lda: inputs, transposeA: false, a[site]!, ldb: inputs, transposeB: true, m: rows, n: rank, k: inputs)
        gemm(output, ldc: outputs, hidden, lda: rank, transposeA: false, b[site]!, ldb: rank, transposeB: true,
             m: rows, n: outputs, k: rank, alpha: scale, beta: 1)
        return training ? Saved(hidden) : nil
    }

    func backward(layer: Int, linear: EncoderLinear, saved: AnyObject?, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                  inputGradient: UnsafeMutablePointer<Float>?, rows: Int, batch: PackedBatch) throws {
        let site = Site(layer: layer, linear: linear), inputs = linear.inFeatures(config), outputs = linear.outFeatures(config)
        guard let hidden = (saved as? Saved)?.hidden else { throw FixtureError(description: "no saved state for \(site)") }
        // dB += s dy^T h;  dh = s dy B;  dA += dh^T x;  dx += dh A
        gemm(&db[site]!, ldc: rank, outputGradient, lda: outputs, transposeA: true, hidden, ldb: rank, transposeB: false,
             m: outputs, n: rank, k: rows, alpha: scale, beta: 1)
        var dHidden = [Float](repeating: 0, count: rows * rank)
        gemm(&dHidden, ldc: rank, outputGradient, lda: outputs, transposeA: false, b[site]!, ldb: rank, transposeB: false,
             m: rows, n: rank, k: outputs, alpha: scale)
        gemm(&da[site]!, ldc: inputs, dHidden, lda: rank, transposeA: true, input, ldb: inputs, transposeB: false, m: rank, n: inputs, k: rows, beta: 1)
        if let inputGradient {
            gemm(inputGradient, ldc: inputs, dHidden, lda: rank, transposeA: false, a[site]!, ldb: inputs, transposeB: false,
                 m: rows, n: inputs, k: rank, beta: 1)
        }
    }

    /// W + s B A for `site`: the weight a model without the adapter would need.
    func merged(_ weight: [Float], _ site: Site) -> [Float] {
        let inputs = site.linear.inFeatures(config), outputs = site.linear.outFeatures(config)
        var result = weight
        gemm(&result, ldc: inputs, b[site]!, lda: rank, transposeA: false, a[site]!, ldb: inputs, transposeB: false,
             m: outputs, n: inputs, k: rank, alpha: scale, beta: 1)
        return result
    }
}

final class AdapterHookTests: XCTestCase {
    let sites: [TestLoRA.Site] = [
        .init(layer: 0, linear: .value), .init(layer: 0, linear: .output),
        .init(layer: 1, linear: .query), .init(layer: 1, linear: .key), .init(layer: 1, linear: .attentionOutput), .init(layer: 1, linear: .intermediate),
    ]

    /// The tiny model, a LoRA on `sites`, and the same model with the LoRA merged into its weights.
    func models(sites: [TestLoRA.Site]) throws -> (BertEncoder, TestLoRA, BertEncoder) {
        let (encoder, _) = try BertEncoder.load(modelDirectory: Fixtures.tinyModel)
        let lora = TestLoRA(config: encoder.config, sites: sites, seed: 5)
        let merged = BertEncoder(config: encoder.config)
        merged.parameters.pointer.update(from: encoder.parameters.pointer, count: encoder.layout.totalCount)
        for site in sites {
            let name = "encoder.layer.\(site.layer).\(site.linear.name).weight"
            let weight = merged.parameter(name)!
            _ = weight.update(fromContentsOf: lora.merged(Array(weight), site))
        }
        return (encoder, lora, merged)
    }

    func testHookedForwardEqualsMergedWeights() throws {
        let (encoder, lora, merged) = try models(sites: sites)
        let (batch, _) = try Fixtures.packPadded(try Fixtures.file("tiny-bert-expected.safetensors"))
        let reference = try merged.infer(batch)
        XCTAssertGreaterThan(zip(try encoder.infer(batch), reference).map { abs($0 - $1) }.max() ?? 0, 1e-3, "the adapter changes the output")
        compare(try encoder.infer(batch, adapters: [lora]), reference, absolute: 2e-5, relative: 0, "eval with adapter")
        let activations = EncoderActivations()
        compare(Array(try encoder.forward(batch, activations: activations, dropout: .disabled, adapters: [lora])), reference,
                absolute: 2e-5, relative: 0, "training forward with adapter")
    }

    /// With the base frozen, the adapter's gradients follow from the merged model's weight
    /// gradients: dB = s dW' A^T and dA = s B^T dW'; the input gradient reaches layer 0.
    func testAdapterGradientsThroughFrozenBase() throws {
        let (encoder, lora, merged) = try models(sites: sites)
        let expected = try Fixtures.file("tiny-bert-expected.safetensors")
        let (batch, keep) = try Fixtures.packPadded(expected)
        let upstream = unpad(try expected.floats("output_gradient"), keep: keep, channels: 32)

        let activations = EncoderActivations()
        try encoder.forward(batch, activations: activations, dropout: .disabled, adapters: [lora])
        let frozenGradients = FloatBuffer(count: encoder.layout.totalCount)
        let summary = try encoder.backward(outputGradient: upstream, activations: activations, gradients: frozenGradients, trainable: .none(encoder.layout))
        XCTAssertEqual(summary.lowestStage, 0, "the pass reaches the lowest hooked layer")
        XCTAssertTrue(frozenGradients.toArray().allSatisfy { $0 == 0 }, "a frozen base gets no gradient")

        let mergedActivations = EncoderActivations()
        try merged.forward(batch, activations: mergedActivations, dropout: .disabled)
        let mergedGradients = FloatBuffer(count: merged.layout.totalCount)
        try merged.backward(outputGradient: upstream, activations: mergedActivations, gradients: mergedGradients, trainable: .all(merged.layout))
        for site in sites {
            let inputs = site.linear.inFeatures(encoder.config), outputs = site.linear.outFeatures(encoder.config)
            let view = merged.layout.view(named: "encoder.layer.\(site.layer).\(site.linear.name).weight")!
            let dWeight = Array(mergedGradients.buffer[view.range])
            var expectedB = [Float](repeating: 0, count: outputs * lora.rank), expectedA = [Float](repeating: 0, count: lora.rank * inputs)
            gemm(&expectedB, ldc: lora.rank, dWeight, lda: inputs, transposeA: false, lora.a[site]!, ldb: inputs, transposeB: true,
                 m: outputs, n: lora.rank, k: inputs, alpha: lora.scale)
            gemm(&expectedA, ldc: inputs, lora.b[site]!, lda: lora.rank, transposeA: true, dWeight, ldb: inputs, transposeB: false,
                 m: lora.rank, n: inputs, k: outputs, alpha: lora.scale)
            let scaleB = Double(expectedB.map(abs).max() ?? 0), scaleA = Double(expectedA.map(abs).max() ?? 0)
            compare(lora.db[site]!, expectedB, absolute: 1e-5 * scaleB, relative: 1e-3, "dB \(site)")
            compare(lora.da[site]!, expectedA, absolute: 1e-5 * scaleA, relative: 1e-3, "dA \(site)")
        }
    }

    func testBackwardStopsAtTheLowestHookedLayer() throws {
        let (encoder, lora, _) = try models(sites: [.init(layer: 1, linear: .output)])
        let (batch, _) = try Fixtures.packPadded(try Fixtures.file("tiny-bert-expected.safetensors"))
        let activations = EncoderActivations()
        let output = Array(try encoder.forward(batch, activations: activations, dropout: .disabled, adapters: [lora]))
        let summary = try encoder.backward(outputGradient: output, activations: activations,
                                           gradients: FloatBuffer(count: encoder.layout.totalCount), trainable: .none(encoder.layout))
        XCTAssertEqual(summary.lowestStage, 1)
        XCTAssertGreaterThan(lora.db[.init(layer: 1, linear: .output)]!.map(abs).max() ?? 0, 0)
    }
}
