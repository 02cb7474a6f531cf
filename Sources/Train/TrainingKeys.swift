// The keys a config file or `--key=value` may set: nanochat's base_train keys, the hybrid
// fork's, and this project's own, in one table with each key's type, default and help. The
// parser checks against it, `nanochat train --help` prints it, `TrainSettings` reads its
// defaults from it, and meta_S.json's user_config lists every key of it with the value used.
import Blocks

/// One known key.
public struct ConfigKey: Sendable {
    public let name: String
    public let type: ConfigType
    /// The value when the config leaves the key out; nil when it follows from other keys or
    /// from the machine (the help says how) or is required.
    public let defaultValue: ConfigValue?
    /// One line for `--help`.
    public let help: String

    init(_ name: String, _ type: ConfigType, _ defaultValue: ConfigValue?, _ help: String) {
        self.name = name; self.type = type; self.defaultValue = defaultValue; self.help = help
    }
}

public enum TrainingKeys {
    private static let optimizer = OptimizerSettings()

    /// Every key, in the order `--help` and user_config list them.
    public static let all: [ConfigKey] = [
        // model (SPEC §1.1)
        ConfigKey("depth", .int, nil, "the number of layers, from which the sizes follow"),
        ConfigKey("n_embd", .int, nil, "width C (default 64 · depth)"),
        ConfigKey("n_head", .int, nil, "attention heads (default ⌈n_embd / 128⌉)"),
        ConfigKey("n_kv_head", .int, nil, "key/value heads, dividing n_head (default n_head)"),
        ConfigKey("max_seq_len", .int, .int(2048), "tokens per training sequence"),
        ConfigKey("vocab_size", .int, nil, "vocabulary size (default: the tokenizer's)"),
        ConfigKey("block_pattern", .stringList, ConfigValue.none, "one entry per layer, \"T\" or \"M\" (None: all \"T\")"),
        ConfigKey("mamba_d_state", .int, .int(MambaDefaults.dState), "Mamba state size N"),
        ConfigKey("mamba_d_conv", .int, .int(MambaDefaults.dConv), "Mamba convolution width K"),
        ConfigKey("mamba_expand", .int, .int(MambaDefaults.expand), "Mamba inner width Di = expand · C"),
        ConfigKey("mamba_use_mlp", .bool, .bool(MambaDefaults.useMLP), "an MLP after each Mamba mixer"),
        // horizon and batch (SPEC §2)
        ConfigKey("num_iterations", .int, .int(-1), "steps of the run (≤ 0: from target_flops or the ratio)"),
        ConfigKey("target_flops", .float, .float(-1), "training FLOPs that set the steps (≤ 0: unused)"),
        ConfigKey("target_param_data_ratio", .float, .float(20), "tokens per parameter that set the steps"),
        ConfigKey("device_batch_size", .int, .int(32), "sequences per micro-batch"),
        ConfigKey("total_batch_size", .int, .int(524_288), "tokens per step, a multiple of a micro-batch's"),
        // optimisation (SPEC §2)
        ConfigKey("embedding_lr", .float, .float(optimizer.embeddingLR), "AdamW rate of wte (× (C/768)^-½)"),
        ConfigKey("unembedding_lr", .float, .float(optimizer.unembeddingLR), "AdamW rate of lm_head (× (C/768)^-½)"),
        ConfigKey("matrix_lr", .float, .float(optimizer.matrixLR), "Muon rate of the layers' matrices"),
        ConfigKey("mamba_lr", .float, .float(optimizer.mambaLR), "AdamW rate of A_log, D, conv1d.*, dt_proj.bias"),
        ConfigKey("weight_decay", .float, .float(optimizer.weightDecay), "AdamW weight decay"),
        ConfigKey("grad_clip", .float, .float(optimizer.gradClip), "global gradient norm clip (0: off)"),
        ConfigKey("warmup_ratio", .float, .float(optimizer.warmupRatio), "fraction of steps warming the rate up"),
        ConfigKey("warmdown_ratio", .float, .float(optimizer.warmdownRatio), "fraction of steps decaying the rate"),
        ConfigKey("final_lr_frac", .float, .float(optimizer.finalLRFraction), "rate multiplier at the end of the decay"),
        // evaluation, sampling, saving
        ConfigKey("eval_every", .int, .int(250), "steps between val bpb evaluations (≤ 0: at the end only)"),
        ConfigKey("eval_tokens", .int, .int(20 * 524_288), "tokens of the val stream per evaluation"),
        ConfigKey("sample_every", .int, .int(2000), "steps between greedy samples (≤ 0: never)"),
        ConfigKey("save_every", .int, .int(-1), "steps between checkpoints (≤ 0: at the end only)"),
        ConfigKey("core_metric_every", .int, .int(-1), "steps between CORE evaluations on core_bundle, and at the end (≤ 0: never)"),
        ConfigKey("core_metric_max_per_task", .int, .int(500), "examples per CORE task at those evaluations (≤ 0: all)"),
        ConfigKey("core_bundle", .string, nil, "the CORE eval bundle's directory (core.yaml, eval_meta_data.csv, eval_data/)"),
        // locations and run
        ConfigKey("model_tag", .string, nil, "name of the run (default: the config file's name)"),
        ConfigKey("data_dir", .string, .string("data"), "directory of the token shards and data.json (from `prepare`)"),
        ConfigKey("tokenizer_dir", .string, nil, "tokenizer directory (default data_dir/tokenizer)"),
        ConfigKey("output_dir", .string, nil, "checkpoints and metrics (default runs/<model_tag>)"),
        ConfigKey("seed", .int, .int(42), "seed of the initial weights"),
        ConfigKey("threads", .int, nil, "worker threads (default: all cores)"),
        ConfigKey("overlap_exchange", .bool, .bool(true),
                  "under MPI across hosts, sum gradients onto their owners during the backward pass"),
        ConfigKey("dtype", .string, nil, "products: bfloat16 or float32 (default bf16 on AMX, AMD AVX512_BF16)"),
    ]

    /// Each key by name.
    public static let byName: [String: ConfigKey] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    /// Every key with its value in `c` (as set, else the default, else None): the base of
    /// user_config.
    public static func values(_ c: ConfigFile) -> [String: ConfigValue] {
        Dictionary(uniqueKeysWithValues: all.map { ($0.name, c.value($0.name) ?? ConfigValue.none) })
    }

    /// tokenizer_dir as set, else data_dir/tokenizer.
    public static func tokenizerDir(_ c: ConfigFile) -> String {
        c.string("tokenizer_dir") ?? "\(c.string("data_dir") ?? "data")/tokenizer"
    }

    /// The keys as `--help` lists them: the key, its type and default, then its meaning
    /// indented below (lines short enough not to be wrapped).
    public static var helpText: String {
        all.map { key in
            let value = key.defaultValue.map { " = \($0)" } ?? ""
            return "  \(key.name): \(key.type.name)\(value)\n      \(key.help)"
        }.joined(separator: "\n")
    }
}

extension TrainingKeys {
    /// The model configuration of a parsed config: sizes from `depth` (SPEC §1.1) unless
    /// n_embd / n_head / n_kv_head are given; `vocabSize` from the tokenizer when known,
    /// else the `vocab_size` key. Errors name the key.
    public static func modelConfig(_ c: ConfigFile, vocabSize: Int? = nil) throws -> ModelConfig {
        let depth = try c.requiredInt("depth")
        let deepest = ModelConfig.largest["n_layer"] ?? 4096
        guard (1...deepest).contains(depth) else { throw c.error(at: "depth", "depth must be in 1...\(deepest), got \(depth)") }
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
        var config = ModelConfig.fromDepth(depth, vocabSize: v, sequenceLen: try c.requiredInt("max_seq_len"),
                                           blockPattern: pattern, mambaDState: try c.requiredInt("mamba_d_state"),
                                           mambaDConv: try c.requiredInt("mamba_d_conv"),
                                           mambaExpand: try c.requiredInt("mamba_expand"),
                                           mambaUseMLP: try c.requiredBool("mamba_use_mlp"))
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
            // model_config's names for the two keys that differ from the config's.
            let key = ["sequence_len": "max_seq_len", "n_layer": "depth"][e.key] ?? e.key
            // At the key if the config sets it, else at what its value was derived from: the
            // heads from n_embd, n_embd and the rest from depth.
            let from = ["n_head": ["n_embd"], "n_kv_head": ["n_head", "n_embd"]][key] ?? []
            let at = ([key] + from).first { c.locations[$0] != nil } ?? "depth"
            throw c.error(at: at, e.message.replacingOccurrences(of: e.key, with: key))
        }
        return config
    }
}
