import Encoder
import Foundation
import PluginHost

/// One split of one task, tokenised.
public struct PreparedSplit: Sendable {
    public let examples: [TaskExample]
    public let tokens: TokenizedDataset
}

/// A task's data ready for training: tokenised splits and, for training, each example's
/// target rows as its head encodes them (encoded once, before the first step).
public struct PreparedTask {
    public let data: TaskData
    public let train: PreparedSplit
    public let dev: PreparedSplit?
    public let test: PreparedSplit?
    public let trainTargets: [HeadTargets]

    public func split(_ split: DataSplit) -> PreparedSplit? {
        switch split {
        case .train: return train
        case .dev: return dev
        case .test: return test
        }
    }
}

/// Several tasks' examples packed into one encoder batch, grouped by task so that each task's
/// hidden states are one contiguous slice: heads read their rows without a copy.
struct AssembledBatch {
    struct Part {
        let task: Int
        let examples: [Int]
        /// Rows of the packed hidden states that belong to this task.
        let tokenRange: Range<Int>
        /// (examples + 1) offsets relative to `tokenRange.lowerBound`.
        let sequenceOffsets: [Int64]
        /// Word index per token (-1 for special tokens); token-level heads only.
        let wordIds: [Int32]?
    }
    let packed: PackedBatch
    let parts: [Part]

    init(parts requested: [(task: Int, examples: [Int], tokens: TokenizedDataset, tokenLevel: Bool)]) throws {
        var ids: [Int32] = [], typeIds: [Int32] = [], offsets = [0]
        var parts: [Part] = []
        for request in requested {
            let start = ids.count
            var relative: [Int64] = [0]
            var wordIds: [Int32] = []
            for example in request.examples {
                let range = request.tokens.offsets[example]..<request.tokens.offsets[example + 1]
                ids += request.tokens.ids[range]
                typeIds += request.tokens.typeIds[range]
                if request.tokenLevel { wordIds += request.tokens.wordIds[range] }
                offsets.append(ids.count)
                relative.append(Int64(ids.count - start))
            }
            parts.append(Part(task: request.task, examples: request.examples, tokenRange: start..<ids.count,
                              sequenceOffsets: relative, wordIds: request.tokenLevel ? wordIds : nil))
        }
        packed = try PackedBatch(tokenIds: ids, tokenTypeIds: typeIds, sequenceOffsets: offsets)
        self.parts = parts
    }
}

/// Reads a head's `decode` JSON back as a label the metrics understand. Heads describe a
/// prediction as {"label": name}, {"labels": [names]}, {"value": x}, {"values": [x, ...]}
/// or {name: x, ...} for named regression outputs (docs/abi.md).
enum PredictionReader {
    static func label(from json: String, head: TaskHead) throws -> LabelValue {
        let value = try JSONValue(parsing: json, source: "\(head.task) prediction")
        func classIndex(_ name: JSONValue) throws -> Int {
            guard case .string(let text) = name, let index = head.labelNames.firstIndex(of: text) else {
                throw TrainerError.prediction(task: head.task, message: "\(name.text) is not one of its labels")
            }
            return index
        }
        guard case .object(let fields) = value else {
            throw TrainerError.prediction(task: head.task, message: "expected a JSON object, got \(json.prefix(80))")
        }
        switch head.type {
        case .classification:
            guard let label = fields["label"] else { throw TrainerError.prediction(task: head.task, message: "no \"label\" in \(json.prefix(80))") }
            return .classIndex(try classIndex(label))
        case .multiLabel:
            guard case .array(let names)? = fields["labels"] else { throw TrainerError.prediction(task: head.task, message: "no \"labels\" list") }
            return .classIndices(try names.map(classIndex).sorted())
        case .tokenClassification:
            guard case .array(let names)? = fields["labels"] else { throw TrainerError.prediction(task: head.task, message: "no \"labels\" list") }
            // A word without a prediction (null: cut off by max_length, or no pieces) counts as
            // the outside tag "O" (the first class when there is none): it costs recall and
            // never invents an entity.
            let missing = head.labelNames.firstIndex(of: "O") ?? 0
            return .wordClasses(try names.map { $0 == .null ? missing : try classIndex($0) })
        case .regression:
            if case .number(let number)? = fields["value"] { return .values([Float(number)]) }
            if case .array(let numbers)? = fields["values"] {
                return .values(try numbers.map { item in
                    guard case .number(let number) = item else { throw TrainerError.prediction(task: head.task, message: "non-number in \"values\"") }
                    return Float(number)
                })
            }
            throw TrainerError.prediction(task: head.task, message: "no \"value\" or \"values\" in \(json.prefix(80))")
        }
    }
}
