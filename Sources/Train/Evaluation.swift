// Validation loss and bits per byte (SPEC §3.2).
import Blocks
import Evaluation
import Foundation
import Tensor
import Tokenizer

public struct Evaluation: Sendable {
    /// Mean cross entropy over every target (nats per token).
    public let loss: Double
    /// sum_nats / (ln 2 · sum_bytes) over the targets that are not special tokens; nil
    /// without byte lengths.
    public let bpb: Double?
    public let batches: Int, tokens: Int
}

public enum Evaluator {
    /// Each task's CORE result over its examples: alone, or under MPI each rank scoring one
    /// example in N (r, r + N, ...) and the counts summed, so every rank gets the totals.
    /// `each` sees every task's result with the seconds it took, as it comes.
    public static func core(_ sets: [(task: CoreTask, examples: [CoreExample])], model: GPT, tokenizer: Tokenizer,
                            world: (any Collectives)?, each: (CoreTaskResult, Double) -> Void = { _, _ in }) throws -> [CoreTaskResult] {
        let rank = world?.rank ?? 0, ranks = world?.size ?? 1
        return try sets.map { task, examples in
            let start = clockNow()
            var correct = try CoreScoring.evaluate(examples, task: task, indices: Array(stride(from: rank, to: examples.count, by: ranks)),
                                                   model: model, tokenizer: tokenizer)
            if let world, ranks > 1 { correct = Int(world.sum([Double(correct)])[0]) }
            let result = CoreTaskResult(task: task, examples: examples.count, correct: correct)
            each(result, seconds(since: start))
            return result
        }
    }

    /// A chat benchmark's problems scored alone, or under MPI each rank scoring one batch in
    /// N (r, r + N, ..., as nanochat's chat_eval splits them) and every problem's outcome
    /// added over the ranks, so every rank gets them all; `problems` holds what this rank
    /// scored.
    public static func chatBenchmark(_ benchmark: ChatBenchmark, problems: [ChatProblem], model: GPT, tokenizer: Tokenizer,
                                     batchSize: Int, maxTokens: Int, sandbox: PythonSandbox?,
                                     world: (any Collectives)?) throws -> ChatBenchmarkResult {
        let rank = world?.rank ?? 0, ranks = world?.size ?? 1
        let local = try ChatTaskScoring.evaluate(benchmark, problems: problems, model: model, tokenizer: tokenizer, batchSize: batchSize,
                                                 maxTokens: maxTokens, sandbox: sandbox, batches: stride(from: rank, to: Int.max, by: ranks))
        guard let world, ranks > 1 else { return local }
        let summed = world.sum(local.outcomes.map { $0 ? 1 : 0 })
        return ChatBenchmarkResult(benchmark: benchmark, outcomes: summed.map { $0 > 0.5 }, problems: local.problems)
    }

    /// Evaluates `model` on the first `maxBatches` batches of (batch × sequence) tokens of
    /// `stream`, in order from token 0. `byteLengths[id]` is each token's byte count (0 for
    /// special tokens). Fewer batches than asked when the stream is short; none is an error.
    /// With a `world`, rank r evaluates batches r, r+N, ... and the sums are added over the
    /// ranks, so every rank returns the whole evaluation.
    public static func evaluate(_ model: GPT, stream: TokenStream, batch: Int, sequence: Int, maxBatches: Int?,
                                byteLengths: [Int]?, world: (any Collectives)? = nil) throws -> Evaluation {
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
