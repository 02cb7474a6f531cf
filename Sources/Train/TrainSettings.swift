// The settings of one training run, resolved from a config file and its overrides with the
// defaults of `TrainingKeys`; every error names the key and where it was set.
import Blocks
import Foundation
import Tensor

public struct TrainSettings {
    public var model: ModelConfig
    public var deviceBatchSize: Int, sequenceLen: Int, totalBatchSize: Int
    /// Ranks of a data-parallel run (1 without MPI).
    public var worldSize = 1
    /// Micro-batches per step on each rank: total_batch_size / (device_batch_size ·
    /// max_seq_len · ranks).
    public var accumulation: Int { totalBatchSize / (deviceBatchSize * sequenceLen * worldSize) }
    /// Steps of the run, and which key decided it.
    public var numIterations: Int, horizon: String
    public var optimizer: OptimizerSettings
    /// Steps between evaluations, samples and saves; ≤ 0: only at the end (samples: never).
    public var evalEvery: Int, evalTokens: Int, sampleEvery: Int, saveEvery: Int
    public var dataDir: String, tokenizerDir: String, outputDir: String, modelTag: String
    public var seed: UInt64, threads: Int
    /// The precision of the matrix products (the `dtype` key).
    public var precision: MatmulPrecision
    /// Steps between CORE evaluations (≤ 0: none), examples per task (nil: all), and the
    /// bundle they read.
    public var coreEvery = -1, coreMaxPerTask: Int? = 500, coreBundle: String? = nil
    /// Every key of `TrainingKeys` with the value this run uses (those that follow from
    /// other keys or from the machine filled in): meta_S.json's user_config.
    public var userConfig: [String: ConfigValue]

    /// Resolves `c` (a config file with overrides applied, from `path`) for a tokenizer of
    /// `vocabSize` ids, run on `worldSize` ranks.
    public static func resolve(_ c: ConfigFile, path: String, vocabSize: Int, worldSize: Int = 1) throws -> TrainSettings {
        let model = try TrainingKeys.modelConfig(c, vocabSize: vocabSize)
        func positive(_ key: String, most: Int) throws -> Int {
            let v = try c.requiredInt(key)
            guard (1...most).contains(v) else { throw c.error(at: key, "\(key) must be in 1...\(most), got \(v)") }
            return v
        }
        let b = try positive("device_batch_size", most: 1 << 20), t = model.sequenceLen
        let total = try positive("total_batch_size", most: 1 << 40)
        if worldSize == 1 {
            guard total % (b * t) == 0 else {
                let lower = max(1, total / (b * t)) * b * t
                throw c.error(at: "total_batch_size",
                              "total_batch_size \(total) is not a multiple of device_batch_size × max_seq_len = \(b) × \(t) = \(b * t) tokens; use \(lower) or \(lower + b * t)")
            }
        } else {
            let step = b * t * worldSize
            guard total % step == 0 else {
                let lower = max(1, total / step) * step
                throw c.error(at: "total_batch_size",
                              "total_batch_size \(total) is not a multiple of device_batch_size × max_seq_len × ranks = \(b) × \(t) × \(worldSize) = \(step) tokens; use \(lower) or \(lower + step)")
            }
        }
        var optimizer = OptimizerSettings()
        optimizer.embeddingLR = try c.requiredDouble("embedding_lr")
        optimizer.unembeddingLR = try c.requiredDouble("unembedding_lr")
        optimizer.matrixLR = try c.requiredDouble("matrix_lr")
        optimizer.mambaLR = try c.requiredDouble("mamba_lr")
        optimizer.weightDecay = try c.requiredDouble("weight_decay")
        optimizer.warmupRatio = try c.requiredDouble("warmup_ratio")
        optimizer.warmdownRatio = try c.requiredDouble("warmdown_ratio")
        optimizer.finalLRFraction = try c.requiredDouble("final_lr_frac")
        optimizer.gradClip = try c.requiredDouble("grad_clip")
        optimizer.overlapExchange = try c.requiredBool("overlap_exchange")
        for (key, v) in [("warmup_ratio", optimizer.warmupRatio), ("warmdown_ratio", optimizer.warmdownRatio),
                         ("final_lr_frac", optimizer.finalLRFraction)] where !(0...1).contains(v) {
            throw c.error(at: key, "\(key) must be in [0, 1], got \(v)")
        }
        for (key, v) in [("embedding_lr", optimizer.embeddingLR), ("unembedding_lr", optimizer.unembeddingLR),
                         ("matrix_lr", optimizer.matrixLR), ("mamba_lr", optimizer.mambaLR),
                         ("weight_decay", optimizer.weightDecay), ("grad_clip", optimizer.gradClip)] where !(v.isFinite && v >= 0) {
            throw c.error(at: key, "\(key) must be a finite number ≥ 0, got \(v)")
        }

        // Horizon, as nanochat: num_iterations, else target_flops, else target_param_data_ratio.
        let iterations: Int, horizon: String
        let n = try c.requiredInt("num_iterations"), flops = try c.requiredDouble("target_flops")
        guard n <= maxIterations else {
            throw c.error(at: "num_iterations", "num_iterations must be at most \(maxIterations), got \(n)")
        }
        if n > 0 {
            (iterations, horizon) = (n, "num_iterations = \(n)")
        } else if flops > 0 {
            iterations = try Self.steps((flops / (model.flopsPerToken * Double(total))).rounded(), from: "target_flops", c)
            horizon = String(format: "target_flops = %.3g at %.3g FLOPs/token", flops, model.flopsPerToken)
        } else {
            let ratio = try c.requiredDouble("target_param_data_ratio")
            guard ratio > 0 else {
                throw c.error(at: "target_param_data_ratio", "no horizon: set num_iterations, target_flops or target_param_data_ratio above 0")
            }
            iterations = try Self.steps((ratio * Double(model.parameterCount) / Double(total)).rounded(.down), from: "target_param_data_ratio", c)
            horizon = "target_param_data_ratio = \(ratio) × \(model.parameterCount) parameters"
        }

        let dataDir = try c.requiredString("data_dir")
        let tag = c.string("model_tag").flatMap { $0.isEmpty ? nil : $0 }
            ?? ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        let threads = c.int("threads") ?? ProcessInfo.processInfo.activeProcessorCount
        guard (1...Parallel.maxThreads).contains(threads) else {
            throw c.error(at: "threads", "threads must be in 1...\(Parallel.maxThreads), got \(threads)")
        }
        let precision: MatmulPrecision
        if let name = c.string("dtype") {
            guard let p = MatmulPrecision(rawValue: name) else {
                throw c.error(at: "dtype", "dtype must be bfloat16 or float32, got \"\(name)\"")
            }
            precision = p
        } else {
            precision = Precision.fastest
        }
        let tokenizerDir = TrainingKeys.tokenizerDir(c)
        let outputDir = c.string("output_dir") ?? "runs/\(tag)"

        // user_config: every key as used.
        var used = TrainingKeys.values(c)
        used["n_embd"] = .int(model.nEmbd); used["n_head"] = .int(model.nHead); used["n_kv_head"] = .int(model.nKVHead)
        used["vocab_size"] = .int(model.vocabSize)
        used["block_pattern"] = .list(model.blockPattern.map(\.rawValue))
        used["model_tag"] = .string(tag); used["tokenizer_dir"] = .string(tokenizerDir)
        used["output_dir"] = .string(outputDir); used["threads"] = .int(threads)
        used["dtype"] = .string(precision.rawValue)

        var settings = TrainSettings(
            model: model, deviceBatchSize: b, sequenceLen: t, totalBatchSize: total,
            numIterations: iterations, horizon: horizon, optimizer: optimizer,
            evalEvery: try c.requiredInt("eval_every"), evalTokens: try c.requiredInt("eval_tokens"),
            sampleEvery: try c.requiredInt("sample_every"), saveEvery: try c.requiredInt("save_every"),
            dataDir: dataDir, tokenizerDir: tokenizerDir, outputDir: outputDir, modelTag: tag,
            seed: UInt64(bitPattern: Int64(try c.requiredInt("seed"))), threads: threads, precision: precision,
            userConfig: used)
        settings.worldSize = worldSize
        settings.coreEvery = try c.requiredInt("core_metric_every")
        let perTask = try c.requiredInt("core_metric_max_per_task")
        settings.coreMaxPerTask = perTask > 0 ? perTask : nil
        settings.coreBundle = c.string("core_bundle")
        if settings.coreEvery > 0 && settings.coreBundle == nil {
            throw c.error(at: "core_metric_every", "core_metric_every needs core_bundle: the directory of a CORE eval bundle (core.yaml, eval_meta_data.csv, eval_data/)")
        }
        return settings
    }

    /// The most steps a run may have.
    public static let maxIterations = 1_000_000_000

    /// A step count computed from `key`, at least 1 and at most `maxIterations`.
    static func steps(_ v: Double, from key: String, _ c: ConfigFile) throws -> Int {
        guard v <= Double(maxIterations) else {
            throw c.error(at: key, "\(key) gives \(String(format: "%.3g", v)) steps, more than the \(maxIterations) a run may have")
        }
        return max(1, Int(v))
    }

    /// Evaluation batches: eval_tokens / (device_batch_size · max_seq_len), at least one.
    public var evalBatches: Int { max(1, evalTokens / (deviceBatchSize * sequenceLen)) }
}
