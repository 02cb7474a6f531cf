// One training run, as nanochat's base_train: evaluate val bpb every eval_every steps (and the
// CORE metric every core_metric_every), sample from fixed prompts every sample_every, save
// every save_every and at the end, and in between
// take optimisation steps of total_batch_size tokens. Writes metrics.jsonl and loss.svg beside
// the checkpoints. A resumed run restores weights, optimiser state, data position, step and
// the smoothed loss, so it continues exactly as the run that never stopped. Nothing random
// happens after initialisation (the data order is fixed and samples are greedy), so the seed
// only matters for the initial weights.
import Blocks
import Evaluation
import Foundation
import Tensor
import Tokenizer
import Inference

public struct TrainingError: UserFacingError, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Where to resume from.
public enum ResumePoint: Equatable, Sendable {
    case latest
    case step(Int)
}

public struct TrainingSummary: Sendable {
    /// Steps this process trained (a resumed run: those after its checkpoint).
    public let steps: Int
    /// (step, val bpb) of every evaluation of this process.
    public let evaluations: [(step: Int, bpb: Double)]
    public let medianTokensPerSecond: Double
}

public final class TrainingRun {
    /// Prompts sampled every sample_every steps, greedily, each after <|bos|>.
    public static let samplePrompts = ["ROMEO:\n", "To be, or not to be", "The capital of France is"]

    let settings: TrainSettings
    let tokenizer: Tokenizer
    let log: (String) -> Void
    let train: TokenStream, val: TokenStream
    let model: GPT
    let trainer: Trainer
    var loader: BatchLoader
    var epoch = 0
    var smoothLoss = 0.0
    var elapsed = 0.0
    let startStep: Int
    let resumed: Bool
    let peakGFLOPS: Double
    /// The metrics file rows go to: metrics.jsonl, or while this run is to replace an earlier
    /// one's results, metrics.jsonl.next, which becomes metrics.jsonl at the first save (so a
    /// run stopped before it leaves the earlier metrics and chart as they were).
    var metricsPath: String
    /// Steps of an earlier run's checkpoints that this run replaces at its first save: all of
    /// them for a fresh run with `overwrite`, those after the resumed step for a resumed one.
    var replacing: [Int]
    /// Whether the first save is still to come and replaces an earlier run's results.
    var replacementPending: Bool
    /// The ranks of a data-parallel run; only rank 0 writes files.
    let world: (any Collectives)?
    /// The output directory's lock, held (by the rank that writes) while the run lives.
    let lock: RunLock?
    var writes: Bool { world?.isRoot ?? true }
    /// The CORE tasks and their examples (in evaluation order, cut to
    /// core_metric_max_per_task), read before training when core_metric_every > 0.
    let core: [(task: CoreTask, examples: [CoreExample])]

    /// Sets up the run: the output directory's lock, shards, tokenizer copy, model (fresh or
    /// from a checkpoint), optimisers. Everything that can fail on the input is checked before
    /// anything is written. A fresh run into a directory holding checkpoints is refused unless
    /// `overwrite`, and then removes them only once its own first checkpoint is saved.
    public init(settings: TrainSettings, tokenizer: Tokenizer, resume: ResumePoint?, overwrite: Bool = false,
                world: (any Collectives)? = nil, log: @escaping (String) -> Void) throws {
        self.settings = settings
        self.tokenizer = tokenizer
        self.log = log
        self.world = world
        // One run per directory (rank 0 writes for all), taken before anything is looked at.
        lock = try (world?.isRoot ?? true) ? RunLock(dir: settings.outputDir, purpose: "nanochat train") : nil
        let existing = Checkpoint.steps(in: settings.outputDir)
        if resume == nil && !existing.isEmpty && !overwrite {
            throw TrainingError("\(settings.outputDir) already holds checkpoints (steps \(existing.map(String.init).joined(separator: ", "))); "
                                + "--resume continues the latest, --overwrite replaces them with a fresh run's (at its first save), or set --output_dir=DIR")
        }
        if case .step(let s)? = resume, existing.contains(s) {
            let later = existing.filter { $0 > s }
            if !later.isEmpty && !overwrite {
                throw TrainingError("\(settings.outputDir) holds checkpoints after step \(s) (steps \(later.map(String.init).joined(separator: ", "))); "
                                    + "resuming from step \(s) would replace them: --resume continues the latest, --overwrite replaces them "
                                    + "(at this run's first save), or copy the checkpoint into another output_dir")
            }
            replacing = later
        } else {
            replacing = resume == nil ? existing : []   // (a step that is not there is refused below)
        }
        replacementPending = !replacing.isEmpty
        // Weights, gradients and optimiser state, and the largest activations: a micro-batch's
        // logits with their softmax and gradient.
        let logits = Double(settings.deviceBatchSize) * Double(settings.sequenceLen) * Double(settings.model.vocabSize) * 12
        try settings.model.checkFitsInMemory(Double(settings.model.weightBytes) * 4 + logits,
                                             for: "its weights, gradients, optimiser state and a micro-batch's logits")
        Parallel.setThreadCount(settings.threads)
        if settings.coreEvery > 0, let path = settings.coreBundle {
            core = try CoreBundle(directory: path).evaluationSets(maxPerTask: settings.coreMaxPerTask, limit: "core_metric_max_per_task")
        } else {
            core = []
        }
        (train, val) = try DataPreparation.openShards(settings.dataDir, vocabSize: tokenizer.vocabSize,
                                                      tokenizerIdentity: tokenizer.identity)
        let micro = settings.deviceBatchSize * settings.sequenceLen + 1
        guard train.count >= micro else {
            throw ShardError(path: train.path, "\(train.count) tokens, fewer than one micro-batch of \(settings.deviceBatchSize)×\(settings.sequenceLen)+1")
        }
        guard val.count >= micro else {
            throw ShardError(path: val.path, "\(val.count) tokens, fewer than one evaluation batch of \(settings.deviceBatchSize)×\(settings.sequenceLen)+1")
        }
        let dir = settings.outputDir
        metricsPath = "\(dir)/metrics.jsonl" + (replacementPending ? ".next" : "")
        var position = 0
        if let resume {
            let available = Checkpoint.steps(in: dir)
            let step: Int
            switch resume {
            case .latest:
                guard let last = available.last else { throw TrainingError("\(dir): no checkpoint to resume from (no meta_*.json)") }
                step = last
            case .step(let s):
                guard available.contains(s) else {
                    throw TrainingError(available.isEmpty ? "\(dir): no checkpoint to resume from (no meta_*.json)"
                                        : "\(dir): no checkpoint for step \(s) (have: \(available.map(String.init).joined(separator: ", ")))")
                }
                step = s
            }
            let loaded = try Checkpoint.load(from: dir, step: step).model
            try Self.checkSameModel(loaded.config, settings.model, meta: Checkpoint.metaPath(dir, step: step))
            let meta = try Checkpoint.meta(TrainingMeta.self, in: dir, step: step)
            let metaPath = Checkpoint.metaPath(dir, step: step)
            if case .string(let then)? = meta.userConfig["dtype"], then != settings.precision.rawValue {
                log("warning: \(metaPath): the run so far multiplied in \(then), this continuation in \(settings.precision.rawValue): "
                    + "it goes on, but not bit for bit as the uninterrupted run would (--dtype=\(then) keeps the run's precision)")
            }
            guard let state = meta.resume else {
                throw TrainingError("\(metaPath): no resume state; this checkpoint was not written by `nanochat train`")
            }
            if let hash = meta.tokenizerHash, hash != tokenizer.identity {
                throw TrainingError("\(metaPath): the checkpoint was trained with another tokenizer (hash \(hash)) than the one in use "
                                    + "(\(tokenizer.identity), \(settings.tokenizerDir)); give the run's own tokenizer_dir")
            }
            guard state.trainPosition >= 0, state.trainPosition <= train.count, state.epoch >= 0,
                  state.smoothLoss.isFinite, state.elapsedSeconds.isFinite, state.elapsedSeconds >= 0 else {
                throw TrainingError("\(metaPath): resume state out of range (train_position \(state.trainPosition) must be in 0...\(train.count), "
                                    + "epoch \(state.epoch) ≥ 0, smooth_loss finite, elapsed_seconds \(state.elapsedSeconds) finite and ≥ 0)")
            }
            if let then = state.trainTokens, then != train.count {
                throw TrainingError("\(metaPath): the checkpoint was trained on a train stream of \(then) tokens, but \(settings.dataDir) now "
                                    + "holds \(train.count); resuming on other data would not continue the same stream (prepare it as it was, "
                                    + "or start a fresh run)")
            }
            guard step <= settings.numIterations else {
                throw TrainingError("\(Checkpoint.metaPath(dir, step: step)): step \(step) is past the run's \(settings.numIterations) steps (\(settings.horizon))")
            }
            model = loaded
            trainer = Trainer(model: model, settings: settings.optimizer, world: world)
            try OptimizerState.load(into: trainer, from: Checkpoint.optimPath(dir, step: step))
            trainer.step = step
            (position, epoch, smoothLoss, elapsed) = (state.trainPosition, state.epoch, state.smoothLoss, state.elapsedSeconds)
            startStep = step
            resumed = true
        } else {
            model = try GPT(config: settings.model, seed: settings.seed)
            trainer = Trainer(model: model, settings: settings.optimizer, world: world)
            startStep = 0
            resumed = false
        }
        loader = BatchLoader(stream: train, batch: settings.deviceBatchSize, sequence: settings.sequenceLen, position: position)
        if world?.isRoot ?? true {
            try AtomicFile.makeDirectories(dir)
            AtomicFile.removeStale(in: dir)
            AtomicFile.removeStale(in: "\(dir)/tokenizer")
            try tokenizer.save(to: "\(dir)/tokenizer")
            try MetricsFile.start(metricsPath, from: "\(dir)/metrics.jsonl", after: startStep, fresh: !resumed)
        }
        peakGFLOPS = gemmPeak(threads: settings.threads)
    }

    /// The checkpoint's model must be the config's; the error lists the differing keys.
    static func checkSameModel(_ saved: ModelConfig, _ wanted: ModelConfig, meta: String) throws {
        guard saved != wanted else { return }
        let a = (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(saved))) as? [String: Any] ?? [:]
        let b = (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(wanted))) as? [String: Any] ?? [:]
        func compact(_ v: Any?) -> String {
            guard let v, let d = try? JSONSerialization.data(withJSONObject: v, options: [.fragmentsAllowed]) else { return "none" }
            return String(decoding: d, as: UTF8.self)
        }
        let keys = a.keys.sorted().filter { compact(a[$0]) != compact(b[$0]) }
        let diffs = keys.map { "\($0): checkpoint \(compact(a[$0])), config \(compact(b[$0]))" }
        throw TrainingError("\(meta): the checkpoint is of another model than the config; \(diffs.joined(separator: "; "))")
    }

    /// Runs to num_iterations, its products in the settings' precision (on this thread alone:
    /// the process's precision, which other work in the process may use, is left as it is).
    /// NaN or Inf stops it with the step and tensor named; the checkpoints already saved stay
    /// as they are.
    public func run() throws -> TrainingSummary {
        try Precision.with(settings.precision) { try runSteps() }
    }

    private func runSteps() throws -> TrainingSummary {
        let s = settings, total = s.numIterations
        let tokensPerStep = s.totalBatchSize
        log("model: \(s.model.parameterCount) parameters, pattern \(s.model.blockPattern.map(\.rawValue).joined()), "
            + "d_model \(s.model.nEmbd), \(s.model.nHead) heads, vocab \(s.model.vocabSize), \(String(format: "%.3g", s.model.flopsPerToken)) FLOPs/token")
        let ranks = s.worldSize > 1 ? " × \(s.worldSize) ranks" : ""
        log("batch: \(tokensPerStep) tokens/step = \(s.accumulation) × \(s.deviceBatchSize) × \(s.sequenceLen)\(ranks); "
            + "\(total) steps (\(s.horizon)); train \(train.count) tokens in \(train.shards.count) shard(s), val \(val.count)")
        if let world {
            log(String(format: "ranks: %d × %d threads; sgemm peak %.1f GFLOPS per rank (MFU is quoted against %d × it); "
                       + "optimiser state %.1f MiB on rank 0, sharded over the ranks; exchange: %@",
                       world.size, s.threads, peakGFLOPS, world.size, Double(trainer.stateBytes) / 1_048_576, trainer.exchangeRoute))
        } else {
            log(String(format: "threads: %d; sgemm peak %.1f GFLOPS (MFU is quoted against it); optimiser state %.1f MiB",
                       s.threads, peakGFLOPS, Double(trainer.stateBytes) / 1_048_576))
        }
        log(HostCPU.summary)
        log(Precision.summary + (s.precision == .bfloat16 ? " (bf16 operands, fp32 sums; weights, gradients and optimiser state fp32)" : ""))
        for warning in HostCPU.warnings + [HostCPU.peakWarning(measured: peakGFLOPS, threads: s.threads)].compactMap({ $0 }) {
            log("warning: \(warning)")
        }
        if resumed { log("resumed from \(s.outputDir) step \(startStep) (data position \(loader.position), epoch \(epoch))") }

        var evaluations: [(step: Int, bpb: Double)] = [], rates: [Double] = []
        var lastBPB: Double? = nil, sessionTime = 0.0, sessionSteps = 0
        var step = startStep
        while true {
            let last = step == total
            let atStart = resumed && step == startStep
            if !atStart && (last || (s.evalEvery > 0 && step % s.evalEvery == 0)) {
                let e = try Evaluator.evaluate(model, stream: val, batch: s.deviceBatchSize, sequence: s.sequenceLen,
                                               maxBatches: s.evalBatches, byteLengths: tokenizer.byteLengths, world: world)
                lastBPB = e.bpb
                if let bpb = e.bpb { evaluations.append((step, bpb)) }
                log(String(format: "step %05d | val loss %.4f | val bpb %.4f (%d tokens)", step, e.loss, e.bpb ?? .nan, e.tokens))
                if writes {
                    try MetricsFile.append(.evaluation(step: step, loss: e.loss, bpb: e.bpb), to: metricsPath)
                    writeChart()
                }
            }
            if !core.isEmpty && !atStart && (last || (step > 0 && step % s.coreEvery == 0)) { try evaluateCore(step: step) }
            if writes && !atStart && s.sampleEvery > 0 && step > 0 && (last || step % s.sampleEvery == 0) { logSamples() }
            if step > startStep && (last || (s.saveEvery > 0 && step % s.saveEvery == 0)) {
                try save(step: step, valBPB: lastBPB)
            }
            if last { break }

            let batches = nextBatches()
            let t0 = clockNow()
            let loss: Double
            do {
                loss = try trainer.step(batches, totalSteps: total)
            } catch let e as NonFiniteError {
                let saved = Checkpoint.steps(in: s.outputDir).last.map { "the last checkpoint, step \($0) in \(s.outputDir), is kept" }
                    ?? "no checkpoint had been saved"
                throw TrainingError("step \(e.step): \(e.tensor) is NaN or Inf; training stopped and \(saved)")
            }
            let dt = seconds(since: t0)
            elapsed += dt; sessionTime += dt; sessionSteps += 1
            smoothLoss = 0.9 * smoothLoss + 0.1 * loss
            let debiased = smoothLoss / (1 - pow(0.9, Double(step + 1)))
            let rate = Double(tokensPerStep) / dt
            rates.append(rate)
            let mfu = s.model.flopsPerToken * rate / (peakGFLOPS * 1e9 * Double(s.worldSize)) * 100
            let eta = sessionTime / Double(sessionSteps) * Double(total - step - 1)
            let comm = world == nil ? "" : Self.exchangeText(wait: trainer.lastWaitSeconds, reduce: trainer.lastReduceSeconds,
                                                             gather: trainer.lastBroadcastSeconds)
            log(String(format: "step %05d/%05d (%.2f%%) | loss: %.6f | lrm: %.2f | dt: %.2fms | tok/sec: %@ | mfu: %.2f | total time: %.2fm | eta: %.1fm",
                       step + 1, total, Double(step + 1) / Double(total) * 100, debiased, trainer.lastLRMultiplier, dt * 1000,
                       Self.grouped(Int(rate)), mfu, elapsed / 60, eta / 60) + comm)
            if writes {
                try MetricsFile.append(MetricsRow(kind: "train", step: step + 1, loss: loss, smoothLoss: debiased, lrm: trainer.lastLRMultiplier,
                                                  dtMs: dt * 1000, tokPerSec: rate, mfu: mfu, elapsedS: elapsed), to: metricsPath)
            }
            step += 1
        }
        trainer.settleWeights()
        if writes { writeChart() }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        log(String(format: "memory: peak RSS %.0f MiB%@", Double(usage.ru_maxrss) / 1024, world == nil ? "" : " (rank 0)"))
        let sorted = rates.sorted()
        return TrainingSummary(steps: step - startStep, evaluations: evaluations,
                               medianTokensPerSecond: sorted.isEmpty ? 0 : sorted[sorted.count / 2])
    }

    /// This rank's micro-batches of the next step. A step takes the next N·A windows of
    /// the train stream (SPEC §3.2 order, N ranks of A micro-batches each), whatever N is; rank r
    /// reads windows r·A ..< (r+1)·A and moves past the others.
    func nextBatches() -> [(x: IndexTensor, y: IndexTensor)] {
        let a = settings.accumulation, rank = world?.rank ?? 0
        var mine: [(x: IndexTensor, y: IndexTensor)] = []
        for w in 0..<(a * settings.worldSize) {
            if w / a == rank {
                mine.append(nextWindow())
            } else {
                skipWindow()
            }
        }
        return mine
    }

    /// The next window, going back to the start of the train stream (a new epoch) at its end.
    func nextWindow() -> (x: IndexTensor, y: IndexTensor) {
        if let b = loader.next() { return b }
        newEpoch()
        return loader.next()!   // init checked that one micro-batch fits
    }

    func skipWindow() {
        if loader.skip() { return }
        newEpoch()
        _ = loader.skip()
    }

    func newEpoch() {
        epoch += 1
        loader = BatchLoader(stream: train, batch: settings.deviceBatchSize, sequence: settings.sequenceLen)
    }

    /// Saves a checkpoint. Every rank calls it (the optimiser state may be sharded); rank 0
    /// writes the files.
    func save(step: Int, valBPB: Double?) throws {
        let dir = settings.outputDir
        try OptimizerState.save(trainer, to: Checkpoint.optimPath(dir, step: step))
        guard writes else { return }
        let (shard, offset) = train.locate(loader.position)
        let resume = ResumeState(trainPosition: loader.position, epoch: epoch, smoothLoss: smoothLoss,
                                 elapsedSeconds: elapsed, numIterations: settings.numIterations,
                                 trainShard: shard, shardOffset: offset, trainTokens: train.count)
        try Checkpoint.save(model, step: step, to: dir, extra: TrainingMeta(
            valBPB: valBPB, userConfig: settings.userConfig, resume: resume, tokenizerDir: "tokenizer",
            tokenizerHash: tokenizer.identity))
        log("saved \(Checkpoint.modelPath(dir, step: step))")
        let old = replacing.filter { $0 != step }
        replacing = []
        if !old.isEmpty {
            try Checkpoint.remove(steps: old, in: dir)
            log("removed the earlier run's checkpoints (steps \(old.map(String.init).joined(separator: ", ")))")
        }
        if replacementPending {
            let final = "\(dir)/metrics.jsonl"
            guard rename(metricsPath, final) == 0 else {
                throw TrainingError("\(final): cannot move this run's metrics into place: \(String(cString: strerror(errno)))")
            }
            metricsPath = final
            replacementPending = false
            writeChart()
        }
    }

    /// The CORE metric on the bundle's tasks (each rank scoring every N-th example), logged
    /// and written to the metrics as a `core` row.
    func evaluateCore(step: Int) throws {
        let results = try Evaluator.core(core, model: model, tokenizer: tokenizer, world: world)
        let metric = CoreScoring.core(results)
        log(String(format: "step %05d | CORE metric: %.4f", step, metric) + " ("
            + results.map { String(format: "%@ %.4f", $0.task.label, $0.centered) }.joined(separator: ", ") + ")")
        if writes {
            var row = MetricsRow(kind: "core", step: step)
            row.coreMetric = metric
            row.centeredResults = Dictionary(uniqueKeysWithValues: results.map { ($0.task.label, $0.centered) })
            try MetricsFile.append(row, to: metricsPath)
        }
    }

    func logSamples() {
        for prompt in Self.samplePrompts {
            var sampler = Sampler(temperature: 0, topK: 0, seed: 0)
            var ids: [Int32] = []
            Generator.generate(model, prompt: [tokenizer.bosID] + tokenizer.encode(prompt), maxNewTokens: 32,
                               sampler: &sampler) { id in
                guard id != tokenizer.bosID else { return false }
                ids.append(id)
                return true
            }
            let text = (try? tokenizer.decode(ids)) ?? ""
            log("sample: \(prompt.debugDescription) → \(text.debugDescription)")
        }
    }

    /// loss.svg: the smoothed train loss and the val loss (nats per token) against steps.
    func writeChart() {
        guard !replacementPending, let rows = try? MetricsFile.read(metricsPath) else { return }
        let trainPoints = rows.compactMap { r in r.smoothLoss.map { (x: Double(r.step), y: $0) } }
        let valPoints = rows.compactMap { r in r.valLoss.map { (x: Double(r.step), y: $0) } }
        let lastBPB = rows.last { $0.valBPB != nil }?.valBPB
        let pattern = settings.model.blockPattern.map(\.rawValue).joined()
        let title = "\(settings.modelTag) (\(pattern)): loss" + (lastBPB.map { String(format: " (last val bpb %.3f)", $0) } ?? "")
        let chart = LineChart(title: title, xLabel: "step", yLabel: "loss (nats/token)",
                              series: [.init(name: "train (smoothed)", points: trainPoints),
                                       .init(name: "val", points: valPoints, markers: true)])
        try? AtomicFile.write(Data(chart.svg().utf8), to: "\(settings.outputDir)/loss.svg")
    }

    /// A data-parallel step's exchange, as its line ends: the wait for the slowest rank, the
    /// reduce-scatter and the all-gather, each given in seconds and shown in milliseconds.
    public static func exchangeText(wait: Double, reduce: Double, gather: Double) -> String {
        String(format: " | wait: %.1fms | reduce-scatter: %.1fms | all-gather: %.1fms", wait * 1000, reduce * 1000, gather * 1000)
    }

    public static func grouped(_ n: Int) -> String {
        let digits = Array(String(n))
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(d)
        }
        return out
    }
}
