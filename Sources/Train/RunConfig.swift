// The keys a config file or `--key=value` may set (nanochat's base_train keys plus the
// hybrid fork's), and the model configuration they imply.
import Blocks

public enum NanochatKeys {
    /// Every known key and its type.
    public static let schema: [String: ConfigType] = [
        // model
        "depth": .int, "n_embd": .int, "n_head": .int, "n_kv_head": .int, "max_seq_len": .int, "vocab_size": .int,
        "block_pattern": .stringList, "mamba_d_state": .int, "mamba_d_conv": .int, "mamba_expand": .int,
        "mamba_use_mlp": .bool,
        // horizon and batch
        "num_iterations": .int, "target_flops": .float, "target_param_data_ratio": .float,
        "device_batch_size": .int, "total_batch_size": .int,
        // optimisation
        "embedding_lr": .float, "unembedding_lr": .float, "matrix_lr": .float, "mamba_lr": .float,
        "weight_decay": .float, "grad_clip": .float, "warmup_ratio": .float, "warmdown_ratio": .float,
        "final_lr_frac": .float,
        // evaluation, sampling, saving
        "eval_every": .int, "eval_tokens": .int, "sample_every": .int, "save_every": .int,
        // locations and run
        "model_tag": .string, "data_dir": .string, "tokenizer_dir": .string, "output_dir": .string,
        "seed": .int, "threads": .int,
    ]

    /// The model configuration of a parsed config: sizes from `depth` (SPEC §1.1) unless
    /// n_embd / n_head / n_kv_head are given; `vocabSize` from the tokenizer when known,
    /// else the `vocab_size` key. Errors name the key.
    public static func modelConfig(_ c: ConfigFile, vocabSize: Int? = nil) throws -> ModelConfig {
        guard let depth = c.int("depth") else { throw c.error(at: "depth", "depth is required (the number of layers)") }
        guard let v = vocabSize ?? c.int("vocab_size") else {
            throw c.error(at: "vocab_size", "vocab_size is required when no tokenizer gives it (add --vocab_size=N)")
        }
        let pattern: [BlockKind]?
        do {
            pattern = try c.list("block_pattern").map(ModelConfig.parsePattern)
        } catch let e as ModelConfigError {
            throw c.error(at: "block_pattern", e.message)
        }
        if let pattern, pattern.count != depth {
            throw c.error(at: "block_pattern",
                          "block_pattern has \(pattern.count) entries but depth is \(depth); give one entry per layer")
        }
        var config = ModelConfig.fromDepth(depth, vocabSize: v, sequenceLen: c.int("max_seq_len") ?? 2048,
                                           blockPattern: pattern, mambaDState: c.int("mamba_d_state") ?? 16,
                                           mambaDConv: c.int("mamba_d_conv") ?? 4, mambaExpand: c.int("mamba_expand") ?? 2,
                                           mambaUseMLP: c.bool("mamba_use_mlp") ?? false)
        if let e = c.int("n_embd") {
            config.nEmbd = e
            config.nHead = max(1, (e + 127) / 128)
            config.nKVHead = config.nHead
        }
        if let h = c.int("n_head") { config.nHead = h; config.nKVHead = h }
        if let kv = c.int("n_kv_head") { config.nKVHead = kv }
        do {
            try config.validate()
        } catch let e as ModelConfigError {
            let key = ["n_kv_head", "n_head", "n_embd", "vocab_size", "max_seq_len", "depth"].first { e.message.contains($0) } ?? "depth"
            throw c.error(at: key, e.message)
        }
        return config
    }
}
