// Scoring a continuation after a context: the sum of the model's log-probabilities of its
// tokens, and whether each was the model's most likely token there. How in-context
// evaluations (multiple choice, cloze, language modelling) score a model, and what an
// evaluation harness computes from `/v1/completions` with echo and logprobs; both go through
// `TokenScore`, on the same ids (<|bos|>, the context, the continuation).
import Blocks
import Foundation
import Tensor
import Tokenizer

public enum Continuations {
    public struct Score: Sendable, Equatable {
        /// Sum of the continuation tokens' log-probabilities (nats).
        public var loglikelihood: Double
        /// Every continuation token was the most likely one at its position.
        public var greedy: Bool
        public var contextTokens: Int, continuationTokens: Int
        /// Context tokens left out at its start so that the whole fits the model's context.
        public var truncated: Int
    }

    /// The ids of a context and its continuation as evaluation harnesses cut them: spaces
    /// that end the context go to the continuation (where the tokenizer puts them, at the
    /// start of the next word), the two are encoded together, and the context's own encoding
    /// decides where the continuation's ids begin.
    public static func split(context: String, continuation: String, tokenizer: Tokenizer) -> (context: [Int32], continuation: [Int32]) {
        var context = Substring(context), continuation = continuation
        while let last = context.last, last == " " {
            context.removeLast()
            continuation = " " + continuation
        }
        let whole = tokenizer.encode(String(context) + continuation)
        let head = tokenizer.encode(String(context))
        return (head, Array(whole[min(head.count, whole.count)...]))
    }

    /// Scores `continuation` after <|bos|> and `context` (ids). When they do not fit the
    /// model's context, the context's first tokens are left out (<|bos|> stays first); the
    /// continuation must fit (`fits`).
    public static func score(_ model: GPT, bos: Int32, context: [Int32], continuation: [Int32]) -> Score {
        precondition(fits(continuation, model) && !continuation.isEmpty, "a continuation of 1...sequence_len tokens")
        // Fed: <|bos|>, the context, the continuation but its last token; at most sequence_len.
        let cut = max(0, context.count - (model.config.sequenceLen - continuation.count))
        let kept = Array(context[cut...])
        let fed = [bos] + kept + continuation.dropLast()
        let v = model.config.vocabSize
        var total = 0.0, greedy = true
        GradMode.withoutGradients {
            let logits = model.logits(IndexTensor(shape: [1, fed.count], values: fed))
            func rows<S: TensorScalar & BinaryFloatingPoint>(_ all: UnsafeMutableBufferPointer<S>) {
                for (j, token) in continuation.enumerated() {
                    let at = kept.count + j   // the position whose next token is continuation[j]
                    let s = TokenScore(logits: UnsafeBufferPointer(rebasing: all[(at * v)..<((at + 1) * v)]), token: token, top: 1)
                    total += s.logprob
                    if let best = s.top.first, best.logprob > s.logprob { greedy = false }
                }
            }
            switch logits.dtype {
            case .float32: rows(logits.buffer(Float.self))
            case .float64: rows(logits.buffer(Double.self))
            }
        }
        return Score(loglikelihood: total, greedy: greedy, contextTokens: kept.count, continuationTokens: continuation.count, truncated: cut)
    }

    /// Whether a continuation can be scored by `model`: its tokens after <|bos|> fit the context.
    public static func fits(_ continuation: [Int32], _ model: GPT) -> Bool { continuation.count <= model.config.sequenceLen }
}
