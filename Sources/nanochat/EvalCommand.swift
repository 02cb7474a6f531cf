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
        abstract: "Loss and bits per byte of a checkpoint on a token shard, batches in order from token 0."
    )

    @Option(help: "Checkpoint directory.") var checkpoint: String
    @Option(help: "Checkpoint step (default: the latest).") var step: Int?
    @Option(help: "A data directory from `nanochat prepare` (its val shards), or one token shard file (llm.c format).") var data: String
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
}
