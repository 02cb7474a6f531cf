// Conversations and how they become tokens, as nanochat's `render_conversation`:
//
//   <|bos|> <|user_start|> user text <|user_end|> <|assistant_start|> reply <|assistant_end|> ...
//
// A system message is folded into the first user message ("system\n\nuser"). The training
// mask is 1 on what the assistant writes (its text, its tool calls and <|assistant_end|>) and
// 0 elsewhere, including the tool's output, which comes from the calculator at generation
// time. The ids (and mask) are cut to at most `maxTokens`. Read from the JSONL layout most
// chat data uses: {"messages": [{"role": ..., "content": ...}]}, where an assistant's content
// is a string or a list of parts {"type": "text" | "python" | "python_output", "text": ...}.
import Foundation
import Tensor
import Tokenizer

public struct ChatError: UserFacingError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public struct Conversation: Equatable, Sendable {
    public enum Role: String, Sendable { case system, user, assistant }

    /// A piece of an assistant message: text, a calculator call, or the calculator's answer.
    public enum Part: Equatable, Sendable {
        case text(String), python(String), pythonOutput(String)
    }

    public struct Message: Equatable, Sendable {
        public var role: Role
        public var parts: [Part]
        public init(_ role: Role, _ text: String) { self.role = role; self.parts = [.text(text)] }
        public init(_ role: Role, parts: [Part]) { self.role = role; self.parts = parts }

        /// The text of a message that is plain text (user and system messages are).
        public var plainText: String? {
            if parts.count == 1, case .text(let t) = parts[0] { return t }
            return nil
        }
    }

    public var messages: [Message]
    public init(_ messages: [Message]) { self.messages = messages }

    /// Most messages in a conversation a reader accepts (a bound against hostile input).
    public static let maxMessages = 10_000

    /// A conversation from one JSON object; errors say which message and what is wrong.
    public init(json object: Any) throws {
        guard let dict = object as? [String: Any] else { throw ChatError("not a JSON object") }
        guard let list = dict["messages"] as? [Any] else { throw ChatError("no \"messages\" list") }
        guard !list.isEmpty else { throw ChatError("\"messages\" is empty") }
        guard list.count <= Conversation.maxMessages else {
            throw ChatError("\(list.count) messages, more than the \(Conversation.maxMessages) a conversation may have")
        }
        messages = try list.enumerated().map { i, item in
            guard let m = item as? [String: Any] else { throw ChatError("message \(i) is not an object") }
            guard let r = m["role"] as? String, let role = Role(rawValue: r) else {
                throw ChatError("message \(i): role must be \"system\", \"user\" or \"assistant\", got \(m["role"].map { "\($0)" } ?? "nothing")")
            }
            if let text = m["content"] as? String { return Message(role, text) }
            guard role == .assistant, let parts = m["content"] as? [Any] else {
                throw ChatError("message \(i) (\(r)): content must be a string\(role == .assistant ? " or a list of parts" : "")")
            }
            return Message(role, parts: try parts.enumerated().map { k, p in
                guard let part = p as? [String: Any], let type = part["type"] as? String, let text = part["text"] as? String else {
                    throw ChatError("message \(i), part \(k): expected {\"type\": ..., \"text\": ...}")
                }
                switch type {
                case "text": return .text(text)
                case "python": return .python(text)
                case "python_output": return .pythonOutput(text)
                default: throw ChatError("message \(i), part \(k): unknown part type \"\(type)\" (text, python or python_output)")
                }
            })
        }
    }

    /// One line of a JSONL file.
    public init(jsonLine: some Collection<UInt8>) throws {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: Data(jsonLine)) } catch {
            throw ChatError("not JSON")
        }
        try self.init(json: object)
    }

    /// The messages to render: a leading system message folded into the user message after
    /// it; then user and assistant must alternate, starting with the user.
    public func turns() throws -> [Message] {
        var list = messages
        if let first = list.first, first.role == .system {
            guard list.count >= 2, list[1].role == .user, let system = first.plainText, let user = list[1].plainText else {
                throw ChatError("a system message must be followed by a user message")
            }
            list[1] = Message(.user, system + "\n\n" + user)
            list.removeFirst()
        }
        guard !list.isEmpty else { throw ChatError("no messages after the system message") }
        for (i, m) in list.enumerated() {
            let expected: Role = i % 2 == 0 ? .user : .assistant
            guard m.role == expected else {
                throw ChatError("message \(i) is from the \(m.role.rawValue) but should be from the \(expected.rawValue) (after the system message, user and assistant alternate)")
            }
            if m.role == .user && m.plainText == nil { throw ChatError("message \(i): a user message is plain text") }
        }
        return list
    }
}

/// The special tokens of the chat format, by id.
public struct ChatTokens: Sendable {
    public let bos, userStart, userEnd, assistantStart, assistantEnd, pythonStart, pythonEnd, outputStart, outputEnd: Int32

    public init(_ tokenizer: Tokenizer) {
        let ids = Dictionary(uniqueKeysWithValues: zip(specialTokens, tokenizer.specialIDs))
        func id(_ name: String) -> Int32 { ids[name] ?? -1 }   // every name is in specialTokens
        bos = id("<|bos|>"); userStart = id("<|user_start|>"); userEnd = id("<|user_end|>")
        assistantStart = id("<|assistant_start|>"); assistantEnd = id("<|assistant_end|>")
        pythonStart = id("<|python_start|>"); pythonEnd = id("<|python_end|>")
        outputStart = id("<|output_start|>"); outputEnd = id("<|output_end|>")
    }
}

extension Tokenizer {
    /// A conversation's ids and training mask (1 = the assistant's tokens), cut to
    /// `maxTokens`, as nanochat's render_conversation.
    public func render(_ conversation: Conversation, maxTokens: Int = 2048) throws -> (ids: [Int32], mask: [UInt8]) {
        let t = ChatTokens(self)
        var ids: [Int32] = [], mask: [UInt8] = []
        func add(_ new: [Int32], _ m: UInt8) { ids += new; mask += repeatElement(m, count: new.count) }
        add([t.bos], 0)
        for message in try conversation.turns() {
            switch message.role {
            case .user:
                add([t.userStart], 0)
                add(encode(message.plainText ?? ""), 0)
                add([t.userEnd], 0)
            case .assistant:
                add([t.assistantStart], 0)
                for part in message.parts {
                    switch part {
                    case .text(let s): add(encode(s), 1)
                    case .python(let s): add([t.pythonStart] + encode(s) + [t.pythonEnd], 1)
                    case .pythonOutput(let s): add([t.outputStart] + encode(s) + [t.outputEnd], 0)
                    }
                }
                add([t.assistantEnd], 1)
            case .system:
                break   // folded into the first user message by turns()
            }
        }
        return (Array(ids.prefix(maxTokens)), Array(mask.prefix(maxTokens)))
    }

    /// A conversation ending in a user message, primed for the assistant's reply: its ids
    /// then <|assistant_start|> (nanochat's render_for_completion, given the conversation
    /// without the reply).
    public func renderForReply(_ conversation: Conversation, maxTokens: Int = Int.max) throws -> [Int32] {
        guard conversation.messages.last?.role == .user else { throw ChatError("the last message must be the user's") }
        return try render(conversation, maxTokens: maxTokens).ids + [ChatTokens(self).assistantStart]
    }
}
