// The settings of one training run, resolved from a config file and its overrides with
// nanochat's base_train defaults; every error names the key and where it was set.
import Blocks
import Foundation

public struct TrainSettings {
    public var model: ModelConfig
    public var deviceBatchSize: Int, sequenceLen: Int, totalBatchSize: Int
    /// Micro-batches per step: total_batch_size / (device_batch_size · max_seq_len).
    public var accumulation: Int { totalBatchSize / (deviceBatchSize * sequenceLen) }
    /// Steps of the run, and which key decided it.
    public var numIterations: Int, horizon: String
    public var optimizer: OptimizerSettings, gradClip: Double
    /// Steps between evaluations, samples and saves; ≤ 0: only at the end (samples: never).
    public var evalEvery: Int, evalTokens: Int, sampleEvery: Int, saveEvery: Int
    public var dataDir: String, tokenizerDir: String, outputDir: String, modelTag: String
    public var seed: UInt64, threads: Int

    /// Resolves `c` (a config file with overrides applied, from `path`) for a tokenizer of
    /// `vocabSize` ids.
    public static func resolve(_ c: ConfigFile, path: String, vocabSize: Int) throws -> TrainSettings {
        let model = try NanochatKeys.modelConfig(c, vocabSize: vocabSize)
        func positive(_ key: String, _ fallback: Int) throws -> Int {
            let v = c.int(key) ?? fallback
            guard v >= 1 else { throw c.error(at: key, "\(key) must be at least 1, got \(v)") }
            return v
        }
        let b = try positive("device_batch_size", 32), t = model.sequenceLen
        let total = try positive("total_batch_size", 524_288)
        guard total % (b * t) == 0 else {
            let lower = max(1, total / (b * t)) * b * t
            throw c.error(at: "total_batch_size",
                          "total_batch_size \(total) is not a multiple of device_batch_size × max_seq_len = \(b) × \(t) = \(b * t) tokens; use \(lower) or \(lower + b * t)")
        }
        var optimizer = OptimizerSettings()
        optimizer.embeddingLR = c.double("embedding_lr") ?? optimizer.embeddingLR
        optimizer.unembeddingLR = c.double("unembedding_lr") ?? optimizer.unembeddingLR
        optimizer.matrixLR = c.double("matrix_lr") ?? optimizer.matrixLR
        optimizer.mambaLR = c.double("mamba_lr") ?? optimizer.mambaLR
        optimizer.weightDecay = c.double("weight_decay") ?? optimizer.weightDecay
        optimizer.warmupRatio = c.double("warmup_ratio") ?? optimizer.warmupRatio
        optimizer.warmdownRatio = c.double("warmdown_ratio") ?? optimizer.warmdownRatio
        optimizer.finalLRFraction = c.double("final_lr_frac") ?? optimizer.finalLRFraction
        for key in ["warmup_ratio", "warmdown_ratio", "final_lr_frac"] {
            if let v = c.double(key), !(0...1).contains(v) { throw c.error(at: key, "\(key) must be in [0, 1], got \(v)") }
        }

        // Horizon, as nanochat: num_iterations, else target_flops, else target_param_data_ratio.
        let iterations: Int, horizon: String
        if let n = c.int("num_iterations"), n > 0 {
            (iterations, horizon) = (n, "num_iterations = \(n)")
        } else if let f = c.double("target_flops"), f > 0 {
            iterations = max(1, Int((f / (model.flopsPerToken * Double(total))).rounded()))
            horizon = String(format: "target_flops = %.3g at %.3g FLOPs/token", f, model.flopsPerToken)
        } else {
            let ratio = c.double("target_param_data_ratio") ?? 20
            guard ratio > 0 else {
                throw c.error(at: "target_param_data_ratio", "no horizon: set num_iterations, target_flops or target_param_data_ratio above 0")
            }
            iterations = max(1, Int(ratio * Double(model.parameterCount)) / total)
            horizon = "target_param_data_ratio = \(ratio) × \(model.parameterCount) parameters"
        }

        let dataDir = c.string("data_dir") ?? "data"
        let tag = c.string("model_tag").flatMap { $0.isEmpty ? nil : $0 }
            ?? ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        let threads = try positive("threads", ProcessInfo.processInfo.activeProcessorCount)
        return TrainSettings(
            model: model, deviceBatchSize: b, sequenceLen: t, totalBatchSize: total,
            numIterations: iterations, horizon: horizon, optimizer: optimizer, gradClip: c.double("grad_clip") ?? 1.0,
            evalEvery: c.int("eval_every") ?? 250, evalTokens: c.int("eval_tokens") ?? 20 * 524_288,
            sampleEvery: c.int("sample_every") ?? 2000, saveEvery: c.int("save_every") ?? -1,
            dataDir: dataDir, tokenizerDir: c.string("tokenizer_dir") ?? "\(dataDir)/tokenizer",
            outputDir: c.string("output_dir") ?? "runs/\(tag)", modelTag: tag,
            seed: UInt64(bitPattern: Int64(c.int("seed") ?? 42)), threads: threads)
    }

    /// Evaluation batches: eval_tokens / (device_batch_size · max_seq_len), at least one.
    public var evalBatches: Int { max(1, evalTokens / (deviceBatchSize * sequenceLen)) }
}
