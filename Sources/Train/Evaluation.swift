// Validation loss and bits per byte (SPEC §3.2), and text generation with the decode cache.
import Blocks
import Foundation
import Tensor

public struct Evaluation: Sendable {
    /// Mean cross entropy over every target (nats per token).
    public let loss: Double
    /// sum_nats / (ln 2 · sum_bytes) over the targets that are not special tokens; nil
    /// without byte lengths.
    public let bpb: Double?
    public let batches: Int, tokens: Int
}

public enum Evaluator {
    /// Evaluates `model` on the first `maxBatches` batches of (batch × sequence) tokens of
    /// `stream`, in order from token 0. `byteLengths[id]` is each token's byte count (0 for
    /// special tokens). Fewer batches than asked when the stream is short; none is an error.
    /// With a `world`, rank r evaluates batches r, r+N, ... and the sums are added over the
    /// ranks, so every rank returns the whole evaluation.
    public static func evaluate(_ model: GPT, stream: TokenStream, batch: Int, sequence: Int, maxBatches: Int?,
                                byteLengths: [Int]?, world: World? = nil) throws -> Evaluation {
        var loader = BatchLoader(stream: stream, batch: batch, sequence: sequence)
        var lossSum = 0.0, nats = 0.0, bytes = 0, batches = 0, count = 0
        let (rank, ranks) = (world?.rank ?? 0, world?.size ?? 1)
        var index = 0
        while maxBatches.map({ index < $0 }) ?? true {
            defer { index += 1 }
            if index % ranks != rank {
                guard loader.skip() else { break }
                continue
            }
            guard let (x, y) = loader.next() else { break }
            let losses = model.tokenLosses(x, targets: y)
            for (l, t) in zip(losses, y.values) {
                lossSum += Double(l)
                if let byteLengths, byteLengths[Int(t)] > 0 {
                    nats += Double(l)
                    bytes += byteLengths[Int(t)]
                }
            }
            count += losses.count
            batches += 1
        }
        if let world {
            let total = world.sum([lossSum, nats, Double(bytes), Double(batches), Double(count)])
            (lossSum, nats, bytes, batches, count) = (total[0], total[1], Int(total[2]), Int(total[3]), Int(total[4]))
        }
        guard batches > 0 else {
            throw ShardError(path: stream.path, "\(stream.count) tokens, fewer than one evaluation batch of \(batch)×\(sequence)+1")
        }
        let bpb = byteLengths == nil || bytes == 0 ? nil : nats / (log(2) * Double(bytes))
        return Evaluation(loss: lossSum / Double(count), bpb: bpb, batches: batches, tokens: count)
    }
}

/// Turns a stream of token bytes into text, holding back an incomplete UTF-8 sequence until
/// its last byte arrives (a token can end inside a character).
public struct UTF8Stream {
    private var pending: [UInt8] = []
    public init() {}

    /// The text completed by `bytes`.
    public mutating func push(_ bytes: [UInt8]) -> String {
        pending += bytes
        var cut = pending.count
        // Back up over a trailing incomplete sequence: at most 3 continuation bytes after a lead.
        var k = pending.count - 1, back = 0
        while k >= 0 && back < 4 && pending[k] & 0xC0 == 0x80 { k -= 1; back += 1 }
        if k >= 0 {
            let lead = pending[k]
            let need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
            if pending.count - k < need { cut = k }
        }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// What is left, with U+FFFD for an incomplete sequence.
    public mutating func finish() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }
}

public enum Generator {
    /// Generates up to `maxNewTokens` after `prompt` with the decode cache: one prefill, then
    /// one token at a time. `onToken` gets each new id; returning false stops early.
    public static func generate(_ model: GPT, prompt: [Int32], maxNewTokens: Int, sampler: inout Sampler,
                                onToken: (Int32) -> Bool) {
        guard maxNewTokens > 0 else { return }
        // Room for the prompt and up to a context's worth of new tokens; the cache grows beyond.
        let cache = DecodeCache(config: model.config, batch: 1,
                                capacity: prompt.count + Swift.min(maxNewTokens, model.config.sequenceLen))
        var input = IndexTensor(shape: [1, prompt.count], values: prompt)
        for _ in 0..<maxNewTokens {
            // Only the last position's logits (a prefill returns one row per prompt token).
            let last = GradMode.withoutGradients {
                let logits = model.logits(input, cache: cache)
                return slice(logits, axis: 1, (logits.shape[1] - 1)..<logits.shape[1]).doubles
            }
            let next = Int32(sampler.pick(last))
            guard onToken(next) else { return }
            input = IndexTensor(shape: [1, 1], values: [next])
        }
    }
}
