/// A data file that cannot be used, printed as `data/train.jsonl:12: what is wrong; what to do`.
public struct DataError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file as named in the config.
    public var file: String
    /// 1-based line where the bad row starts; nil for problems with the whole file.
    public var line: Int?
    public var message: String
    public var hint: String?

    public init(file: String, line: Int?, message: String, hint: String? = nil) {
        self.file = file
        self.line = line
        self.message = message
        self.hint = hint
    }

    public var description: String {
        "\(file)\(line.map { ":\($0)" } ?? ""): \(message)\(hint.map { "; \($0)" } ?? "")"
    }
}

/// A malformed row that was skipped because the run allows it (`skip_malformed_rows`).
/// The loader returns every one so the trainer can log the count and the first few.
public struct DataIssue: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String

    public var description: String { "\(file):\(line): \(message)" }
}
