// What each sampled token of a reply means, by nanochat's engine's rules: <|bos|> (and in a
// chat <|assistant_end|>) ends it; a calculator call the model writes between
// <|python_start|> and <|python_end|> is answered, and <|output_start|>value<|output_end|>
// is forced into the sequence; any other token is text, through a UTF-8 stream that holds
// back a character split across tokens. The terminal chat and the server share it.
import Foundation
import Tokenizer

public struct ReplyDecoder {
    let tokenizer: Tokenizer
    let special: ChatTokens
    /// Whether <|assistant_end|> ends the reply and calculator calls are answered (a chat);
    /// a plain completion treats those tokens as nothing.
    let chat: Bool
    /// Whether no token ends the reply (the server's ignore_eos).
    let ignoreEnd: Bool
    /// The expression being written, between <|python_start|> and <|python_end|>.
    var call: [Int32]? = nil
    var utf8 = UTF8Stream()

    public init(tokenizer: Tokenizer, special: ChatTokens, chat: Bool = true, ignoreEnd: Bool = false) {
        self.tokenizer = tokenizer; self.special = special; self.chat = chat; self.ignoreEnd = ignoreEnd
    }

    /// What a token did.
    public enum Step: Equatable, Sendable {
        /// The reply ended (the token is not part of it).
        case end
        /// Text to show (empty while a character or a call is incomplete).
        case text(String)
        /// A finished calculator call, its answer (nil: none), and the tokens to feed after
        /// the call's end (the answer between output markers, or none).
        case tool(expression: String, answer: String?, forced: [Int32])
    }

    public mutating func step(_ next: Int32) -> Step {
        if !ignoreEnd && (next == special.bos || (chat && next == special.assistantEnd)) { return .end }
        if chat && next == special.pythonStart {
            call = []
        } else if chat && next == special.pythonEnd, let expr = call {
            call = nil
            let expression = (try? tokenizer.decode(expr)) ?? ""
            let answer = Calculator.evaluate(expression)
            let forced = answer.map { [special.outputStart] + tokenizer.encode($0) + [special.outputEnd] } ?? []
            return .tool(expression: expression, answer: answer, forced: forced)
        } else if call != nil {
            call?.append(next)
        } else if Int(next) < tokenizer.tokenBytes.count {
            return .text(utf8.push(tokenizer.tokenBytes[Int(next)]))
        }
        return .text("")
    }

    /// The bytes held back at the end (an incomplete character, shown as U+FFFD).
    public mutating func finish() -> String { utf8.finish() }
}

/// What a reply shows as it streams: text, and a calculator call with its answer.
public enum ReplyPiece: Sendable {
    case text(String)
    case toolCall(String)
    case toolResult(String?)

    /// As a reader sees it: a call and its answer as «expr = value».
    public var shown: String {
        switch self {
        case .text(let t): return t
        case .toolCall(let e): return "«\(e)"
        case .toolResult(let v): return " = \(v ?? "no answer")»"
        }
    }
}
