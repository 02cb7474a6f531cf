// Chat fine-tuning, as nanochat's chat_sft: a base checkpoint trained further on
// conversations, the loss only on what the assistant writes, with the base run's optimisers
// at `init_lr_frac` of its rates, held for the first half of the steps and decayed linearly to
// zero over the second (nanochat's warmdown ratio 0.5). A few conversations are held out for
// a val loss. Checkpoints are the same files as training's; resuming replays the batches
// before the checkpoint's step (cheap: no model work) and continues bit for bit.
import Blocks
import Foundation
import Tensor
import Tokenizer
import Inference

public struct SFTSettings: Sendable {
    public var base: String
    public var baseStep: Int?
    public var output: String
    public var deviceBatchSize = 8, sequenceLen = 256
    /// Micro-batches per step.
    public var accumulation = 1
    /// Steps; nil: one pass over the training conversations.
    public var numIterations: Int?
    public var initLRFraction = 0.8, warmdownRatio = 0.5
    public var evalEvery = 50, saveEvery = 0
    /// Conversations held out for the val loss (the last ones after shuffling).
    public var valConversations = 64
    public var seed: UInt64 = 42
    public init(base: String, output: String) { self.base = base; self.output = output }
}

public struct SFTSummary: Sendable {
    public let steps: Int, firstLoss: Double, lastLoss: Double, valLoss: [(step: Int, loss: Double)]
}

public enum SFTRun {
    /// Conversations held out for the val loss, of `count`: `valConversations`, a tenth of
    /// them at most.
    public static func heldOut(of count: Int, _ s: SFTSettings) -> Int { min(s.valConversations, count / 10) }

    /// Fine-tunes `base` on `conversations`; writes checkpoints and the tokenizer into
    /// settings.output, whose lock it holds while it runs. With `resume`, it continues from the
    /// latest checkpoint in settings.output instead; without, an output holding checkpoints is
    /// refused.
    /// The optimisers of fine-tuning: every group at init_lr_frac of its base rate, no warmup,
    /// decay to zero over the last warmdown_ratio of the steps.
    public static func optimizer(_ s: SFTSettings) -> OptimizerSettings {
        var optimizer = OptimizerSettings()
        optimizer.matrixLR *= s.initLRFraction; optimizer.embeddingLR *= s.initLRFraction
        optimizer.unembeddingLR *= s.initLRFraction; optimizer.mambaLR *= s.initLRFraction
        optimizer.warmupRatio = 0; optimizer.warmdownRatio = s.warmdownRatio; optimizer.finalLRFraction = 0
        return optimizer
    }

    /// The held-out loss: the mean cross-entropy over the assistant tokens (targets not
    /// ignored) of the rows the conversations pack into, one pass; NaN when there are none.
    public static func validationLoss(_ model: GPT, _ conversations: [Conversation], tokenizer: Tokenizer,
                                      batch: Int, sequence: Int) -> Double {
        guard !conversations.isEmpty,
              var vb = try? SFTBatcher(conversations, tokenizer: tokenizer, batch: batch, sequence: sequence) else { return .nan }
        var sum = 0.0, n = 0
        while vb.consumed < conversations.count {
            let (x, y) = vb.next()
            let losses = GradMode.withoutGradients { model.tokenLosses(x, targets: y) }
            for (l, t) in zip(losses, y.values) where t != ignoreIndex { sum += Double(l); n += 1 }
        }
        return n > 0 ? sum / Double(n) : .nan
    }

    public static func run(base: GPT, baseMeta: TrainingMeta?, tokenizer: Tokenizer, conversations: [Conversation],
                           settings s: SFTSettings, resume: Bool, log: (String) -> Void) throws -> SFTSummary {
        let lock = try RunLock(dir: s.output, purpose: "nanochat sft")
        defer { withExtendedLifetime(lock) {} }
        let existing = Checkpoint.steps(in: s.output)
        var model = base, resumeStep: Int? = nil
        if resume {
            guard let last = existing.last else { throw TrainingError("\(s.output) has no checkpoint to resume") }
            model = try Checkpoint.load(from: s.output, step: last).model
            resumeStep = last
        } else if !existing.isEmpty {
            throw TrainingError("\(s.output) already holds checkpoints; --resume continues them, or choose another --out")
        }
        let all = SFTData.shuffled(conversations, seed: s.seed)
        let held = heldOut(of: all.count, s)
        guard all.count - held >= 1 else { throw ChatError("no conversations to train on") }
        let train = Array(all[..<(all.count - held)]), val = Array(all[(all.count - held)...])
        var batcher = try SFTBatcher(train, tokenizer: tokenizer, batch: s.deviceBatchSize, sequence: s.sequenceLen)
        // One pass: enough steps for every conversation to be taken once (rows hold several).
        let perStep = s.deviceBatchSize * s.accumulation
        let total: Int
        if let n = s.numIterations {
            total = n
        } else {
            var probe = batcher
            var steps = 0
            while probe.consumed < train.count { for _ in 0..<s.accumulation { _ = probe.next() }; steps += 1 }
            total = max(steps, 1)
        }
        let trainer = Trainer(model: model, settings: optimizer(s))

        var start = 0
        if let last = resumeStep {
            try OptimizerState.load(into: trainer, from: Checkpoint.optimPath(s.output, step: last))
            for _ in 0..<(last * s.accumulation) { _ = batcher.next() }
            trainer.step = last
            start = last
            log("resumed from \(s.output) step \(last)")
        }
        try AtomicFile.makeDirectories(s.output)
        try tokenizer.save(to: "\(s.output)/tokenizer")
        log("sft: \(train.count) conversations (\(val.count) held out), \(total) steps of \(perStep) rows × \(s.sequenceLen + 1) tokens, "
            + "rates × \(s.initLRFraction)")

        func valLoss() -> Double {
            validationLoss(model, val, tokenizer: tokenizer, batch: s.deviceBatchSize, sequence: s.sequenceLen)
        }

        var first = Double.nan, lastLoss = Double.nan
        var vals: [(Int, Double)] = []
        var step = start
        while true {
            let done = step == total
            if done || (s.evalEvery > 0 && step % s.evalEvery == 0) {
                let v = valLoss()
                vals.append((step, v))
                log(String(format: "step %05d | val loss %.4f (assistant tokens of %d held-out conversations)", step, v, val.count))
            }
            if step > start && (done || (s.saveEvery > 0 && step % s.saveEvery == 0)) {
                try OptimizerState.save(trainer, to: Checkpoint.optimPath(s.output, step: step))
                try Checkpoint.save(model, step: step, to: s.output, extra: TrainingMeta(
                    valBPB: nil, userConfig: baseMeta?.userConfig ?? [:], resume: nil, tokenizerDir: "tokenizer",
                    tokenizerHash: tokenizer.identity))
                log("saved \(Checkpoint.modelPath(s.output, step: step))")
            }
            if done { break }
            let batches = (0..<s.accumulation).map { _ in batcher.next() }
            let t0 = Date()
            let loss = try trainer.step(batches, totalSteps: total)
            if first.isNaN { first = loss }
            lastLoss = loss
            log(String(format: "step %05d/%05d | loss: %.6f | lrm: %.2f | dt: %.0fms", step + 1, total, loss,
                       trainer.lastLRMultiplier, Date().timeIntervalSince(t0) * 1000))
            step += 1
        }
        return SFTSummary(steps: step - start, firstLoss: first, lastLoss: lastLoss, valLoss: vals)
    }
}
