// Adapter hook sites: where LoRA-style adapters add a term to the encoder's linear layers.
//
// Dimension legend: N tokens of the packed batch, C hidden, I intermediate.

/// The six linear layers of one BERT layer that adapters can hook.
public enum EncoderLinear: Int, CaseIterable, Sendable {
    case query, key, value, attentionOutput, intermediate, output

    /// The Hugging Face name inside a layer ("encoder.layer.<i>." + name + ".weight").
    public var name: String {
        switch self {
        case .query: "attention.self.query"
        case .key: "attention.self.key"
        case .value: "attention.self.value"
        case .attentionOutput: "attention.output.dense"
        case .intermediate: "intermediate.dense"
        case .output: "output.dense"
        }
    }

    public func inFeatures(_ config: BertConfig) -> Int { self == .output ? config.intermediateSize : config.hiddenSize }
    public func outFeatures(_ config: BertConfig) -> Int { self == .intermediate ? config.intermediateSize : config.hiddenSize }
}

/// Something that adds a term to chosen encoder linear layers, y = x W^T + b + adapter(x),
/// and back-propagates through it (a LoRA adapter, for one).
///
/// The encoder calls `forward` right after the base layer (before any activation, dropout
/// or residual) and `backward` right after the base layer's backward, on the whole packed
/// batch; an adapter that applies to some tasks only restricts itself to their rows using
/// `batch.sequenceOffsets`. Calls happen on the calling thread, layer by layer.
public protocol EncoderAdapter: AnyObject {
    /// Whether this adapter adds to `linear` of layer `layer`. Asked once per forward.
    func hooks(layer: Int, linear: EncoderLinear) -> Bool

    /// output[N, out] += adapter(input[N, in]).
    /// - Returns: in training, whatever `backward` will need (kept by the encoder's
    ///   activations and handed back); ignored in eval mode.
    func forward(layer: Int, linear: EncoderLinear, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                 rows: Int, batch: PackedBatch, training: Bool) throws -> AnyObject?

    /// inputGradient[N, in] += d(adapter)/d(input) applied to outputGradient[N, out] (nil when
    /// nothing below needs it), and the adapter's own parameter gradients.
    func backward(layer: Int, linear: EncoderLinear, saved: AnyObject?, input: UnsafePointer<Float>,
                  outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?, rows: Int, batch: PackedBatch) throws
}

/// Which adapters hook which (layer, linear), fixed for one forward, plus the states they
/// returned for backward.
struct AdapterPlan {
    let adapters: [EncoderAdapter]
    /// For each layer and linear, the indices of the adapters hooking it.
    let hooked: [[[Int]]]
    /// saved[layer][linear][position in hooked list]
    var saved: [[[AnyObject?]]]

    init(adapters: [EncoderAdapter], layers: Int) {
        self.adapters = adapters
        hooked = (0..<layers).map { layer in
            EncoderLinear.allCases.map { linear in adapters.indices.filter { adapters[$0].hooks(layer: layer, linear: linear) } }
        }
        saved = hooked.map { $0.map { [AnyObject?](repeating: nil, count: $0.count) } }
    }

    static var none: AdapterPlan { AdapterPlan(adapters: [], layers: 0) }

    func adapters(layer: Int, linear: EncoderLinear) -> [Int] {
        layer < hooked.count ? hooked[layer][linear.rawValue] : []
    }

    /// The lowest layer any adapter hooks, or nil.
    var lowestHookedLayer: Int? { hooked.indices.first { !hooked[$0].allSatisfy(\.isEmpty) } }
}
