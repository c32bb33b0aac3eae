/// A run config that cannot be used, pointing at the file, line and key path at fault.
///
/// Printed as `run.yaml:14: training.optimizer.lr: expected a number, got "fast"`, followed
/// by what to do when there is something specific to suggest.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The config file as it was named when loading it.
    public var file: String
    /// 1-based line of the offending key or value; nil when the problem has no single line
    /// (an empty file, a file that cannot be read).
    public var line: Int?
    /// Dotted path of the key at fault, `tasks.supersense.labels[3]`; empty for the root.
    public var keyPath: String
    public var message: String
    /// What to change, when there is something specific to suggest.
    public var hint: String?

    public init(file: String, line: Int?, keyPath: String, message: String, hint: String? = nil) {
        self.file = file
        self.line = line
        self.keyPath = keyPath
        self.message = message
        self.hint = hint
    }

    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        text += ": "
        if !keyPath.isEmpty { text += keyPath + ": " }
        text += message
        if let hint { text += "; " + hint }
        return text
    }
}

/// Where a config value was written, kept on decoded settings whose validity can only be
/// checked later (an explicit class weight naming a label that the data must confirm).
public struct ConfigLocation: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var keyPath: String

    public init(file: String, line: Int?, keyPath: String) {
        self.file = file
        self.line = line
        self.keyPath = keyPath
    }

    public var description: String {
        "\(file)\(line.map { ":\($0)" } ?? ""): \(keyPath)"
    }

    /// An error at this location.
    public func error(_ message: String, hint: String? = nil) -> ConfigError {
        ConfigError(file: file, line: line, keyPath: keyPath, message: message, hint: hint)
    }
}

/// Suggestions for misspelt names: the closest candidate within a small edit distance.
enum NameSuggestion {
    /// The candidate nearest to `name` when it is close enough to be a likely typo: at most
    /// one edit for short names, a third of the length for longer ones; case is ignored.
    static func closest(to name: String, among candidates: [String]) -> String? {
        let lowered = Array(name.lowercased())
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            let distance = editDistance(lowered, Array(candidate.lowercased()))
            if distance < (best?.distance ?? Int.max) { best = (candidate, distance) }
        }
        guard let best else { return nil }
        let allowed = max(1, min(lowered.count, best.candidate.count) / 3)
        return best.distance <= allowed ? best.candidate : nil
    }

    /// "did you mean 'x'?" or nil.
    static func didYouMean(_ name: String, among candidates: [String]) -> String? {
        closest(to: name, among: candidates).map { "did you mean '\($0)'?" }
    }

    /// Levenshtein distance with adjacent transpositions counted as one edit.
    static func editDistance(_ first: [Character], _ second: [Character]) -> Int {
        if first.isEmpty { return second.count }
        if second.isEmpty { return first.count }
        var previousPrevious = [Int](repeating: 0, count: second.count + 1)
        var previous = Array(0...second.count)
        var current = [Int](repeating: 0, count: second.count + 1)
        for i in 1...first.count {
            current[0] = i
            for j in 1...second.count {
                let cost = first[i - 1] == second[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, first[i - 1] == second[j - 2], first[i - 2] == second[j - 1] {
                    current[j] = min(current[j], previousPrevious[j - 2] + 1)
                }
            }
            (previousPrevious, previous, current) = (previous, current, previousPrevious)
        }
        return previous[second.count]
    }
}
