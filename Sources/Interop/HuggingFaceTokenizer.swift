// The tokenizer in Hugging Face's formats: tokenizer.json as the `tokenizers` library reads
// it (byte-level BPE: the split pattern, then bytes as GPT-2's printable characters, then
// merges) and tokenizer_config.json with a chat template that renders a conversation as
// SPEC §3.8 does. AutoTokenizer on the two gives this tokenizer's ids.
import Foundation
import Tokenizer

extension Tokenizer {
    /// GPT-2's byte-to-character table of byte-level BPE: the printable bytes stand for
    /// themselves, the other 68 for U+0100 onwards, in byte order.
    static let byteCharacters: [Character] = {
        var table = [Character](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            var scalar = UInt32(b)
            if !printable {
                scalar = next
                next += 1
            }
            table[b] = Character(Unicode.Scalar(scalar) ?? " ")   // 0...323: all valid scalars
        }
        return table
    }()

    /// A token's bytes as byte-level BPE writes them.
    public static func byteLevelText(_ bytes: [UInt8]) -> String { String(bytes.map { byteCharacters[Int($0)] }) }

    /// The merge that makes rank `rank` (≥ 256): its bytes merged as encoding would merge
    /// them with only the lower ranks, which leaves two parts.
    func mergeParts(of rank: Int) -> (Int32, Int32)? {
        var parts = tokenBytes[rank].map { [$0] }
        while parts.count > 2 {
            var best: (rank: Int32, at: Int)? = nil
            for i in 0..<(parts.count - 1) {
                if let r = rankOf[parts[i] + parts[i + 1]], r < rank, best == nil || r < best!.rank { best = (r, i) }
            }
            guard let (_, at) = best else { return nil }
            parts[at] += parts[at + 1]
            parts.remove(at: at + 1)
        }
        guard parts.count == 2, let l = rankOf[parts[0]], let r = rankOf[parts[1]] else { return nil }
        return (l, r)
    }

    /// A tokenizer.json's merges must be the ones this vocabulary implies (rank r ≥ 256 as
    /// the merge of the two lower ranks its bytes end in, in rank order): we encode by the
    /// ranks, the `tokenizers` library by the merges, so other merges (garbage, reordered,
    /// missing) would make the two encode the same text differently.
    func checkMerges(_ value: Any?, path: String) throws {
        guard let list = value as? [Any] else { throw TokenizerError("\(path): model.merges is missing or not a list") }
        let count = tokenBytes.count - 256
        guard list.count == count else {
            throw TokenizerError("\(path): model.merges has \(list.count) merges; this vocabulary of \(tokenBytes.count) tokens needs \(count), one per token after the 256 bytes")
        }
        for (i, item) in list.enumerated() {
            let r = 256 + i
            let pair: [String]
            if let text = item as? String {
                pair = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            } else {
                pair = (item as? [Any])?.compactMap { $0 as? String } ?? []
            }
            guard let (l, rr) = mergeParts(of: r) else {
                throw TokenizerError("\(path): token \(r) is not the merge of two lower-ranked tokens; byte-level BPE cannot express it")
            }
            let wanted = [Self.byteLevelText(tokenBytes[Int(l)]), Self.byteLevelText(tokenBytes[Int(rr)])]
            guard pair == wanted else {
                throw TokenizerError("\(path): model.merges[\(i)] is \(pair.map { "\"\($0)\"" }.joined(separator: " + ")); token \(r) of the vocab "
                                     + "is made by \"\(wanted[0])\" + \"\(wanted[1])\", and other merges would make the tokenizers library encode differently")
            }
        }
    }

    /// tokenizer.json for the `tokenizers` library. Throws if a rank has no merge of two
    /// lower ranks (a tokenizer this tool trained always has one).
    public func huggingFaceTokenizerJSON() throws -> Data {
        var vocab: [String: Int] = [:]
        for (r, b) in tokenBytes.enumerated() { vocab[Self.byteLevelText(b)] = r }
        var merges: [[String]] = []
        for r in 256..<tokenBytes.count {
            guard let (l, rr) = mergeParts(of: r) else {
                throw TokenizerError("token \(r) (\(tokenBytes[r].count) bytes) is not the merge of two lower-ranked tokens; byte-level BPE cannot express it")
            }
            merges.append([Self.byteLevelText(tokenBytes[Int(l)]), Self.byteLevelText(tokenBytes[Int(rr)])])
        }
        let added: [[String: Any]] = zip(specialTokens, specialIDs).map { name, id in
            ["id": Int(id), "content": name, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true]
        }
        let object: [String: Any] = [
            "version": "1.0",
            "truncation": NSNull(),
            "padding": NSNull(),
            "added_tokens": added,
            "normalizer": NSNull(),
            "pre_tokenizer": [
                "type": "Sequence",
                "pretokenizers": [
                    ["type": "Split", "pattern": ["Regex": SplitPattern.pattern], "behavior": "Isolated", "invert": false],
                    ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false],
                ] as [[String: Any]],
            ] as [String: Any],
            // <|bos|> before a text, as `nanochat sample` and a completion prompt begin
            // (transformers' default add_special_tokens=True; the chat template writes its own,
            // and apply_chat_template encodes without special tokens).
            "post_processor": [
                "type": "TemplateProcessing",
                "single": [["SpecialToken": ["id": "<|bos|>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                "pair": [["SpecialToken": ["id": "<|bos|>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]],
                         ["SpecialToken": ["id": "<|bos|>", "type_id": 1]], ["Sequence": ["id": "B", "type_id": 1]]],
                "special_tokens": ["<|bos|>": ["id": "<|bos|>", "ids": [Int(bosID)], "tokens": ["<|bos|>"]]],
            ] as [String: Any],
            "decoder": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false],
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false,
                // A piece that is a token is that token (tiktoken's rule), before any merge.
                "ignore_merges": true,
                "vocab": vocab, "merges": merges,
            ] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// The chat template (Jinja, as transformers renders it): SPEC §3.8's rendering of a
    /// conversation, a leading system message folded into the first user message, and
    /// `<|assistant_start|>` for a generation prompt. A message's content is a string or a
    /// list of parts, as the server reads them: `text` parts joined, and in an assistant's
    /// message `python` and `python_output` parts (tool calls) in their special tokens. Text
    /// holding a special token's name is refused: this project reads it as text, as nanochat
    /// does, and the tokenizer would read the token.
    public static let chatTemplate = """
        {%- macro checked(text) -%}
        {%- for name in ['\(specialTokens.joined(separator: "', '"))'] -%}
        {%- if name in text -%}
        {{- raise_exception('a message holds the text ' + name + ', which this model reads as plain text and the tokenizer would read as its special token; take it out') -}}
        {%- endif -%}
        {%- endfor -%}
        {{- text -}}
        {%- endmacro -%}
        {%- macro content(message) -%}
        {%- if message['content'] is string -%}
        {{- checked(message['content']) -}}
        {%- else -%}
        {%- for part in message['content'] -%}
        {%- if part['type'] == 'text' -%}
        {{- checked(part['text']) -}}
        {%- elif part['type'] == 'python' and message['role'] == 'assistant' -%}
        {{- '<|python_start|>' + checked(part['text']) + '<|python_end|>' -}}
        {%- elif part['type'] == 'python_output' and message['role'] == 'assistant' -%}
        {{- '<|output_start|>' + checked(part['text']) + '<|output_end|>' -}}
        {%- else -%}
        {{- raise_exception('a ' + message['role'] + ' message has a part of type ' + part['type'] + '; this model reads text parts (and an assistant python and python_output)') -}}
        {%- endif -%}
        {%- endfor -%}
        {%- endif -%}
        {%- endmacro -%}
        {%- set ns = namespace(system='') -%}
        {{- '<|bos|>' -}}
        {%- for message in messages -%}
        {%- if message['role'] == 'system' -%}
        {%- set ns.system = content(message) + '\\n\\n' -%}
        {%- elif message['role'] == 'user' -%}
        {{- '<|user_start|>' + ns.system + content(message) + '<|user_end|>' -}}
        {%- set ns.system = '' -%}
        {%- elif message['role'] == 'assistant' -%}
        {{- '<|assistant_start|>' + content(message) + '<|assistant_end|>' -}}
        {%- endif -%}
        {%- endfor -%}
        {%- if add_generation_prompt -%}
        {{- '<|assistant_start|>' -}}
        {%- endif -%}
        """

    /// tokenizer_config.json: the fast tokenizer class, the special tokens and the chat
    /// template; `contextLength` is the model's.
    public func huggingFaceConfigJSON(contextLength: Int) throws -> Data {
        var decoder: [String: Any] = [:]
        for (name, id) in zip(specialTokens, specialIDs) {
            decoder["\(id)"] = ["content": name, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true]
        }
        let object: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": "<|bos|>",
            "eos_token": "<|assistant_end|>",
            "pad_token": "<|bos|>",
            "added_tokens_decoder": decoder,
            "additional_special_tokens": Array(specialTokens.dropFirst()),
            "chat_template": Self.chatTemplate,
            "model_max_length": contextLength,
            "clean_up_tokenization_spaces": false,
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }
}

extension Tokenizer {
    /// The tokenizer in a Hugging Face tokenizer.json (`path` names it in errors): a
    /// byte-level BPE whose ids 0..<n are its vocabulary (the 256 bytes first, in order),
    /// split by this project's pattern, with the special tokens after, at this tokenizer's
    /// ids. Anything else (another pattern, a vocabulary with gaps, other special tokens) is
    /// refused, naming what differs.
    public static func fromHuggingFace(_ data: Data, path: String) throws -> Tokenizer {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TokenizerError("\(path): not a JSON object")
        }
        guard let model = object["model"] as? [String: Any], model["type"] as? String == "BPE",
              let vocab = model["vocab"] as? [String: Int] else {
            throw TokenizerError("\(path): model is not a BPE model with a vocab")
        }
        func patterns(_ value: Any?) -> [String] {
            if let d = value as? [String: Any] {
                return (d["Regex"] as? String).map { [$0] } ?? d.values.flatMap(patterns)
            }
            return (value as? [Any])?.flatMap(patterns) ?? []
        }
        let split = patterns(object["pre_tokenizer"])
        guard split == [SplitPattern.pattern] else {
            throw TokenizerError("\(path): the pre-tokenizer's split pattern is \(split.first.map { "\"\($0)\"" } ?? "missing"), not nanochat's")
        }
        var byteOf: [Character: UInt8] = [:]
        for (b, c) in byteCharacters.enumerated() { byteOf[c] = UInt8(b) }
        var tokenBytes = [[UInt8]?](repeating: nil, count: vocab.count)
        for (text, id) in vocab {
            guard (0..<vocab.count).contains(id), tokenBytes[id] == nil else {
                throw TokenizerError("\(path): vocab id \(id) (\"\(text)\") is out of 0..<\(vocab.count) or given twice")
            }
            var bytes: [UInt8] = []
            for c in text {
                guard let b = byteOf[c] else { throw TokenizerError("\(path): vocab entry \"\(text)\" is not byte-level text") }
                bytes.append(b)
            }
            tokenBytes[id] = bytes
        }
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer(tokenBytes: tokenBytes.compactMap { $0 }) } catch let e as TokenizerError {
            throw TokenizerError("\(path): \(e.message)")
        }
        try tokenizer.checkMerges(model["merges"], path: path)
        let added = (object["added_tokens"] as? [[String: Any]]) ?? []
        let given = Dictionary(added.compactMap { t in (t["content"] as? String).flatMap { c in (t["id"] as? Int).map { (c, $0) } } },
                               uniquingKeysWith: { a, _ in a })
        try tokenizer.checkSpecialIDs(given, path: path, field: "added_tokens")
        return tokenizer
    }
}
