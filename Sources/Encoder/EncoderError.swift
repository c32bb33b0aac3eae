// Errors of the Encoder module: each names the file, key or tensor at fault and says what to do.

public enum EncoderError: Error, CustomStringConvertible, Equatable {
    /// config.json could not be read or decoded.
    case unreadableConfig(file: String, reason: String)
    /// A config value Polyhead does not implement.
    case unsupportedConfig(file: String, key: String, value: String, hint: String)
    /// A config value that cannot describe a working model.
    case invalidConfig(file: String, key: String, value: String, reason: String)
    /// Checkpoint tensors the encoder needs but the file lacks.
    case missingTensors(file: String, names: [String])
    /// Checkpoint tensors that belong to no encoder parameter and are not known extras.
    case unexpectedTensors(file: String, names: [String])
    case shapeMismatch(file: String, tensor: String, expected: [Int], found: [Int])
    /// A packed batch that is malformed or does not fit the model.
    case invalidBatch(String)
    /// A gradient or activation buffer of the wrong size.
    case bufferSize(what: String, expected: Int, found: Int)

    public var description: String {
        switch self {
        case let .unreadableConfig(file, reason):
            return "\(file): cannot read the model config (\(reason)); point --model at a Hugging Face model directory with config.json"
        case let .unsupportedConfig(file, key, value, hint):
            return "\(file): \(key) = \(value) is not supported; \(hint)"
        case let .invalidConfig(file, key, value, reason):
            return "\(file): \(key) = \(value) is invalid: \(reason)"
        case let .missingTensors(file, names):
            return "\(file): missing \(names.count) encoder tensor(s): \(Self.list(names)); is this a BERT checkpoint matching config.json?"
        case let .unexpectedTensors(file, names):
            return "\(file): \(names.count) tensor(s) that are not BERT encoder parameters: \(Self.list(names)); is this a BERT checkpoint (model_type \"bert\")?"
        case let .shapeMismatch(file, tensor, expected, found):
            return "\(file): tensor \(tensor) has shape \(found) but config.json implies \(expected); the config and weights do not belong together"
        case let .invalidBatch(reason):
            return "invalid batch: \(reason)"
        case let .bufferSize(what, expected, found):
            return "\(what) holds \(found) floats but \(expected) are needed"
        }
    }

    private static func list(_ names: [String]) -> String {
        names.count <= 12 ? names.joined(separator: ", ") : names.prefix(12).joined(separator: ", ") + ", ... (\(names.count - 12) more)"
    }
}
