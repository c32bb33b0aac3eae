// The one place that maps checkpoint tensor names onto encoder parameters, plus loading
// weights into the parameter block and saving it back in Hugging Face's layout.

import Foundation
import Kernels
import SafeTensors

/// A checkpoint tensor that was deliberately not loaded, and why.
public struct IgnoredTensor: Sendable, Equatable, CustomStringConvertible {
    public let name: String
    public let reason: String
    public var description: String { "\(name): \(reason)" }
}

public enum CheckpointKeys {
    /// What a checkpoint key holds.
    public enum Disposition: Sendable, Equatable {
        /// The BertModel parameter of this name.
        case parameter(String)
        /// Known, but not an encoder parameter.
        case ignored(reason: String)
    }

    /// Maps a checkpoint key to a parameter name or an ignore reason; nil for a key that fits
    /// neither (an error for the caller to report).
    ///
    /// Accepts BertModel keys ("encoder.layer.0.attention.self.query.weight"), the same under
    /// "bert." (BertFor* task models), and the TF-era LayerNorm.gamma / LayerNorm.beta names.
    public static func disposition(of key: String, in layout: ParameterLayout) -> Disposition? {
        var name = key
        if name.hasPrefix("bert.") { name.removeFirst("bert.".count) }
        if name.hasSuffix("LayerNorm.gamma") { name = String(name.dropLast("gamma".count)) + "weight" }
        if name.hasSuffix("LayerNorm.beta") { name = String(name.dropLast("beta".count)) + "bias" }
        if layout.view(named: name) != nil { return .parameter(name) }
        if name == "embeddings.position_ids" {
            return .ignored(reason: "a buffer of positions 0..max-1; Polyhead numbers positions per sequence")
        }
        if name.hasPrefix("pooler.") {
            return .ignored(reason: "the pooler (tanh dense on [CLS]) is not used; embeddings and heads pool the hidden states themselves")
        }
        if key.hasPrefix("cls.") {
            return .ignored(reason: "a pre-training head (masked LM / next sentence), not part of the encoder")
        }
        return nil
    }
}

extension BertEncoder {
    /// Loads config.json and model.safetensors from a Hugging Face model directory.
    /// - Returns: the encoder and the checkpoint tensors it ignored (for a note to the user).
    /// - Throws: `EncoderError` for a bad config or missing/unexpected/mis-shaped tensors,
    ///   `SafeTensorsError` for a malformed file.
    public static func load(modelDirectory: URL) throws -> (encoder: BertEncoder, ignored: [IgnoredTensor]) {
        let config = try BertConfig.load(contentsOf: modelDirectory.appendingPathComponent("config.json"))
        let weightsURL = modelDirectory.appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            let hint = FileManager.default.fileExists(atPath: modelDirectory.appendingPathComponent("pytorch_model.bin").path)
                ? "only pytorch_model.bin is there: convert it (transformers: model.save_pretrained(dir, safe_serialization=True))"
                : "no weights found"
            throw EncoderError.missingTensors(file: weightsURL.path, names: ["model.safetensors (\(hint))"])
        }
        let encoder = BertEncoder(config: config)
        let ignored = try encoder.loadWeights(from: try SafeTensorsFile(contentsOf: weightsURL), file: weightsURL.path)
        return (encoder, ignored)
    }

    /// Copies every encoder tensor of `checkpoint` into the parameter block.
    /// - Returns: the tensors ignored on purpose (pooler, position_ids, pre-training heads).
    /// - Throws: `EncoderError.unexpectedTensors`, `.missingTensors` (all offending names
    ///   listed at once) or `.shapeMismatch`.
    @discardableResult
    public func loadWeights(from checkpoint: SafeTensorsFile, file: String? = nil) throws -> [IgnoredTensor] {
        let file = file ?? checkpoint.path ?? "model.safetensors"
        var source: [String: String] = [:]  // parameter name -> checkpoint key
        var ignored: [IgnoredTensor] = [], unexpected: [String] = []
        for key in checkpoint.tensorNames {
            switch CheckpointKeys.disposition(of: key, in: layout) {
            case .parameter(let name):
                // "x" and "bert.x" in one file would make the choice arbitrary.
                if let other = source[name] { unexpected.append("\(key) (duplicates \(other))") } else { source[name] = key }
            case .ignored(let reason):
                ignored.append(IgnoredTensor(name: key, reason: reason))
            case nil:
                unexpected.append(key)
            }
        }
        if !unexpected.isEmpty { throw EncoderError.unexpectedTensors(file: file, names: unexpected.sorted()) }
        let missing = layout.views.map(\.name).filter { source[$0] == nil }
        if !missing.isEmpty { throw EncoderError.missingTensors(file: file, names: missing) }
        for view in layout.views {
            let key = source[view.name]!  // present: checked above
            let info = try checkpoint.info(key)
            guard info.shape == view.shape else {
                throw EncoderError.shapeMismatch(file: file, tensor: key, expected: view.shape, found: info.shape)
            }
            try checkpoint.copyFloats(key, into: UnsafeMutableBufferPointer(start: parameters.pointer + view.offset, count: view.count))
        }
        return ignored
    }

    /// Writes the parameter block as a Hugging Face BertModel model.safetensors (BertModel
    /// key names, F32, metadata format "pt"), atomically.
    public func saveWeights(to url: URL) throws {
        try Self.saveWeights(parameters, layout: layout, to: url)
    }

    /// Writes any block with this layout (e.g. parameters being trained) the same way.
    public static func saveWeights(_ block: FloatBuffer, layout: ParameterLayout, to url: URL) throws {
        guard block.count == layout.totalCount else {
            throw EncoderError.bufferSize(what: "parameter block", expected: layout.totalCount, found: block.count)
        }
        var writer = SafeTensorsWriter()
        writer.metadata["format"] = "pt"
        for view in layout.views {
            try writer.add(view.name, shape: view.shape, float32Buffer: UnsafeBufferPointer(start: block.pointer + view.offset, count: view.count))
        }
        try writer.write(to: url)
    }
}
