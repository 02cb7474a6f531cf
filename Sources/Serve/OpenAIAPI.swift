// The OpenAI-compatible HTTP API's bodies: requests for /v1/chat/completions and
// /v1/completions read and checked into generation requests, and the replies (whole, or as
// server-sent event chunks) and errors in OpenAI's shapes. No HTTP here: `nanochat serve`
// moves these bytes.
import Foundation
import Tokenizer
import Inference
import Tensor

/// An error answered to the client: HTTP status and OpenAI's error object.
public struct APIError: UserFacingError, Sendable {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public init(status: Int = 400, _ message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil) {
        self.status = status; self.message = message; self.type = type; self.param = param; self.code = code
    }

    public var description: String { message }

    /// {"error": {"message", "type", "param", "code"}}.
    public var body: Data {
        OpenAIAPI.jsonData(["error": ["message": message, "type": type, "param": param.map { $0 as Any } ?? NSNull(),
                                     "code": code.map { $0 as Any } ?? NSNull()] as [String: Any]])
    }
}

/// What the server allows one request.
public struct APILimits: Sendable {
    /// The model's context: prompt and reply together.
    public var context: Int
    /// Largest max_tokens a request may ask for, and what it gets when it names none.
    public var maxTokens: Int
    public var maxMessages: Int
    public var maxStops = 4
    public var maxBodyBytes: Int
    /// Prompts in one completions request (each one choice).
    public var maxPrompts = 64
    /// Alternatives per token in log-probabilities.
    public var maxLogprobs = 20
    public var maxLogitBias = 1024

    /// What `nanochat serve` allows when its flags do not say: the defaults live here only.
    public static let defaultMaxMessages = 256
    public static let defaultMaxBodyBytes = 1 << 20

    public init(context: Int, maxTokens: Int, maxMessages: Int = APILimits.defaultMaxMessages,
                maxBodyBytes: Int = APILimits.defaultMaxBodyBytes) {
        self.context = context; self.maxTokens = maxTokens; self.maxMessages = maxMessages; self.maxBodyBytes = maxBodyBytes
    }
}

/// A checked request: what to generate and how to answer.
public struct APIRequest: Sendable {
    /// One generation per choice: a chat request's reply, or one per prompt of a completions
    /// request (which may send several).
    public var generations: [GenerationRequest]
    /// Per choice, the prompt tokens its text starts with (completions' `echo`): the prompt
    /// as the client gave it, without the <|bos|> the server put before a text; nil without echo.
    public var echo: [[Int32]]?
    /// Each choice's log-probabilities with this many alternatives per token (`logprobs`, or
    /// chat's `top_logprobs`); nil when not asked for.
    public var logprobs: Int?
    public var stream: Bool
    /// stream_options.include_usage: a last chunk carries the token counts.
    public var includeUsage: Bool
    public var chat: Bool

    /// The first generation (chat has only one).
    public var generation: GenerationRequest { generations[0] }
}

public enum OpenAIAPI {
    /// Fields of OpenAI's API that this server does not honour, each with the values that
    /// ask for nothing (null, or the field's default: empty, "none", "text", 1): any other
    /// value is refused rather than silently ignored, so no reply claims what it did not do.
    static let unimplemented: [(field: String, off: String, isOff: @Sendable (Any) -> Bool)] = {
        @Sendable func number(_ v: Any) -> Double? { (v as? NSNumber).flatMap { String(cString: $0.objCType) == "c" ? nil : $0.doubleValue } }
        let empty: @Sendable (Any) -> Bool = { v in v is NSNull || (v as? [Any])?.isEmpty == true || (v as? [String: Any])?.isEmpty == true }
        let none: @Sendable (Any) -> Bool = { $0 is NSNull || $0 as? String == "none" }
        return [
            ("tools", "null or []", empty), ("functions", "null or []", empty),
            ("tool_choice", #"null or "none""#, none), ("function_call", #"null or "none""#, none),
            ("response_format", #"null or {"type": "text"}"#, { $0 is NSNull || ($0 as? [String: Any])?["type"] as? String == "text" }),
            ("suffix", #"null or """#, { $0 is NSNull || $0 as? String == "" }), ("best_of", "null or 1", { $0 is NSNull || number($0) == 1 }),
            ("modalities", #"null or ["text"]"#, { $0 is NSNull || ($0 as? [String]) == ["text"] }), ("audio", "null", { $0 is NSNull }),
            ("prediction", "null", { $0 is NSNull }),
        ]
    }()

    /// A 400 naming the first field of `unimplemented` given with a value that asks for something.
    static func refuseUnimplemented(_ body: Data) throws {
        guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else { return }
        for (field, off, isOff) in unimplemented {
            if let value = object[field], !isOff(value) {
                throw APIError("\(field) is not supported by this server; leave it out or send \(off)", param: field)
            }
        }
    }

    /// Reads a /v1/chat/completions (`chat`) or /v1/completions body. Fields it does not
    /// know are ignored, except OpenAI's that it does not implement (`unimplemented`), which
    /// are refused unless off; known ones of the wrong type or out of range are errors
    /// naming the field.
    public static func parse(_ body: Data, chat: Bool, tokenizer: Tokenizer, limits: APILimits, seed: UInt64) throws -> APIRequest {
        guard body.count <= limits.maxBodyBytes else {
            throw APIError(status: 413, "the request body has \(body.count) bytes, more than the \(limits.maxBodyBytes) allowed")
        }
        let fields: Fields
        do {
            fields = try JSONDecoder().decode(Fields.self, from: body)
        } catch let error as DecodingError {
            throw describe(error)
        } catch {
            throw APIError("the body is not valid JSON")
        }
        try refuseUnimplemented(body)
        if let n = fields.n?.value, n != 1 { throw APIError("only n = 1 is supported, got \(n)", param: "n") }
        let maxTokens = (fields.maxCompletionTokens ?? fields.maxTokens)?.value
        // Messages name the field the request used (chat's newer name is taken first).
        let maxTokensField = fields.maxCompletionTokens != nil ? "max_completion_tokens" : "max_tokens"
        if let m = maxTokens, m < 0 || m > limits.maxTokens {
            throw APIError("\(maxTokensField) must be in 1...\(limits.maxTokens), got \(m)", param: maxTokensField)
        }
        let temperature = fields.temperature ?? 1
        guard temperature >= 0 && temperature <= 2 else {
            throw APIError("temperature must be in 0...2, got \(temperature)", param: "temperature")
        }
        let topP = fields.topP ?? 1
        guard topP > 0 && topP <= 1 else { throw APIError("top_p must be in (0, 1], got \(topP)", param: "top_p") }
        let topK = fields.topK?.value ?? 0
        guard topK >= 0 else { throw APIError("top_k must be 0 (all) or more, got \(topK)", param: "top_k") }
        let stop = fields.stop?.texts ?? []
        guard stop.count <= limits.maxStops else {
            throw APIError("stop takes at most \(limits.maxStops) texts, got \(stop.count)", param: "stop")
        }

        for (field, value) in [("presence_penalty", fields.presencePenalty), ("frequency_penalty", fields.frequencyPenalty)] {
            if let value, !(value >= -2 && value <= 2) { throw APIError("\(field) must be in -2...2, got \(value)", param: field) }
        }
        let vocabulary = tokenizer.vocabSize
        var bias: [Int32: Double] = [:]
        if let given = fields.logitBias {
            guard given.count <= limits.maxLogitBias else {
                throw APIError("logit_bias takes at most \(limits.maxLogitBias) tokens, got \(given.count)", param: "logit_bias")
            }
            for (key, value) in given {
                guard let id = Int32(key), id >= 0, Int(id) < vocabulary else {
                    throw APIError("logit_bias: \"\(key)\" is not a token id of this model's vocabulary (0..<\(vocabulary))", param: "logit_bias")
                }
                guard value >= -100 && value <= 100 else {
                    throw APIError("logit_bias: the bias of token \(key) must be in -100...100, got \(value)", param: "logit_bias")
                }
                bias[id] = value
            }
        }

        // Log-probabilities: completions' `logprobs` is the number of alternatives (0...20);
        // chat's is true or false, with `top_logprobs` alternatives (0...20).
        var logprobs: Int?
        if chat {
            if case .count? = fields.logprobs { throw APIError("logprobs has the wrong type: expected true or false", param: "logprobs") }
            let top = fields.topLogprobs?.value
            if case .flag(true)? = fields.logprobs {
                logprobs = top ?? 0
            } else if let top, top != 0 {
                throw APIError("top_logprobs needs logprobs: true", param: "top_logprobs")
            }
            if let t = logprobs, !(0...limits.maxLogprobs).contains(t) {
                throw APIError("top_logprobs must be in 0...\(limits.maxLogprobs), got \(t)", param: "top_logprobs")
            }
            if fields.echo == true { throw APIError("echo is a field of /v1/completions; a chat reply does not repeat its messages", param: "echo") }
        } else {
            switch fields.logprobs {
            case .flag(true)?: throw APIError("logprobs has the wrong type: expected an integer (the alternatives per token, 0...\(limits.maxLogprobs))", param: "logprobs")
            case .count(let n)?:
                guard (0...limits.maxLogprobs).contains(n) else {
                    throw APIError("logprobs must be in 0...\(limits.maxLogprobs), got \(n)", param: "logprobs")
                }
                logprobs = n
            case .flag(false)?, nil: break
            }
            if let t = fields.topLogprobs?.value, t != 0 {
                throw APIError("top_logprobs is a field of /v1/chat/completions; here logprobs gives the number of alternatives", param: "top_logprobs")
            }
        }
        let echo = !chat && fields.echo == true

        // Each prompt, with <|bos|> before it (a text always; token ids unless they begin with it).
        var prompts: [(tokens: [Int32], given: [Int32])] = []
        if chat {
            guard let messages = fields.messages else { throw APIError("messages is required", param: "messages") }
            guard !messages.isEmpty, messages.count <= limits.maxMessages else {
                throw APIError("messages must hold 1 to \(limits.maxMessages) messages, got \(messages.count)", param: "messages")
            }
            let conversation = try Conversation(messages.enumerated().map { i, m in
                let role: Conversation.Role
                switch m.role {
                case "system", "developer": role = .system
                case "user": role = .user
                case "assistant": role = .assistant
                default:
                    throw APIError("messages[\(i)].role must be system, user or assistant, got \"\(m.role)\"", param: "messages[\(i)].role")
                }
                guard let content = m.content else {
                    throw APIError("messages[\(i)].content is missing or null: every message needs its text", param: "messages[\(i)].content")
                }
                return Conversation.Message(role, try content.text(message: i))
            })
            do {
                let rendered = try tokenizer.renderForReply(conversation)
                prompts = [(rendered, rendered)]
            } catch let error as ChatError {
                throw APIError("messages: \(error.message)", param: "messages")
            }
        } else {
            guard let given = fields.prompt else { throw APIError("prompt is required", param: "prompt") }
            let count = given.count
            guard count >= 1, count <= limits.maxPrompts else {
                throw APIError("prompt must hold 1 to \(limits.maxPrompts) prompts, got \(count)", param: "prompt")
            }
            switch given {
            case .texts(let texts):
                prompts = texts.map { text in let ids = tokenizer.encode(text); return ([tokenizer.bosID] + ids, ids) }
            case .tokens(let lists):
                for (i, ids) in lists.enumerated() {
                    let field = count == 1 ? "prompt" : "prompt[\(i)]"
                    guard !ids.isEmpty else { throw APIError("\(field) is an empty list of token ids", param: field) }
                    if let bad = ids.firstIndex(where: { $0 < 0 || $0 >= vocabulary }) {
                        throw APIError("\(field)[\(bad)] = \(ids[bad]) is not a token id of this model's vocabulary (0..<\(vocabulary))", param: field)
                    }
                    let tokens = ids.map { Int32($0) }
                    prompts.append((tokens.first == tokenizer.bosID ? tokens : [tokenizer.bosID] + tokens, tokens))
                }
            }
        }
        if maxTokens == 0 && !(echo && logprobs != nil) {
            throw APIError("\(maxTokensField) must be in 1...\(limits.maxTokens), got 0 (0 only scores the prompt: with echo and logprobs)",
                           param: maxTokensField)
        }
        var generations: [GenerationRequest] = []
        for (i, prompt) in prompts.enumerated() {
            let field = chat ? "messages" : prompts.count == 1 ? "prompt" : "prompt[\(i)]"
            let room = limits.context - prompt.tokens.count
            guard room >= (maxTokens == 0 ? 0 : 1) else {
                throw APIError("\(field) has \(prompt.tokens.count) tokens; this model's context is \(limits.context) tokens",
                               param: field, code: "context_length_exceeded")
            }
            if let m = maxTokens, m > room {
                throw APIError("\(field) has \(prompt.tokens.count) tokens and \(maxTokensField) asks for \(m) more; this model's context is \(limits.context) tokens",
                               param: maxTokensField, code: "context_length_exceeded")
            }
            // Each prompt of a request draws from its own seed: the request's, then the next ones.
            let base = fields.seed.map { UInt64(bitPattern: Int64($0.value)) } ?? seed
            var generation = GenerationRequest(prompt: prompt.tokens, mode: chat ? .chat : .completion,
                                               maxTokens: maxTokens ?? min(limits.maxTokens, room),
                                               sampler: Sampler(temperature: temperature, topK: topK, topP: topP, seed: base &+ UInt64(i)),
                                               stop: stop, ignoreEnd: fields.ignoreEOS ?? false)
            generation.logitBias = bias
            generation.presencePenalty = fields.presencePenalty ?? 0
            generation.frequencyPenalty = fields.frequencyPenalty ?? 0
            generation.logprobs = logprobs
            if echo, let logprobs { generation.promptLogprobs = logprobs }
            generations.append(generation)
        }
        let stream = fields.stream ?? false
        return APIRequest(generations: generations, echo: echo ? prompts.map(\.given) : nil, logprobs: logprobs,
                          stream: stream, includeUsage: fields.streamOptions?.includeUsage ?? false, chat: chat)
    }

    /// A decoding error as the field it is about and what was expected.
    static func describe(_ error: DecodingError) -> APIError {
        func path(_ keys: [any CodingKey]) -> String {
            keys.reduce("") { p, k in k.intValue.map { "\(p)[\($0)]" } ?? (p.isEmpty ? k.stringValue : "\(p).\(k.stringValue)") }
        }
        switch error {
        case .typeMismatch(let type, let context):
            let p = path(context.codingPath)
            if p.isEmpty { return APIError("the body must be a JSON object") }
            return APIError("\(p) has the wrong type: expected \(fieldTypes[context.codingPath.last?.stringValue ?? ""] ?? typeName(type))", param: p)
        case .valueNotFound(let type, let context):
            let p = path(context.codingPath)
            return APIError("\(p) is null: expected \(typeName(type))", param: p)
        case .keyNotFound(let key, let context):
            let p = path(context.codingPath + [key])
            return APIError("\(p) is required", param: p)
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return APIError("the body is not valid JSON") }
            let p = path(context.codingPath)
            return APIError("\(p): \(context.debugDescription)", param: p)
        @unknown default:
            return APIError("the body could not be read")
        }
    }

    /// What the fields of several shapes hold, for the error.
    static let fieldTypes = ["content": "a string or a list of parts", "stop": "a string or a list of strings",
                             "prompt": "a string, a list of strings, a list of token ids or a list of such lists",
                             "logprobs": "true or false (chat), an integer (completions)",
                             "logit_bias": "an object of token ids (as strings) to numbers"]

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        default: return "\(type)".contains("Array") ? "a list" : "an object"
        }
    }

    // MARK: Replies

    public struct Usage: Sendable {
        public var prompt: Int, completion: Int
        public init(prompt: Int, completion: Int) { self.prompt = prompt; self.completion = completion }
        var object: [String: Any] { ["prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion] }
    }

    /// Ids, creation time and model name shared by a reply's chunks.
    public struct ReplyHead: Sendable {
        public var id: String, created: Int, model: String, chat: Bool
        public init(id: String, created: Int, model: String, chat: Bool) {
            self.id = id; self.created = created; self.model = model; self.chat = chat
        }
    }

    static func finishValue(_ reason: FinishReason?) -> Any {
        switch reason {
        case nil: return NSNull()
        case .stop?: return "stop"
        case .length?, .cancelled?: return "length"
        }
    }

    /// One choice of a whole reply.
    public struct Choice {
        public var text: String
        public var finish: FinishReason
        /// The choice's `logprobs` object (`completionLogprobs` or `chatLogprobs`); null when nil.
        public var logprobs: Any?
        public init(text: String, finish: FinishReason, logprobs: Any? = nil) {
            self.text = text; self.finish = finish; self.logprobs = logprobs
        }
    }

    /// The whole reply (chat.completion or text_completion) of one choice.
    public static func reply(_ head: ReplyHead, text: String, finish: FinishReason, usage: Usage) -> Data {
        reply(head, choices: [Choice(text: text, finish: finish)], usage: usage)
    }

    /// The whole reply, its choices indexed in order.
    public static func reply(_ head: ReplyHead, choices: [Choice], usage: Usage) -> Data {
        let list: [[String: Any]] = choices.enumerated().map { index, c in
            let logprobs = c.logprobs ?? NSNull()
            return head.chat
                ? ["index": index, "message": ["role": "assistant", "content": c.text], "finish_reason": finishValue(c.finish), "logprobs": logprobs]
                : ["index": index, "text": c.text, "finish_reason": finishValue(c.finish), "logprobs": logprobs]
        }
        return jsonData(["id": head.id, "object": head.chat ? "chat.completion" : "text_completion", "created": head.created,
                     "model": head.model, "choices": list, "usage": usage.object])
    }

    /// One server-sent event of a streamed reply: a piece of text of choice `index`, the
    /// first chunk's role (`first`), the finish, or (with `usage`) the last chunk with no
    /// choices; `logprobs` (a `completionLogprobs` or `chatLogprobs` object) for the tokens
    /// of the piece. Written directly (keys in sorted order, as `jsonData` writes them): a
    /// server sends one per token per client, and a JSONSerialization round costs as much as
    /// a small model's step.
    public static func chunk(_ head: ReplyHead, index: Int = 0, text: String?, first: Bool = false, finish: FinishReason? = nil,
                             usage: Usage? = nil, logprobs: Any? = nil) -> Data {
        var out = "{\"choices\":["
        if usage == nil {
            let reason = finish.map { "\"\((finishValue($0) as? String) ?? "stop")\"" } ?? "null"
            if head.chat {
                var delta: [String] = []
                if let text { delta.append("\"content\":" + quoted(text)) }
                if first { delta.append("\"role\":\"assistant\"") }
                out += "{\"delta\":{" + delta.joined(separator: ",") + "},"
            } else {
                out += "{"
            }
            let scores = logprobs.map { String(decoding: jsonData($0), as: UTF8.self) } ?? "null"
            out += "\"finish_reason\":\(reason),\"index\":\(index),\"logprobs\":\(scores)"
            if !head.chat { out += ",\"text\":" + quoted(text ?? "") }
            out += "}"
        }
        out += "],\"created\":\(head.created),\"id\":\(quoted(head.id)),\"model\":\(quoted(head.model)),"
        out += "\"object\":\"\(head.chat ? "chat.completion.chunk" : "text_completion")\""
        if let u = usage {
            out += ",\"usage\":{\"completion_tokens\":\(u.completion),\"prompt_tokens\":\(u.prompt),\"total_tokens\":\(u.prompt + u.completion)}"
        }
        out += "}"
        return event(Data(out.utf8))
    }

    // MARK: Log-probabilities

    /// A token's text: its bytes as UTF-8 (a token that ends inside a character shows U+FFFD
    /// there; `bytes` in chat's form gives the exact bytes).
    static func tokenText(_ id: Int32, _ tokenizer: Tokenizer) -> String {
        String(decoding: tokenBytes(id, tokenizer), as: UTF8.self)
    }

    static func tokenBytes(_ id: Int32, _ tokenizer: Tokenizer) -> [UInt8] { (try? tokenizer.bytes(of: id)) ?? [] }

    /// Completions' `logprobs` object of tokens in order, the text starting `offset`
    /// characters into the choice's text: `tokens`, `token_logprobs`, `top_logprobs` (the
    /// alternatives by their text) and `text_offset`. A token without a score (the first of
    /// an echoed prompt, which nothing precedes) has null in both lists. Returns the object
    /// and the offset after the last token.
    public static func completionLogprobs(_ items: [(token: Int32, score: TokenScore?)], tokenizer: Tokenizer,
                                          offset: Int = 0) -> (object: [String: Any], end: Int) {
        var texts: [String] = [], values: [Any] = [], tops: [Any] = [], offsets: [Int] = []
        var at = offset
        for (token, score) in items {
            let text = tokenText(token, tokenizer)
            texts.append(text); offsets.append(at)
            at += text.unicodeScalars.count
            guard let score else { values.append(NSNull()); tops.append(NSNull()); continue }
            values.append(score.logprob)
            var top: [String: Double] = [:]
            // Alternatives with the same text keep the likelier (the first).
            for alternative in score.top where top[tokenText(alternative.token, tokenizer)] == nil {
                top[tokenText(alternative.token, tokenizer)] = alternative.logprob
            }
            tops.append(top)
        }
        return (["tokens": texts, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets], at)
    }

    /// Chat's `logprobs` object: `content`, one entry per drawn token with its text, bytes,
    /// log-probability and `top_logprobs` alternatives.
    public static func chatLogprobs(_ scores: [TokenScore], tokenizer: Tokenizer) -> [String: Any] {
        func entry(_ token: Int32, _ logprob: Double) -> [String: Any] {
            ["token": tokenText(token, tokenizer), "logprob": logprob, "bytes": tokenBytes(token, tokenizer).map(Int.init)]
        }
        let content: [[String: Any]] = scores.map { score in
            var e = entry(score.token, score.logprob)
            e["top_logprobs"] = score.top.map { entry($0.token, $0.logprob) }
            return e
        }
        return ["content": content, "refusal": NSNull()]
    }

    /// A JSON string literal of `s`: quotes, backslashes and control characters escaped.
    static func quoted(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// `data: <json>` and a blank line.
    public static func event(_ payload: Data) -> Data { Data("data: ".utf8) + payload + Data("\n\n".utf8) }

    public static let done = Data("data: [DONE]\n\n".utf8)

    /// An object as JSON bytes (keys sorted).
    public static func jsonData(_ object: Any) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    }
}

/// The request fields read (others are ignored).
private struct Fields: Decodable {
    var messages: [Message]?
    var prompt: Prompts?
    var maxTokens, maxCompletionTokens, topK, seed, n, topLogprobs: Whole?
    var temperature, topP, presencePenalty, frequencyPenalty: Double?
    var stop: Texts?
    var stream, echo: Bool?
    var ignoreEOS: Bool?
    var streamOptions: StreamOptions?
    var model: String?
    var logprobs: Logprobs?
    var logitBias: [String: Double]?

    enum CodingKeys: String, CodingKey {
        case messages, prompt, temperature, stop, stream, seed, n, model, echo, logprobs
        case maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens", topK = "top_k", topP = "top_p"
        case streamOptions = "stream_options", ignoreEOS = "ignore_eos", topLogprobs = "top_logprobs"
        case presencePenalty = "presence_penalty", frequencyPenalty = "frequency_penalty", logitBias = "logit_bias"
    }

    /// `logprobs`: true or false on chat, a count of alternatives on completions.
    enum Logprobs: Decodable {
        case flag(Bool), count(Int)
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .flag(b); return }
            guard let n = try? c.decode(Int.self) else {
                throw DecodingError.typeMismatch(Int.self, .init(codingPath: decoder.codingPath, debugDescription: "not a whole number or a boolean"))
            }
            self = .count(n)
        }
    }

    /// A completions prompt: a text, a list of texts, a list of token ids, or a list of such lists.
    enum Prompts: Decodable {
        case texts([String]), tokens([[Int]])
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .texts([s]); return }
            if let list = try? c.decode([String].self) { self = .texts(list); return }
            if let ids = try? c.decode([Int].self) { self = .tokens([ids]); return }
            if let lists = try? c.decode([[Int]].self) { self = .tokens(lists); return }
            throw DecodingError.typeMismatch(String.self, .init(codingPath: decoder.codingPath, debugDescription: "not a prompt"))
        }
        var count: Int {
            switch self {
            case .texts(let t): return t.count
            case .tokens(let t): return t.count
            }
        }
    }

    /// An integer field; a number with a fraction is the field's type error (JSONDecoder
    /// would report it without the field's name).
    struct Whole: Decodable {
        var value: Int
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            guard let v = try? c.decode(Int.self) else {
                throw DecodingError.typeMismatch(Int.self, .init(codingPath: decoder.codingPath, debugDescription: "not a whole number"))
            }
            value = v
        }
    }

    struct StreamOptions: Decodable {
        var includeUsage: Bool?
        enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    struct Message: Decodable {
        var role: String
        var content: Content?
    }

    /// A message's content: a string, or a list of parts of which the text ones count.
    enum Content: Decodable {
        case text(String)
        case parts([Part])

        struct Part: Decodable {
            var type: String
            var text: String?
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .text(s); return }
            self = .parts(try c.decode([Part].self))
        }

        /// The text: the string, or the text parts joined. A part of another kind (an image,
        /// audio) is an error: the model reads text only, and answering without the part
        /// would answer another question.
        func text(message i: Int) throws -> String {
            switch self {
            case .text(let s): return s
            case .parts(let parts):
                return try parts.enumerated().map { j, part in
                    let field = "messages[\(i)].content[\(j)]"
                    guard part.type == "text" else {
                        throw APIError("\(field) is a part of type \"\(part.type)\"; this model reads text parts only", param: field)
                    }
                    guard let text = part.text else { throw APIError("\(field).text is required", param: "\(field).text") }
                    return text
                }.joined()
            }
        }
    }

    /// A string or a list of strings (`stop`, `prompt`).
    enum Texts: Decodable {
        case one(String), many([String])
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .one(s); return }
            self = .many(try c.decode([String].self))
        }
        var texts: [String] {
            switch self {
            case .one(let s): return [s]
            case .many(let list): return list
            }
        }
    }
}
