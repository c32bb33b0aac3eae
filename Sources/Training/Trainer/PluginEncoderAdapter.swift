import Encoder
import Foundation
import PluginHost

/// Lets an adapter plugin instance (`AdapterInstance`, e.g. polyhead.lora) hook the encoder:
/// the encoder's (layer, linear) is the instance's site `layer * 6 + linear`, the order of
/// `PEFTAdapterFormat.bertLinearSites`.
public final class PluginEncoderAdapter: EncoderAdapter {
    public let instance: AdapterInstance
    private let hooked: Set<Int>

    public init(_ instance: AdapterInstance) {
        self.instance = instance
        hooked = Set(instance.hookedSites)
    }

    /// The encoder's linear layers as adapter sites, in the order `site(layer:linear:)` indexes.
    public static func sites(for config: BertConfig) -> [LinearSite] {
        let sites = PEFTAdapterFormat.bertLinearSites(layerCount: config.numHiddenLayers, hiddenSize: config.hiddenSize,
                                                      intermediateSize: config.intermediateSize)
        precondition(sites.count == config.numHiddenLayers * EncoderLinear.allCases.count)
        for layer in 0..<config.numHiddenLayers {
            for linear in EncoderLinear.allCases {
                let site = sites[site(layer: layer, linear: linear)]
                precondition(site.name == "encoder.layer.\(layer).\(linear.name)" && site.inFeatures == linear.inFeatures(config)
                             && site.outFeatures == linear.outFeatures(config), "adapter sites out of the encoder's order")
            }
        }
        return sites
    }

    static func site(layer: Int, linear: EncoderLinear) -> Int { layer * EncoderLinear.allCases.count + linear.rawValue }

    public func hooks(layer: Int, linear: EncoderLinear) -> Bool { hooked.contains(Self.site(layer: layer, linear: linear)) }

    // The encoder's buffers go to the plugin as they are (no copies): the adapter adds into
    // `output` and `inputGradient` in place.
    public func forward(layer: Int, linear: EncoderLinear, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        rows: Int, batch: PackedBatch, training: Bool) throws -> AnyObject? {
        let site = Self.site(layer: layer, linear: linear), shape = instance.sites[site]
        return try instance.forward(site: site, x: UnsafeBufferPointer(start: input, count: rows * shape.inFeatures),
                                    y: UnsafeMutableBufferPointer(start: output, count: rows * shape.outFeatures), training: training)
    }

    public func backward(layer: Int, linear: EncoderLinear, saved: AnyObject?, input: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?, rows: Int, batch: PackedBatch) throws {
        let site = Self.site(layer: layer, linear: linear), shape = instance.sites[site]
        let x = UnsafeBufferPointer(start: input, count: rows * shape.inFeatures)
        let dy = UnsafeBufferPointer(start: outputGradient, count: rows * shape.outFeatures)
        if let inputGradient {
            try instance.backward(saved as? SavedState, site: site, x: x, outputGradient: dy,
                                  inputGradient: UnsafeMutableBufferPointer(start: inputGradient, count: rows * shape.inFeatures))
        } else {
            // Nothing below needs d(x): the plugin still writes it, into scratch.
            var scratch = [Float](repeating: 0, count: rows * shape.inFeatures)
            try scratch.withUnsafeMutableBufferPointer {
                try instance.backward(saved as? SavedState, site: site, x: x, outputGradient: dy, inputGradient: $0)
            }
        }
    }
}
