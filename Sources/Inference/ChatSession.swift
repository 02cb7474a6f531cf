// A conversation with a model, turn by turn, keeping its decode cache between turns: a new
// turn prefills only its own tokens (the Mamba layers' state is constant-size; the
// Transformer layers' key/value cache grows with the conversation). The reply streams token
// by token and stops at <|assistant_end|> (or <|bos|>, or the reply limit). A calculator call
// the model writes (<|python_start|>expr<|python_end|>) is answered as nanochat's engine
// answers it: <|output_start|>value<|output_end|> is forced into the sequence and decoding
// goes on.
import Blocks
import Foundation
import Tensor
import Tokenizer

public final class ChatSession {
    public let model: GPT
    public let tokenizer: Tokenizer
    public let system: String?
    public var maxReplyTokens: Int
    let special: ChatTokens
    /// The conversation so far, in its decode cache.
    public private(set) var sequence: DecodingSequence
    /// Tokens chosen but not yet fed (the last reply's end).
    var pending: [Int32] = []
    var turns = 0

    /// Tokens in the cache: the conversation so far.
    public var history: [Int32] { sequence.tokens }
    public var length: Int { history.count }

    /// What one reply took.
    public struct Reply: Sendable {
        public var text: String
        /// Tokens fed before the reply (this turn's own), and tokens the reply generated
        /// (forced calculator answers included).
        public var prefilled: Int, generated: Int
        /// Tokens in the conversation after the reply.
        public var contextLength: Int
        /// Whether the reply ended with <|assistant_end|> (rather than at the limit).
        public var finished: Bool
    }

    public init(model: GPT, tokenizer: Tokenizer, sampler: Sampler, system: String? = nil, maxReplyTokens: Int) {
        self.model = model
        self.tokenizer = tokenizer
        self.system = system
        self.maxReplyTokens = maxReplyTokens
        special = ChatTokens(tokenizer)
        sequence = DecodingSequence(model: model, sampler: sampler, expectedTokens: Self.expectedTokens)
    }

    /// Room a conversation starts with; its cache grows as it goes on.
    static let expectedTokens = 1024

    /// Forgets the conversation (the sampler goes on where it was).
    public func clear() {
        sequence = DecodingSequence(model: model, sampler: sequence.sampler, expectedTokens: Self.expectedTokens)
        pending = []
        turns = 0
    }

    /// The tokens a user turn adds: <|bos|> first in a conversation (with the system text
    /// folded into the first message, as rendering does), and the previous reply's end if the
    /// reply stopped at the limit.
    func turnTokens(_ text: String) -> [Int32] {
        var out = pending
        if turns == 0 {
            out = [special.bos]
        } else if pending.isEmpty || pending.last != special.assistantEnd {
            out.append(special.assistantEnd)
        }
        let content = turns == 0 ? system.map { $0 + "\n\n" + text } ?? text : text
        return out + [special.userStart] + tokenizer.encode(content) + [special.userEnd, special.assistantStart]
    }

    /// The assistant's reply to `text`; `onPiece` gets the reply as it streams and may stop it
    /// by returning false. A message that with the conversation so far leaves no room in the
    /// model's context is refused (nothing is fed); a reply stops where the context ends.
    @discardableResult
    public func reply(to text: String, onPiece: (ReplyPiece) -> Bool = { _ in true }) throws -> Reply {
        let prompt = turnTokens(text)
        let context = model.config.sequenceLen
        guard length + prompt.count < context else {
            throw ChatError("this message makes \(prompt.count) tokens, and with the \(length) of the conversation so far they leave no room "
                            + "for a reply in the model's context of \(context) tokens; send less, or /clear to start over")
        }
        turns += 1
        pending = []
        var logits = sequence.feed(prompt)
        var decoder = ReplyDecoder(tokenizer: tokenizer, special: special)
        var reply = "", generated = 0, finished = false
        decoding: while generated < maxReplyTokens {
            let next = sequence.pick(logits)
            generated += 1
            var forced: [Int32] = []
            switch decoder.step(next) {
            case .end:
                pending = [special.assistantEnd]
                finished = true
                break decoding
            case .text(let piece):
                reply += piece
                if !piece.isEmpty && !onPiece(.text(piece)) { pending = [next]; break decoding }
            case .tool(let expression, let answer, let answerTokens):
                _ = onPiece(.toolCall(expression))
                guard onPiece(.toolResult(answer)) else { pending = [next]; break decoding }
                forced = answerTokens
            }
            generated += forced.count
            guard length + 1 + forced.count < context else { pending = [next] + forced; break decoding }   // the context is full
            logits = sequence.feed([next] + forced)
        }
        let tail = decoder.finish()
        if !tail.isEmpty { reply += tail; _ = onPiece(.text(tail)) }
        return Reply(text: reply, prefilled: prompt.count, generated: generated, contextLength: length + pending.count,
                     finished: finished)
    }
}
