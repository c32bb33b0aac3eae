import Foundation
import Tokenizers

/// Turns a task's rows into token ids the way the run config asks: single texts, pairs, or
/// pre-split words whose labels must line up with word pieces.
public struct TaskTokenization {
    public let tokenizer: BertTokenizer
    public let maxLength: Int
    /// Identifies the vocabulary in the tokenisation cache key.
    public let vocabularyChecksum: String

    public init(tokenizer: BertTokenizer, modelDirectory: URL, maxLength: Int) throws {
        self.tokenizer = tokenizer
        self.maxLength = maxLength
        let vocabularyFile = ["tokenizer.json", "vocab.txt"]
            .map { modelDirectory.appendingPathComponent($0) }
            .first { FileManager.default.fileExists(atPath: $0.path) }
        guard let vocabularyFile, let data = FileManager.default.contents(atPath: vocabularyFile.path) else {
            throw TrainerError.missingFile(modelDirectory.appendingPathComponent("vocab.txt").path, "the encoder's vocabulary")
        }
        vocabularyChecksum = SHA256.hash(data).description
    }

    /// One row's ids, token type ids and word ids (-1 for special tokens).
    ///
    /// Pre-split words are joined by single spaces and each word piece is assigned the word its
    /// character offset falls in: BERT's pre-tokenizer never lets a piece span a space, so this
    /// equals Hugging Face's `is_split_into_words=True` word ids.
    public func tokenize(_ input: TokenizerInput) throws -> TokenizedExample {
        if let words = input.words {
            let text = words.joined(separator: " ")
            let encoding = try tokenizer.encode(text, maxLength: maxLength)
            var wordStarts: [Int] = []  // scalar offset where each word begins
            var position = 0
            for word in words {
                wordStarts.append(position)
                position += word.unicodeScalars.count + 1
            }
            let wordIds = zip(encoding.offsets, encoding.wordIds).map { offset, word -> Int32 in
                guard word != nil, !offset.isEmpty else { return -1 }
                var low = 0, high = wordStarts.count - 1
                while low < high {  // last word starting at or before the piece
                    let middle = (low + high + 1) / 2
                    if wordStarts[middle] <= offset.lowerBound { low = middle } else { high = middle - 1 }
                }
                return Int32(low)
            }
            return TokenizedExample(ids: encoding.ids.map(Int32.init), typeIds: encoding.typeIds.map(Int32.init), wordIds: wordIds)
        }
        let encoding = try tokenizer.encode(input.text, pair: input.textPair, maxLength: maxLength)
        return TokenizedExample(ids: encoding.ids.map(Int32.init), typeIds: encoding.typeIds.map(Int32.init),
                                wordIds: encoding.wordIds.map { Int32($0 ?? -1) })
    }
}

/// Tokenises task splits through the tokenisation cache into `PreparedSplit`s; the trainer
/// and `polyhead eval` prepare their data through here.
public struct SplitPreparer {
    public let tokenization: TaskTokenization
    public let cache: TokenizationCache

    /// - Parameters:
    ///   - modelDirectory: holds the tokenizer files (its vocabulary keys the cache).
    ///   - maxLength: the run's `max_length`.
    ///   - cacheDirectory: the run's `cache_directory`.
    public init(tokenizer: BertTokenizer, modelDirectory: URL, maxLength: Int, cacheDirectory: String) throws {
        tokenization = try TaskTokenization(tokenizer: tokenizer, modelDirectory: modelDirectory, maxLength: maxLength)
        cache = TokenizationCache(directory: cacheDirectory)
    }

    /// The split's examples with their token ids, read from the cache when it matches.
    public func prepare(_ split: TaskDataset, fields: FieldNames) throws -> PreparedSplit {
        let (tokens, _) = try cache.tokenized(split, fields: fields, vocabularyChecksum: tokenization.vocabularyChecksum,
                                              maxLength: tokenization.maxLength, tokenize: tokenization.tokenize)
        return PreparedSplit(examples: split.examples, tokens: tokens)
    }
}
