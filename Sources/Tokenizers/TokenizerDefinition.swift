import Foundation

/// Everything a BERT tokenizer is made of, read from tokenizer.json or from vocab.txt +
/// tokenizer_config.json.
struct TokenizerDefinition {
    /// Model vocabulary in file order; a token written twice keeps its last id, as in the reference.
    var vocabulary: [(token: String, id: Int)]
    var unknownToken: String
    var continuingSubwordPrefix = "##"
    var maxInputCharactersPerWord = 100
    var normalizer = NormalizerOptions()
    var addedTokens: [AddedToken] = []
    var template = PostTemplate.bert(clsId: nil, sepId: nil)
    /// `nil`: no decoder, tokens are joined with spaces.
    var decoder: DecoderOptions? = DecoderOptions()
    /// Names of the special tokens, for `padId` and friends.
    var specialTokenNames = SpecialTokenNames()
    var modelMaxLength: Int?
}

extension TokenizerDefinition {
    /// The id of `token` in the model vocabulary (the last one when repeated).
    func id(of token: String) -> Int? {
        vocabulary.last { sameToken($0.token, token) }?.id
    }
}

/// Token equality scalar by scalar: Swift's `==` on strings is canonical equivalence, under
/// which "é" and "e\u{301}" are equal although they are different vocabulary entries.
func sameToken(_ left: String, _ right: String) -> Bool {
    left.utf8.elementsEqual(right.utf8)
}

struct DecoderOptions: Equatable {
    var prefix = "##"
    /// Remove the space before . , ! ? and in English contractions.
    var cleanup = true
}

struct SpecialTokenNames {
    var pad = "[PAD]"
    var cls = "[CLS]"
    var sep = "[SEP]"
    var mask = "[MASK]"
}

/// The post-processor: where special tokens go around one text or a pair, and the type id
/// of each part (Hugging Face's TemplateProcessing; BertProcessing is the same template).
struct PostTemplate: Equatable {
    enum Piece: Equatable {
        case special(ids: [Int], typeId: Int)
        /// 0 for the first text ("$A"), 1 for the second ("$B").
        case sequence(index: Int, typeId: Int)
    }
    var single: [Piece]
    var pair: [Piece]

    /// `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]` with type ids 0 then 1; no special tokens
    /// at all when the ids are unknown.
    static func bert(clsId: Int?, sepId: Int?) -> PostTemplate {
        guard let clsId, let sepId else {
            return PostTemplate(single: [.sequence(index: 0, typeId: 0)],
                                pair: [.sequence(index: 0, typeId: 0), .sequence(index: 1, typeId: 1)])
        }
        return PostTemplate(
            single: [.special(ids: [clsId], typeId: 0), .sequence(index: 0, typeId: 0), .special(ids: [sepId], typeId: 0)],
            pair: [.special(ids: [clsId], typeId: 0), .sequence(index: 0, typeId: 0), .special(ids: [sepId], typeId: 0),
                   .sequence(index: 1, typeId: 1), .special(ids: [sepId], typeId: 1)])
    }

    /// How many tokens the template adds around one text or a pair.
    func addedCount(pair isPair: Bool) -> Int {
        (isPair ? pair : single).reduce(0) { total, piece in
            if case .special(let ids, _) = piece { return total + ids.count }
            return total
        }
    }
}

// MARK: - Reading JSON with errors that name the file and the key

private struct JSONObject {
    let value: JSONValue
    let path: String
    let keyPath: String

    func location(_ key: String) -> String { keyPath.isEmpty ? "\"\(key)\"" : "\"\(keyPath).\(key)\"" }

    /// The value under `key`, nil when absent or null.
    func member(_ key: String) -> JSONValue? {
        guard let found = value[key], !found.isNull else { return nil }
        return found
    }

    var members: [(key: String, value: JSONValue)] {
        if case .object(let members) = value { return members }
        return []
    }

    func object(_ key: String) throws(TokenizerError) -> JSONObject? {
        guard let found = member(key) else { return nil }
        guard case .object = found else {
            throw .invalidFile(path: path, detail: "\(location(key)) should be a JSON object")
        }
        return JSONObject(value: found, path: path, keyPath: keyPath.isEmpty ? key : "\(keyPath).\(key)")
    }

    func array(_ key: String) throws(TokenizerError) -> [JSONValue]? {
        guard let found = member(key) else { return nil }
        guard case .array(let elements) = found else {
            throw .invalidFile(path: path, detail: "\(location(key)) should be a JSON array")
        }
        return elements
    }

    func string(_ key: String) throws(TokenizerError) -> String? {
        guard let found = member(key) else { return nil }
        guard case .string(let text) = found else {
            throw .invalidFile(path: path, detail: "\(location(key)) should be a string")
        }
        return text
    }

    func bool(_ key: String) throws(TokenizerError) -> Bool? {
        guard let found = member(key) else { return nil }
        guard case .bool(let flag) = found else {
            throw .invalidFile(path: path, detail: "\(location(key)) should be true or false")
        }
        return flag
    }

    func int(_ key: String) throws(TokenizerError) -> Int? {
        guard let found = member(key) else { return nil }
        guard let number = Self.integer(found) else {
            throw .invalidFile(path: path, detail: "\(location(key)) should be an integer")
        }
        return number
    }

    static func integer(_ value: JSONValue) -> Int? {
        guard case .number(let number) = value, number.rounded() == number, abs(number) < 1e15 else { return nil }
        return Int(number)
    }

    /// A special token written either as a string or as `{"content": ...}` (newer configs).
    func tokenName(_ key: String) throws(TokenizerError) -> String? {
        guard let found = member(key) else { return nil }
        if case .string(let name) = found { return name }
        if case .string(let content)? = found["content"] { return content }
        throw .invalidFile(path: path, detail: "\(location(key)) should be a string or {\"content\": ...}")
    }

    func addedToken(id: Int, content: String) throws(TokenizerError) -> AddedToken {
        AddedToken(id: id, content: content, special: try bool("special") ?? false,
                   singleWord: try bool("single_word") ?? false, leftStrip: try bool("lstrip") ?? false,
                   rightStrip: try bool("rstrip") ?? false, normalized: try bool("normalized") ?? true)
    }
}

private func readJSONObject(at url: URL) throws(TokenizerError) -> JSONObject {
    let data: Data
    do {
        data = try Data(contentsOf: url)
    } catch {
        throw .invalidFile(path: url.path, detail: "cannot read the file (\(error.localizedDescription))")
    }
    let parsed: JSONValue
    do {
        parsed = try JSONValue.parse([UInt8](data))
    } catch {
        throw .invalidFile(path: url.path, detail: "not valid JSON (\(error))")
    }
    guard case .object = parsed else {
        throw .invalidFile(path: url.path, detail: "expected a JSON object at the top level")
    }
    return JSONObject(value: parsed, path: url.path, keyPath: "")
}

// MARK: - tokenizer.json

extension TokenizerDefinition {
    /// Reads a Hugging Face tokenizer.json holding a BertNormalizer (or none), a
    /// BertPreTokenizer, a WordPiece model, a TemplateProcessing or BertProcessing
    /// post-processor (or none) and a WordPiece decoder (or none).
    static func load(tokenizerJSON url: URL) throws(TokenizerError) -> TokenizerDefinition {
        let root = try readJSONObject(at: url)
        let path = url.path

        guard let model = try root.object("model") else {
            throw .invalidFile(path: path, detail: "no \"model\" section; is this a tokenizer.json?")
        }
        let modelType = try model.string("type") ?? "WordPiece"
        guard modelType == "WordPiece" else {
            throw .unsupported(path: path, detail: "model type \"\(modelType)\" (only WordPiece)")
        }
        guard let vocabularyObject = try model.object("vocab") else {
            throw .invalidFile(path: path, detail: "\"model.vocab\" is missing")
        }
        var vocabulary: [(token: String, id: Int)] = []
        vocabulary.reserveCapacity(vocabularyObject.members.count)
        for (token, value) in vocabularyObject.members {
            guard let id = JSONObject.integer(value), id >= 0 else {
                throw .invalidFile(path: path, detail: "\"model.vocab\" entry \"\(token)\" should map to a non-negative integer id")
            }
            vocabulary.append((token, id))
        }
        var definition = TokenizerDefinition(vocabulary: vocabulary, unknownToken: try model.string("unk_token") ?? "[UNK]")
        definition.continuingSubwordPrefix = try model.string("continuing_subword_prefix") ?? "##"
        definition.maxInputCharactersPerWord = try model.int("max_input_chars_per_word") ?? 100

        if let normalizer = try root.object("normalizer") {
            let type = try normalizer.string("type") ?? ""
            guard type == "BertNormalizer" else {
                throw .unsupported(path: path, detail: "normalizer \"\(type)\" (only BertNormalizer or none)")
            }
            definition.normalizer = NormalizerOptions(
                cleanText: try normalizer.bool("clean_text") ?? true,
                handleChineseChars: try normalizer.bool("handle_chinese_chars") ?? true,
                stripAccents: try normalizer.bool("strip_accents"),
                lowercase: try normalizer.bool("lowercase") ?? true)
        } else {
            definition.normalizer = .identity
        }

        guard let preTokenizer = try root.object("pre_tokenizer") else {
            throw .unsupported(path: path, detail: "a missing pre_tokenizer (only BertPreTokenizer)")
        }
        let preTokenizerType = try preTokenizer.string("type") ?? ""
        guard preTokenizerType == "BertPreTokenizer" else {
            throw .unsupported(path: path, detail: "pre_tokenizer \"\(preTokenizerType)\" (only BertPreTokenizer)")
        }

        for (index, item) in (try root.array("added_tokens") ?? []).enumerated() {
            guard case .object = item else {
                throw .invalidFile(path: path, detail: "\"added_tokens[\(index)]\" should be a JSON object")
            }
            let entry = JSONObject(value: item, path: path, keyPath: "added_tokens[\(index)]")
            guard let id = try entry.int("id"), let content = try entry.string("content") else {
                throw .invalidFile(path: path, detail: "\"added_tokens[\(index)]\" needs \"id\" and \"content\"")
            }
            definition.addedTokens.append(try entry.addedToken(id: id, content: content))
        }

        if let processor = try root.object("post_processor") {
            definition.template = try readTemplate(processor, path: path)
        } else {
            definition.template = PostTemplate(single: [.sequence(index: 0, typeId: 0)],
                                               pair: [.sequence(index: 0, typeId: 0), .sequence(index: 1, typeId: 1)])
        }

        if let decoder = try root.object("decoder") {
            let type = try decoder.string("type") ?? ""
            guard type == "WordPiece" else {
                throw .unsupported(path: path, detail: "decoder \"\(type)\" (only WordPiece or none)")
            }
            definition.decoder = DecoderOptions(prefix: try decoder.string("prefix") ?? "##", cleanup: try decoder.bool("cleanup") ?? true)
        } else {
            definition.decoder = nil
        }
        return definition
    }

    private static func readTemplate(_ processor: JSONObject, path: String) throws(TokenizerError) -> PostTemplate {
        let type = try processor.string("type") ?? ""
        switch type {
        case "BertProcessing":
            func idOf(_ key: String) throws(TokenizerError) -> Int {
                guard let pair = try processor.array(key), pair.count == 2, let id = JSONObject.integer(pair[1]) else {
                    throw .invalidFile(path: path, detail: "\"post_processor.\(key)\" should be [token, id]")
                }
                return id
            }
            return .bert(clsId: try idOf("cls"), sepId: try idOf("sep"))
        case "TemplateProcessing":
            var specialIds: [String: [Int]] = [:]
            if let specials = try processor.object("special_tokens") {
                for (name, _) in specials.members {
                    guard let entry = try specials.object(name), let ids = try entry.array("ids") else {
                        throw .invalidFile(path: path, detail: "\"post_processor.special_tokens.\(name)\" needs \"ids\"")
                    }
                    specialIds[name] = try ids.map { value throws(TokenizerError) -> Int in
                        guard let id = JSONObject.integer(value) else {
                            throw .invalidFile(path: path, detail: "\"post_processor.special_tokens.\(name).ids\" should hold integers")
                        }
                        return id
                    }
                }
            }
            func pieces(_ key: String) throws(TokenizerError) -> [PostTemplate.Piece] {
                guard let items = try processor.array(key) else {
                    throw .invalidFile(path: path, detail: "\"post_processor.\(key)\" is missing")
                }
                return try items.enumerated().map { index, item throws(TokenizerError) -> PostTemplate.Piece in
                    let location = "\"post_processor.\(key)[\(index)]\""
                    guard case .object = item else {
                        throw .invalidFile(path: path, detail: "\(location) should be a JSON object")
                    }
                    if let special = item["SpecialToken"], case .string(let name)? = special["id"] {
                        guard let ids = specialIds[name] else {
                            throw .invalidFile(path: path, detail: "\(location) names \"\(name)\", absent from \"post_processor.special_tokens\"")
                        }
                        return .special(ids: ids, typeId: special["type_id"].flatMap(JSONObject.integer) ?? 0)
                    }
                    if let sequence = item["Sequence"], case .string(let name)? = sequence["id"] {
                        guard name == "A" || name == "B" else {
                            throw .invalidFile(path: path, detail: "\(location) names sequence \"\(name)\" (expected A or B)")
                        }
                        return .sequence(index: name == "A" ? 0 : 1, typeId: sequence["type_id"].flatMap(JSONObject.integer) ?? 0)
                    }
                    throw .invalidFile(path: path, detail: "\(location) should be {\"SpecialToken\": ...} or {\"Sequence\": ...}")
                }
            }
            return PostTemplate(single: try pieces("single"), pair: try pieces("pair"))
        default:
            throw .unsupported(path: path, detail: "post_processor \"\(type)\" (only TemplateProcessing or BertProcessing)")
        }
    }
}

// MARK: - vocab.txt + tokenizer_config.json

extension TokenizerDefinition {
    /// Reads a vocab.txt (one token per line, the line number is the id) and, when given, the
    /// tokenizer_config.json beside it, building what Hugging Face's `BertTokenizer` builds
    /// from them: BertNormalizer with clean_text, BertPreTokenizer, WordPiece, the BERT template.
    static func load(vocabularyFile: URL, configurationFile: URL?) throws(TokenizerError) -> TokenizerDefinition {
        let path = vocabularyFile.path
        let data: Data
        do {
            data = try Data(contentsOf: vocabularyFile)
        } catch {
            throw .missingFile(path: path, hint: "a BERT vocabulary, one token per line")
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw .invalidFile(path: path, detail: "not valid UTF-8")
        }
        // Lines as Python's text mode reads them (the reference's load_vocab): "\n", "\r\n"
        // and a lone "\r" all end a line, nothing else is stripped.
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" })
        if lines.last?.isEmpty == true { lines.removeLast() }  // the end of the last line, not a token
        let vocabulary = lines.enumerated().map { (token: String($0.element), id: $0.offset) }

        var configuration: JSONObject?
        if let configurationFile, FileManager.default.fileExists(atPath: configurationFile.path) {
            configuration = try readJSONObject(at: configurationFile)
        }
        var names = SpecialTokenNames()
        var unknown = "[UNK]"
        var lowercase = true
        var stripAccents: Bool?
        var chinese = true
        var modelMaxLength: Int?
        var addedTokens: [AddedToken] = []
        if let configuration {
            unknown = try configuration.tokenName("unk_token") ?? unknown
            names.pad = try configuration.tokenName("pad_token") ?? names.pad
            names.cls = try configuration.tokenName("cls_token") ?? names.cls
            names.sep = try configuration.tokenName("sep_token") ?? names.sep
            names.mask = try configuration.tokenName("mask_token") ?? names.mask
            lowercase = try configuration.bool("do_lower_case") ?? true
            stripAccents = try configuration.bool("strip_accents")
            chinese = try configuration.bool("tokenize_chinese_chars") ?? true
            modelMaxLength = try? configuration.int("model_max_length")  // often a huge float: ignore then
            if let decoderTable = try configuration.object("added_tokens_decoder") {
                for (key, _) in decoderTable.members {
                    guard let id = Int(key), let entry = try decoderTable.object(key), let content = try entry.string("content") else {
                        throw .invalidFile(path: configuration.path, detail: "\"added_tokens_decoder.\(key)\" needs an integer key and \"content\"")
                    }
                    addedTokens.append(try entry.addedToken(id: id, content: content))
                }
            }
        }
        var definition = TokenizerDefinition(vocabulary: vocabulary, unknownToken: unknown)
        // The special tokens are added tokens matched in the raw text, as in Hugging Face.
        for name in [names.pad, unknown, names.cls, names.sep, names.mask] where !addedTokens.contains(where: { sameToken($0.content, name) }) {
            if let id = definition.id(of: name) {
                addedTokens.append(AddedToken(id: id, content: name, special: true))
            }
        }
        addedTokens.sort { $0.id < $1.id }
        definition.normalizer = NormalizerOptions(cleanText: true, handleChineseChars: chinese, stripAccents: stripAccents, lowercase: lowercase)
        definition.addedTokens = addedTokens
        definition.template = .bert(clsId: definition.id(of: names.cls), sepId: definition.id(of: names.sep))
        definition.specialTokenNames = names
        definition.modelMaxLength = modelMaxLength
        return definition
    }

    /// Special token names from a tokenizer_config.json, for a tokenizer.json that does not
    /// say which of its added tokens is the padding one.
    mutating func readSpecialTokenNames(configurationFile: URL) throws(TokenizerError) {
        guard FileManager.default.fileExists(atPath: configurationFile.path) else { return }
        let configuration = try readJSONObject(at: configurationFile)
        specialTokenNames.pad = try configuration.tokenName("pad_token") ?? specialTokenNames.pad
        specialTokenNames.cls = try configuration.tokenName("cls_token") ?? specialTokenNames.cls
        specialTokenNames.sep = try configuration.tokenName("sep_token") ?? specialTokenNames.sep
        specialTokenNames.mask = try configuration.tokenName("mask_token") ?? specialTokenNames.mask
        modelMaxLength = try? configuration.int("model_max_length")
    }
}
