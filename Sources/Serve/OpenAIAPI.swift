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

    public init(context: Int, maxTokens: Int, maxMessages: Int = 256, maxBodyBytes: Int = 1 << 20) {
        self.context = context; self.maxTokens = maxTokens; self.maxMessages = maxMessages; self.maxBodyBytes = maxBodyBytes
    }
}

/// A checked request: what to generate and how to answer.
public struct APIRequest: Sendable {
    public var generation: GenerationRequest
    public var stream: Bool
    /// stream_options.include_usage: a last chunk carries the token counts.
    public var includeUsage: Bool
    public var chat: Bool
}

public enum OpenAIAPI {
    /// Fields of OpenAI's API that this server does not honour, each with the test for the
    /// value that asks for nothing (absent, null, false, zero, empty): any other value is
    /// refused rather than silently ignored, so no reply claims what it did not do.
    static let unimplemented: [(field: String, isOff: @Sendable (Any) -> Bool)] = {
        @Sendable func number(_ v: Any) -> Double? { (v as? NSNumber).flatMap { String(cString: $0.objCType) == "c" ? nil : $0.doubleValue } }
        let off: @Sendable (Any) -> Bool = { v in v is NSNull || (v as? NSNumber).map { String(cString: $0.objCType) == "c" && !$0.boolValue } == true }
        let zero: @Sendable (Any) -> Bool = { v in v is NSNull || number(v) == 0 }
        let empty: @Sendable (Any) -> Bool = { v in v is NSNull || (v as? [Any])?.isEmpty == true || (v as? [String: Any])?.isEmpty == true }
        return [
            ("logprobs", off), ("top_logprobs", zero), ("echo", off), ("logit_bias", empty),
            ("presence_penalty", zero), ("frequency_penalty", zero), ("tools", empty), ("functions", empty),
            ("tool_choice", { $0 is NSNull || $0 as? String == "none" }), ("function_call", { $0 is NSNull || $0 as? String == "none" }),
            ("response_format", { $0 is NSNull || ($0 as? [String: Any])?["type"] as? String == "text" }),
            ("suffix", { $0 is NSNull || $0 as? String == "" }), ("best_of", { $0 is NSNull || number($0) == 1 }),
            ("modalities", { $0 is NSNull || ($0 as? [String]) == ["text"] }), ("audio", { $0 is NSNull }),
            ("prediction", { $0 is NSNull }),
        ]
    }()

    /// A 400 naming the first field of `unimplemented` given with a value that asks for something.
    static func refuseUnimplemented(_ body: Data) throws {
        guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else { return }
        for (field, isOff) in unimplemented {
            if let value = object[field], !isOff(value) {
                throw APIError("\(field) is not supported by this server; leave it out (or send it off: null, false, 0 or empty)", param: field)
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
        if let m = maxTokens, m < 1 || m > limits.maxTokens {
            throw APIError("max_tokens must be in 1...\(limits.maxTokens), got \(m)", param: "max_tokens")
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

        let prompt: [Int32]
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
                prompt = try tokenizer.renderForReply(conversation)
            } catch let error as ChatError {
                throw APIError("messages: \(error.message)", param: "messages")
            }
        } else {
            guard let text = fields.prompt else { throw APIError("prompt is required", param: "prompt") }
            guard let one = text.single else { throw APIError("prompt must be one text (a list of several is not supported)", param: "prompt") }
            prompt = [tokenizer.bosID] + tokenizer.encode(one)
        }
        let room = limits.context - prompt.count
        guard room >= 1 else {
            throw APIError("the prompt has \(prompt.count) tokens; this model's context is \(limits.context) tokens",
                           param: chat ? "messages" : "prompt", code: "context_length_exceeded")
        }
        if let m = maxTokens, m > room {
            throw APIError("the prompt has \(prompt.count) tokens and max_tokens asks for \(m) more; this model's context is \(limits.context) tokens",
                           param: "max_tokens", code: "context_length_exceeded")
        }
        let sampler = Sampler(temperature: temperature, topK: topK, topP: topP, seed: fields.seed.map { UInt64(bitPattern: Int64($0.value)) } ?? seed)
        let generation = GenerationRequest(prompt: prompt, mode: chat ? .chat : .completion,
                                           maxTokens: maxTokens ?? min(limits.maxTokens, room), sampler: sampler, stop: stop,
                                           ignoreEnd: fields.ignoreEOS ?? false)
        return APIRequest(generation: generation, stream: fields.stream ?? false,
                          includeUsage: fields.streamOptions?.includeUsage ?? false, chat: chat)
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
                             "prompt": "a string or a list of one string"]

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

    /// The whole reply (chat.completion or text_completion).
    public static func reply(_ head: ReplyHead, text: String, finish: FinishReason, usage: Usage) -> Data {
        let choice: [String: Any] = head.chat
            ? ["index": 0, "message": ["role": "assistant", "content": text], "finish_reason": finishValue(finish), "logprobs": NSNull()]
            : ["index": 0, "text": text, "finish_reason": finishValue(finish), "logprobs": NSNull()]
        return jsonData(["id": head.id, "object": head.chat ? "chat.completion" : "text_completion", "created": head.created,
                     "model": head.model, "choices": [choice], "usage": usage.object])
    }

    /// One server-sent event of a streamed reply: a piece of text, the first chunk's role
    /// (`first`), the finish, or (with `usage`) the last chunk with no choices. Written
    /// directly (keys in sorted order, as `jsonData` writes them): a server sends one per
    /// token per client, and a JSONSerialization round costs as much as a small model's step.
    public static func chunk(_ head: ReplyHead, text: String?, first: Bool = false, finish: FinishReason? = nil, usage: Usage? = nil) -> Data {
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
            out += "\"finish_reason\":\(reason),\"index\":0,\"logprobs\":null"
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
    var prompt: Texts?
    var maxTokens, maxCompletionTokens, topK, seed, n: Whole?
    var temperature, topP: Double?
    var stop: Texts?
    var stream: Bool?
    var ignoreEOS: Bool?
    var streamOptions: StreamOptions?
    var model: String?

    enum CodingKeys: String, CodingKey {
        case messages, prompt, temperature, stop, stream, seed, n, model
        case maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens", topK = "top_k", topP = "top_p"
        case streamOptions = "stream_options", ignoreEOS = "ignore_eos"
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
        /// The one text, if there is exactly one.
        var single: String? { texts.count == 1 ? texts[0] : nil }
    }
}
