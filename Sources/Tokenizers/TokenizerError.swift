/// Everything that can go wrong loading or using a tokenizer; each case says what to do.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// A file the tokenizer needs is not there.
    case missingFile(path: String, hint: String)
    /// A file is there but cannot be read or is not what it should be.
    case invalidFile(path: String, detail: String)
    /// The file asks for a component or option this tokenizer does not implement.
    case unsupported(path: String, detail: String)
    /// Truncation cannot reach the requested length with this strategy.
    case truncationImpossible(String)
    /// Arguments that do not fit together (a pair list of another length, ...).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .missingFile(let path, let hint): return "\(path): no such file (\(hint))"
        case .invalidFile(let path, let detail): return "\(path): \(detail)"
        case .unsupported(let path, let detail): return "\(path): \(detail) is not supported by Polyhead's BERT tokenizer"
        case .truncationImpossible(let detail): return "cannot truncate: \(detail)"
        case .invalidArgument(let detail): return detail
        }
    }
}
