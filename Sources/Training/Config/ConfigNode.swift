import Foundation
import Yams

/// A YAML node with the key path that leads to it, so every decoding error can name the
/// file, the line and the key. Decoding walks the node tree by hand instead of going through
/// `Decodable`, whose errors carry neither lines nor the offending text.
struct ConfigNode {
    let node: Node
    let keyPath: String
    let file: String

    var line: Int? { node.mark?.line }
    var location: ConfigLocation { ConfigLocation(file: file, line: line, keyPath: keyPath) }

    func error(_ message: String, hint: String? = nil) -> ConfigError {
        ConfigError(file: file, line: line, keyPath: keyPath, message: message, hint: hint)
    }

    /// A YAML null: `~`, `null` or nothing after the colon.
    var isNull: Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain else { return false }
        return node.null != nil
    }

    /// The value as written, quoted for strings, for "got ..." in messages.
    var shownValue: String {
        switch node {
        case .scalar(let scalar):
            if isNull { return "null" }
            let text = scalar.string.count > 60 ? String(scalar.string.prefix(57)) + "..." : scalar.string
            // Numbers and booleans are shown bare, text in quotes: `got "fast"`, `got 3`.
            let isBare = scalar.style == .plain && (Double(text) != nil || node.bool != nil)
            return isBare ? text : "\"\(text)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    private func expected(_ what: String, hint: String? = nil) -> ConfigError {
        error("expected \(what), got \(shownValue)", hint: hint)
    }

    // MARK: Scalars

    func string() throws -> String {
        guard case .scalar(let scalar) = node, !isNull else { throw expected("a string") }
        return scalar.string
    }

    /// A plain (unquoted) scalar that reads as a number. `2e-5` counts although YAML 1.1
    /// would call it a string: nobody writing a learning rate means text.
    func double() throws -> Double {
        guard case .scalar(let scalar) = node, scalar.style == .plain, !isNull else { throw expected("a number") }
        let text = scalar.string.replacingOccurrences(of: "_", with: "")
        if let value = Double(text), value.isFinite { return value }
        if let value = node.float, value.isFinite { return value }
        throw expected("a number")
    }

    func integer() throws -> Int {
        guard case .scalar(let scalar) = node, scalar.style == .plain, !isNull else { throw expected("an integer") }
        let text = scalar.string.replacingOccurrences(of: "_", with: "")
        if let value = Int(text) { return value }
        // 1e3 or 100.0 are integers written as floats; accept them when exact.
        if let value = Double(text), value.isFinite, value == value.rounded(), abs(value) < 1e15 { return Int(value) }
        throw expected("an integer")
    }

    func bool() throws -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain, let value = node.bool else {
            throw expected("true or false")
        }
        return value
    }

    func positiveInteger() throws -> Int {
        let value = try integer()
        guard value > 0 else { throw error("expected an integer > 0, got \(value)") }
        return value
    }

    func nonNegativeInteger() throws -> Int {
        let value = try integer()
        guard value >= 0 else { throw error("expected an integer >= 0, got \(value)") }
        return value
    }

    func positiveDouble() throws -> Double {
        let value = try double()
        guard value > 0 else { throw error("expected a number > 0, got \(shownValue)") }
        return value
    }

    func nonNegativeDouble() throws -> Double {
        let value = try double()
        guard value >= 0 else { throw error("expected a number >= 0, got \(shownValue)") }
        return value
    }

    /// One of a fixed set of names, with a did-you-mean for near misses.
    func choice<Choice: RawRepresentable & CaseIterable>(_ type: Choice.Type) throws -> Choice where Choice.RawValue == String {
        let names = Choice.allCases.map(\.rawValue)
        guard case .scalar = node, !isNull else { throw expected("one of \(names.joined(separator: ", "))") }
        let text = try string()
        if let value = Choice(rawValue: text) { return value }
        let suggestion = NameSuggestion.didYouMean(text, among: names)
        throw error("unknown value \(shownValue); expected one of \(names.joined(separator: ", "))", hint: suggestion)
    }

    // MARK: Collections

    func sequence() throws -> [ConfigNode] {
        guard case .sequence(let sequence) = node else { throw expected("a list") }
        return sequence.enumerated().map { index, element in
            ConfigNode(node: element, keyPath: "\(keyPath)[\(index)]", file: file)
        }
    }

    /// A list, or a single scalar standing for a one-element list.
    func sequenceOrScalar() throws -> [ConfigNode] {
        if case .scalar = node, !isNull { return [self] }
        return try sequence()
    }

    func mapping() throws -> ConfigMapping {
        guard case .mapping(let mapping) = node else { throw expected("a mapping") }
        var entries: [ConfigMapping.Entry] = []
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                throw ConfigError(file: file, line: keyNode.mark?.line, keyPath: keyPath, message: "keys must be plain names, got a \(keyNode.mapping != nil ? "mapping" : "list") as a key")
            }
            let key = keyScalar.string
            let childPath = keyPath.isEmpty ? key : "\(keyPath).\(key)"
            entries.append(.init(key: key, keyLine: keyNode.mark?.line, value: ConfigNode(node: valueNode, keyPath: childPath, file: file)))
        }
        return ConfigMapping(owner: self, entries: entries)
    }

    /// Converts any YAML subtree into JSON for a plugin: plain scalars are resolved (numbers,
    /// booleans, null), quoted scalars stay strings.
    func jsonNode() throws -> JSONNode {
        switch node {
        case .scalar(let scalar):
            if scalar.style != .plain { return .string(scalar.string) }
            if isNull { return .null }
            if let flag = node.bool { return .bool(flag) }
            let text = scalar.string.replacingOccurrences(of: "_", with: "")
            if let integer = Int(text) { return .integer(integer) }
            if let number = Double(text) ?? node.float {
                guard number.isFinite else {
                    throw error("\(shownValue) is not a finite number; JSON cannot carry it", hint: "quote it to pass the text")
                }
                return .number(number)
            }
            return .string(scalar.string)
        case .sequence:
            return .array(try sequence().map { try $0.jsonNode() })
        case .mapping:
            var object = JSONObject()
            for entry in try mapping().entries { object[entry.key] = try entry.value.jsonNode() }
            return .object(object)
        case .alias:
            throw error("YAML aliases are not supported here", hint: "write the value out")
        }
    }
}

/// A mapping's entries in file order, with the checks every section needs: no unknown keys
/// (with a did-you-mean) and required keys present.
struct ConfigMapping {
    struct Entry {
        let key: String
        let keyLine: Int?
        let value: ConfigNode
    }

    let owner: ConfigNode
    let entries: [Entry]

    var keys: [String] { entries.map(\.key) }

    /// Throws at the first key not in `known`, naming its line and the closest known key.
    func rejectUnknownKeys(_ known: [String]) throws {
        for entry in entries where !known.contains(entry.key) {
            let suggestion = NameSuggestion.didYouMean(entry.key, among: known)
            let knownList = "known keys: " + known.joined(separator: ", ")
            throw ConfigError(file: owner.file, line: entry.keyLine, keyPath: entry.value.keyPath,
                              message: "unknown key '\(entry.key)'",
                              hint: suggestion.map { "\($0) (\(knownList))" } ?? knownList)
        }
    }

    /// The value under `key`, or nil when the key is absent or its value is null (both mean
    /// "use the default").
    subscript(key: String) -> ConfigNode? {
        guard let entry = entries.first(where: { $0.key == key }), !entry.value.isNull else { return nil }
        return entry.value
    }

    /// Whether the key is written at all, even as null.
    func contains(_ key: String) -> Bool { entries.contains { $0.key == key } }

    func required(_ key: String, hint: String? = nil) throws -> ConfigNode {
        if let value = self[key] { return value }
        let path = owner.keyPath.isEmpty ? key : "\(owner.keyPath).\(key)"
        throw ConfigError(file: owner.file, line: owner.line, keyPath: path, message: "required key is missing", hint: hint)
    }

    /// Where `key` is or would be, for errors about a key that is absent.
    func location(of key: String) -> ConfigLocation {
        if let entry = entries.first(where: { $0.key == key }) { return entry.value.location }
        let path = owner.keyPath.isEmpty ? key : "\(owner.keyPath).\(key)"
        return ConfigLocation(file: owner.file, line: owner.line, keyPath: path)
    }
}
