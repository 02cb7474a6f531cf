// `nanochat sft`: chat fine-tuning, as nanochat's chat_sft (`nanochat chat-eval` measures
// the result: ChatEvalCommand.swift).
import ArgumentParser
import Blocks
import Corpus
import Foundation
import Tensor
import Train
import Inference

extension ChatTask: ExpressibleByArgument {}

/// "spelling,arithmetic" → tasks; the error names the unknown one.
func parseTasks(_ text: String) throws -> [ChatTask] {
    if text.isEmpty || text == "none" { return [] }
    return try text.split(separator: ",").map { name in
        guard let t = ChatTask(rawValue: String(name)) else {
            throw ValidationError("unknown task \"\(name)\"; the tasks are \(ChatTask.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return t
    }
}

struct SFTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sft",
        abstract: "Fine-tune a base checkpoint on conversations (loss on the assistant's tokens), as nanochat's chat_sft.",
        discussion: """
        Conversations come from JSONL files ({"messages": [{"role": "user" | "assistant" |
        "system", "content": ...}]} per line) and from the built-in synthetic tasks
        (spelling, arithmetic, identity; --tasks none to leave them out). The base run's
        optimisers run at --init-lr-frac of its rates, held for half the steps then decayed
        to zero. Writes checkpoints and the tokenizer to --out; --resume continues there.
        """
    )

    @Option(help: "Base checkpoint directory (from `nanochat train`).") var checkpoint: String
    @Option(help: "Base checkpoint step (default: the latest).") var step: Int?
    @Option(parsing: .upToNextOption, help: "JSONL files of conversations (optional).") var data: [String] = []
    @Option(help: "Synthetic tasks to add, comma-separated (spelling, arithmetic, identity; none).") var tasks = "spelling,arithmetic,identity"
    @Option(help: "Conversations per synthetic task.") var taskExamples = 2000
    @Option(help: "Output directory for the fine-tuned checkpoints.") var out: String
    @Option(help: "Rows per micro-batch.") var deviceBatchSize = 8
    @Option(help: "Tokens per row (default: the base model's sequence length, at most 512).") var maxSeqLen: Int?
    @Option(help: "Steps (default: one pass over the conversations).") var numIterations: Int?
    @Option(help: "Fraction of the base run's learning rates to start from.") var initLrFrac = 0.8
    @Option(help: "Evaluate the held-out val loss every N steps (0: only at the end).") var evalEvery = 50
    @Option(help: "Save every N steps (0: only at the end).") var saveEvery = 0
    @Option(help: "Shuffling seed.") var seed: UInt64 = 42
    @Flag(help: "Continue from the latest checkpoint in --out.") var resume = false
    @OptionGroup var runOptions: RunOptions
    @OptionGroup var precision: PrecisionOptions

    func validate() throws {
        _ = try parseTasks(tasks)
        guard (0...1_000_000).contains(taskExamples) else { throw ValidationError("--task-examples must be in 0...1000000, got \(taskExamples)") }
        guard (1...4096).contains(deviceBatchSize) else { throw ValidationError("--device-batch-size must be in 1...4096, got \(deviceBatchSize)") }
        if let maxSeqLen, !(2...65536).contains(maxSeqLen) { throw ValidationError("--max-seq-len must be in 2...65536, got \(maxSeqLen)") }
        if let numIterations, !(1...10_000_000).contains(numIterations) { throw ValidationError("--num-iterations must be in 1...10000000, got \(numIterations)") }
        guard initLrFrac > 0 && initLrFrac <= 10 else { throw ValidationError("--init-lr-frac must be in (0, 10], got \(initLrFrac)") }
        guard evalEvery >= 0, saveEvery >= 0 else { throw ValidationError("--eval-every and --save-every must be ≥ 0") }
    }

    func run() throws {
        runOptions.apply()
        let (base, baseStep) = try Checkpoint.load(from: checkpoint, step: step)
        precision.apply(to: base, inference: false)
        let tok = try CheckpointTokenizer.forText(model: base, checkpoint: checkpoint, step: baseStep, given: nil, offersFlag: false)
        var conversations = try SFTData.conversations(files: data)
        conversations += SFTData.synthetic(try parseTasks(tasks), perTask: taskExamples)
        guard conversations.count >= 2 else { throw UserError("no conversations: give --data FILES or --tasks") }
        var settings = SFTSettings(base: checkpoint, output: out)
        settings.baseStep = baseStep
        settings.deviceBatchSize = deviceBatchSize
        settings.sequenceLen = maxSeqLen ?? min(base.config.sequenceLen, 512)
        settings.numIterations = numIterations
        settings.initLRFraction = initLrFrac
        settings.evalEvery = evalEvery
        settings.saveEvery = saveEvery
        settings.seed = seed
        let meta = try? Checkpoint.meta(TrainingMeta.self, in: checkpoint, step: baseStep)
        let summary = try SFTRun.run(base: base, baseMeta: meta, tokenizer: tok, conversations: conversations, settings: settings,
                                     resume: resume) { print($0); fflush(nil) }
        print(String(format: "done: %d steps, train loss %.3f → %.3f; checkpoints in %@", summary.steps, summary.firstLoss,
                     summary.lastLoss, out))
    }
}

