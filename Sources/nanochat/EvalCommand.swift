// `nanochat eval`: loss and bits per byte of a checkpoint on token shards.
import ArgumentParser
import Blocks
import Foundation
import Tensor
import Train
import Tokenizer
import Inference

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Loss and bits per byte of a checkpoint on a token shard, batches in order from token 0; or the log-likelihoods of continuations.",
        discussion: """
        With --loglikelihood FILE, FILE is JSON lines, each {"context": TEXT, "continuation": TEXT}; \
        one JSON line is printed for each, {"loglikelihood", "greedy", "context_tokens", \
        "continuation_tokens", "truncated"}: the sum of the continuation tokens' log-probabilities \
        after <|bos|> and the context (nats), and whether each was the most likely token. Spaces \
        that end a context go to its continuation, as evaluation harnesses cut them.
        """
    )

    @Option(help: "Checkpoint directory.") var checkpoint: String
    @Option(help: "Checkpoint step (default: the latest).") var step: Int?
    @Option(help: "A data directory from `nanochat prepare` (its val shards), or one token shard file (llm.c format).") var data: String?
    @Option(help: "Score continuations instead: a JSON-lines file of {\"context\", \"continuation\"} (see below).") var loglikelihood: String?
    @Option(help: "Tokenizer directory for bpb (default: the checkpoint's tokenizer/ when present).") var tokenizer: String?
    @Option(help: "Sequences per batch.") var batch: Int = 1
    @Option(help: "Tokens per sequence (default: the model's sequence_len).") var seq: Int?
    @Option(help: "Batches to evaluate (default: all that fit).") var steps: Int?
    @Flag(help: "Print one JSON object with loss and bpb.") var json = false
    @OptionGroup var runOptions: RunOptions
    @OptionGroup var precision: PrecisionOptions

    func validate() throws {
        guard (1...(1 << 20)).contains(batch) else { throw ValidationError("--batch must be in 1...\(1 << 20), got \(batch)") }
        if let seq, !(1...(1 << 24)).contains(seq) { throw ValidationError("--seq must be in 1...\(1 << 24), got \(seq)") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard (data == nil) != (loglikelihood == nil) else {
            throw ValidationError("give one of --data (loss and bpb on token shards) and --loglikelihood (continuations)")
        }
    }

    func run() throws {
        runOptions.apply()
        let (model, loadedStep) = try Checkpoint.load(from: checkpoint, step: step)
        precision.apply(to: model, inference: true)
        let tok = try CheckpointTokenizer.find(checkpoint, given: tokenizer)
        if let tok {
            try CheckpointTokenizer.checkVocabulary(tok, model: model)
            try CheckpointTokenizer.checkSame(tok, checkpoint: checkpoint, step: loadedStep, source: tokenizer ?? "\(checkpoint)/tokenizer")
        }
        if let loglikelihood {
            guard let tok else {
                throw ValidationError("--loglikelihood needs the checkpoint's tokenizer: \(checkpoint)/tokenizer is missing; give --tokenizer DIR")
            }
            try scoreContinuations(loglikelihood, model: model, tokenizer: tok)
            return
        }
        guard let data else { return }
        let seqLen = seq ?? model.config.sequenceLen
        try model.config.checkFitsInMemory(Double(batch) * Double(seqLen) * Double(model.config.vocabSize) * 8,
                                           for: "the logits of --batch \(batch) × --seq \(seqLen)")
        let identity = tok?.identity ?? CheckpointTokenizer.recordedIdentity(checkpoint, step: loadedStep)
        let stream = try DataPreparation.evaluationStream(data, vocabSize: model.config.vocabSize, tokenizerIdentity: identity)
        let e = try Evaluator.evaluate(model, stream: stream, batch: batch, sequence: seqLen,
                                       maxBatches: steps, byteLengths: tok?.byteLengths)
        let bpb = e.bpb.map { String(format: "%.6f", $0) }
        if json {
            print("{\"loss\": \(e.loss), \"bpb\": \(bpb ?? "null"), \"batches\": \(e.batches), \"tokens\": \(e.tokens)}")
        } else {
            print(String(format: "loss %.6f, bpb %@ over %d batches (%d tokens)", e.loss, bpb ?? "n/a (no tokenizer)", e.batches, e.tokens))
        }
    }

    /// Reads every line of `path` first (so a bad line is named before any work), then
    /// prints one JSON line per continuation.
    func scoreContinuations(_ path: String, model: GPT, tokenizer: Tokenizer) throws {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ValidationError("\(path): cannot read it as UTF-8 text: \(error.localizedDescription)")
        }
        var pairs: [(context: [Int32], continuation: [Int32])] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let where_ = "\(path):\(i + 1)"
            guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { continue }
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw ValidationError("\(where_): not a JSON object")
            }
            guard let context = object["context"] as? String else { throw ValidationError("\(where_): \"context\" must be a string") }
            guard let continuation = object["continuation"] as? String else {
                throw ValidationError("\(where_): \"continuation\" must be a string")
            }
            let ids = Continuations.split(context: context, continuation: continuation, tokenizer: tokenizer)
            guard !ids.continuation.isEmpty else { throw ValidationError("\(where_): the continuation is empty (no tokens to score)") }
            guard Continuations.fits(ids.continuation, model) else {
                throw ValidationError("\(where_): the continuation has \(ids.continuation.count) tokens; this model's context is \(model.config.sequenceLen)")
            }
            pairs.append(ids)
        }
        guard !pairs.isEmpty else { throw ValidationError("\(path): no continuations (one JSON object per line)") }
        for pair in pairs {
            let s = Continuations.score(model, bos: tokenizer.bosID, context: pair.context, continuation: pair.continuation)
            print("{\"loglikelihood\": \(s.loglikelihood), \"greedy\": \(s.greedy), \"context_tokens\": \(s.contextTokens), "
                  + "\"continuation_tokens\": \(s.continuationTokens), \"truncated\": \(s.truncated)}")
        }
    }
}
