// One sequence being decoded: its decode cache and its sampler, fed token ids and answering
// with the logits of its last position. Every decoding path goes through it: `Generator`
// decodes one to its end, the terminal chat keeps one across turns, the server's engine
// steps many in one batched product per token.
import Blocks
import Foundation
import Tensor

public final class DecodingSequence {
    public let model: GPT
    public var sampler: Sampler
    let cache: DecodeCache
    /// Every token fed so far, in order.
    public private(set) var tokens: [Int32] = []

    /// A sequence expected to hold about `expectedTokens` (prompt and reply): the cache starts
    /// with room for that, at most one context (sequence_len), and doubles when it fills.
    public init(model: GPT, sampler: Sampler, expectedTokens: Int) {
        self.model = model
        self.sampler = sampler
        cache = DecodeCache(config: model.config, batch: 1,
                            capacity: max(1, min(expectedTokens, model.config.sequenceLen)),
                            dtype: model.weights.embedding.dtype)
    }

    /// Feeds `ids` and returns the logits of the last position (V values). The first feed is
    /// one prefill; later ones go a token at a time where there are Mamba layers (the scan
    /// continues from its state one step at a time), all at once where there are none.
    public func feed(_ ids: [Int32]) -> [Double] { feed(ids, scoringTop: nil).last }

    /// `feed`, and with `scoringTop` the score of each of `ids[1...]` at the position before
    /// it (its log-probability given every token before it, and the `scoringTop` most likely
    /// tokens there): a prompt's echo with log-probabilities.
    public func feed(_ ids: [Int32], scoringTop top: Int?) -> (last: [Double], scores: [TokenScore]) {
        precondition(!ids.isEmpty, "feed needs at least one token")
        let oneByOne = !tokens.isEmpty && model.config.blockPattern.contains(.mamba)
        let v = model.config.vocabSize
        var last: [Double] = [], scores: [TokenScore] = []
        var position = 0
        for chunk in oneByOne ? ids.map({ [$0] }) : [ids] {
            tokens += chunk
            GradMode.withoutGradients {
                let logits = model.logits(IndexTensor(shape: [1, chunk.count], values: chunk), cache: cache)
                func rows<S: TensorScalar & BinaryFloatingPoint>(_ all: UnsafeMutableBufferPointer<S>) {
                    if let top {
                        for r in 0..<chunk.count where position + r + 1 < ids.count {
                            scores.append(TokenScore(logits: UnsafeBufferPointer(rebasing: all[(r * v)..<((r + 1) * v)]),
                                                     token: ids[position + r + 1], top: top))
                        }
                    }
                    last = all[((chunk.count - 1) * v)..<(chunk.count * v)].map { Double($0) }
                }
                switch logits.dtype {
                case .float32: rows(logits.buffer(Float.self))
                case .float64: rows(logits.buffer(Double.self))
                }
            }
            position += chunk.count
        }
        return (last, scores)
    }

    /// The next token, drawn from `logits` by the sequence's sampler.
    public func pick(_ logits: [Double]) -> Int32 { Int32(sampler.pick(logits)) }

    /// Feeds `tokens[i]` to `sequences[i]`, all in one batched step (the weights' products
    /// see every row; each sequence's attention and Mamba state stay its own), and returns
    /// each one's logits. Every sequence must have been fed before, and all share a model.
    public static func step(_ sequences: [DecodingSequence], tokens: [Int32]) -> [[Double]] {
        precondition(sequences.count == tokens.count && !sequences.isEmpty, "one token per sequence")
        precondition(sequences.allSatisfy { !$0.tokens.isEmpty && $0.model === sequences[0].model },
                     "stepped sequences share a model and have been fed")
        let model = sequences[0].model, v = model.config.vocabSize
        let logits = GradMode.withoutGradients { model.stepLogits(tokens, caches: sequences.map(\.cache)).doubles }
        for (sequence, token) in zip(sequences, tokens) { sequence.tokens.append(token) }
        return (0..<sequences.count).map { Array(logits[($0 * v)..<(($0 + 1) * v)]) }
    }
}

public enum Generator {
    /// Generates up to `maxNewTokens` after `prompt`: one prefill, then one token at a time.
    /// `onToken` gets each new id; returning false stops early. The sampler's state after
    /// the last draw is handed back.
    public static func generate(_ model: GPT, prompt: [Int32], maxNewTokens: Int, sampler: inout Sampler,
                                onToken: (Int32) -> Bool) {
        guard maxNewTokens > 0 else { return }
        let sequence = DecodingSequence(model: model, sampler: sampler, expectedTokens: prompt.count + maxNewTokens)
        defer { sampler = sequence.sampler }
        var logits = sequence.feed(prompt)
        for made in 1...maxNewTokens {
            let next = sequence.pick(logits)
            guard onToken(next), made < maxNewTokens else { return }
            logits = sequence.feed([next])
        }
    }
}
