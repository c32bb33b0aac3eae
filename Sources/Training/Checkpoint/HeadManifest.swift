import Foundation

/// The plugin ABI version a component was built against, written "major.minor".
public struct ABIVersion: Codable, Equatable, Sendable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// Parses "1.0". Returns nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let major = Int(parts[0]), let minor = Int(parts[1]), major >= 0, minor >= 0 else {
            return nil
        }
        self.init(major: major, minor: minor)
    }

    public var description: String { "\(major).\(minor)" }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let version = ABIVersion(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "ABI version '\(text)' is not \"major.minor\"")
        }
        self = version
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// What a trained head is and what it was trained on: `manifest.json` in a head folder and
/// the `polyhead.head.manifest` metadata of a head bundle. Enough to recreate the plugin
/// instance (plugin id, version, options) and to refuse an encoder it cannot work with.
///
/// ```json
/// {"abi_version": "1.0", "component_kind": "head", "encoder_hidden_size": 384,
///  "encoder_sha256": "53aa51...", "format_version": 1, "label_names": ["neg", "pos"],
///  "options": {"pooling": "cls"}, "plugin_id": "polyhead.classification",
///  "plugin_version": "1.2.0", "task": "sentiment", "task_type": "classification"}
/// ```
public struct HeadManifest: Codable, Equatable, Sendable {
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    /// The task the head was trained for; also its folder name under `heads/`.
    public var task: String
    public var pluginID: String
    public var pluginVersion: String
    public var abiVersion: ABIVersion
    /// "head", "router" or "adapter": the plugin component kind.
    public var componentKind: String
    /// E.g. "classification", "regression", "token_classification".
    public var taskType: String
    /// The options the plugin instance was created with, as given in the run config.
    public var options: ManifestJSON
    /// Class names in output order (classification heads); empty otherwise.
    public var labelNames: [String]
    /// Output names in output order (e.g. regression targets); empty when unnamed.
    public var outputNames: [String]
    /// `hidden_size` of the encoder the head was trained on. Filled in by the checkpoint
    /// writer from the encoder it writes.
    public var encoderHiddenSize: Int
    /// Lower-case hex SHA-256 of that encoder's `model.safetensors`. Filled in by the
    /// checkpoint writer.
    public var encoderSHA256: String

    public init(
        task: String, pluginID: String, pluginVersion: String, abiVersion: ABIVersion,
        componentKind: String = "head", taskType: String, options: ManifestJSON = .object([:]),
        labelNames: [String] = [], outputNames: [String] = [],
        encoderHiddenSize: Int = 0, encoderSHA256: String = ""
    ) {
        self.formatVersion = Self.currentFormatVersion
        self.task = task
        self.pluginID = pluginID
        self.pluginVersion = pluginVersion
        self.abiVersion = abiVersion
        self.componentKind = componentKind
        self.taskType = taskType
        self.options = options
        self.labelNames = labelNames
        self.outputNames = outputNames
        self.encoderHiddenSize = encoderHiddenSize
        self.encoderSHA256 = encoderSHA256
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version"
        case task
        case pluginID = "plugin_id"
        case pluginVersion = "plugin_version"
        case abiVersion = "abi_version"
        case componentKind = "component_kind"
        case taskType = "task_type"
        case options
        case labelNames = "label_names"
        case outputNames = "output_names"
        case encoderHiddenSize = "encoder_hidden_size"
        case encoderSHA256 = "encoder_sha256"
    }

    /// Pretty JSON with sorted keys, the form written to `manifest.json`.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Decodes and checks a manifest. `source` names where it came from in errors.
    /// - Throws: `CheckpointError.invalidHeadManifest` naming `source` and the fault.
    public static func decode(_ data: Data, source: String) throws -> HeadManifest {
        let manifest: HeadManifest
        do {
            manifest = try JSONDecoder().decode(HeadManifest.self, from: data)
        } catch {
            throw CheckpointError.invalidHeadManifest(path: source, reason: describe(error))
        }
        try manifest.validate(source: source)
        return manifest
    }

    /// Checks the fields a loader relies on.
    /// - Throws: `CheckpointError.invalidHeadManifest` naming `source` and the field.
    public func validate(source: String) throws {
        func fail(_ reason: String) -> CheckpointError { .invalidHeadManifest(path: source, reason: reason) }
        guard formatVersion >= 1, formatVersion <= Self.currentFormatVersion else {
            throw fail("format_version \(formatVersion); this polyhead reads 1 to \(Self.currentFormatVersion)")
        }
        do {
            try AtomicDirectory.validate(name: task)
        } catch {
            throw fail("task: \(error)")
        }
        guard !pluginID.isEmpty else { throw fail("plugin_id is empty") }
        guard encoderHiddenSize > 0 else { throw fail("encoder_hidden_size must be positive, found \(encoderHiddenSize)") }
        guard encoderSHA256.count == 64, encoderSHA256.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw fail("encoder_sha256 must be 64 lower-case hex digits, found '\(encoderSHA256)'")
        }
    }
}

/// A readable reason from a decoding error: the coding path and the problem.
func describe(_ error: Error) -> String {
    guard let decodingError = error as? DecodingError else { return "\(error)" }
    func path(_ context: DecodingError.Context) -> String {
        let keys = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
        return keys.isEmpty ? "top level" : keys.joined(separator: ".")
    }
    switch decodingError {
    case let .keyNotFound(key, context):
        return "missing field '\(key.stringValue)' at \(path(context))"
    case let .typeMismatch(_, context), let .valueNotFound(_, context):
        return "wrong type at \(path(context)): \(context.debugDescription)"
    case let .dataCorrupted(context):
        return "\(context.debugDescription) at \(path(context))"
    @unknown default:
        return "\(decodingError)"
    }
}
