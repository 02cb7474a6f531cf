// Config files: every committed config loads; each kind of mistake gives one error with
// file, line and column.
import Foundation
import Testing
import Blocks
import Tensor
import Train

/// The repository's configs/ directory, found from this source file.
let configsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("configs").path

func parse(_ text: String) throws -> ConfigFile {
    try ConfigFile.parse(text, file: "test.py", schema: TrainingKeys.byName)
}

@Suite struct ConfigFileTests {
    @Test func everyCommittedConfigLoads() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: configsDirectory).filter { $0.hasSuffix(".py") }.sorted()
        #expect(names.count == 13, "configs: \(names)")
        for name in names {
            let file = try ConfigFile.load("\(configsDirectory)/\(name)", schema: TrainingKeys.byName)
            let config = try TrainingKeys.modelConfig(file, vocabSize: 8192)
            #expect(config.nLayer == file.int("depth"), "\(name)")
            // And as a whole training run: batch sizes divide, the horizon resolves.
            let settings = try TrainSettings.resolve(file, path: name, vocabSize: 8192)
            #expect(settings.accumulation >= 1 && settings.numIterations >= 1, "\(name)")
        }
        let hybrid = try ConfigFile.load("\(configsDirectory)/hybrid_early_t_late_m_d20.py", schema: TrainingKeys.byName)
        let c = try TrainingKeys.modelConfig(hybrid, vocabSize: 65536)
        #expect(c.blockPattern == Array(repeating: .transformer, count: 12) + Array(repeating: .mamba, count: 8))
        #expect(c.parameterCount == 486_748_160)
        let t = try TrainingKeys.modelConfig(ConfigFile.load("\(configsDirectory)/transformer_d20.py", schema: TrainingKeys.byName),
                                             vocabSize: 65536)
        #expect(t.blockPattern.allSatisfy { $0 == .transformer } && t.parameterCount == 560_988_160)
    }

    @Test func valuesAndExpressions() throws {
        let c = try parse("""
            depth = 4   # layers
            block_pattern = ["T", 'M'] * 2 + []
            matrix_lr = 2e-2
            embedding_lr = 1
            mamba_use_mlp = True
            total_batch_size = 32 * 2048
            model_tag = "d4"
            """)
        #expect(c.int("depth") == 4 && c.list("block_pattern") == ["T", "M", "T", "M"])
        #expect(c.double("matrix_lr") == 0.02 && c.double("embedding_lr") == 1.0)
        #expect(c.bool("mamba_use_mlp") == true && c.int("total_batch_size") == 65536 && c.string("model_tag") == "d4")
    }

    /// Each model key lands in its own field of the model config; sizes left out follow from
    /// depth (C = 64·depth, ⌈C/128⌉ heads, as many KV heads), n_embd alone sets the heads from
    /// itself, n_head alone the KV heads; the tokenizer's vocabulary wins over vocab_size.
    @Test func everyModelKeyReachesTheModel() throws {
        let given = try TrainingKeys.modelConfig(try parse("""
            depth = 3
            n_embd = 96
            n_head = 3
            n_kv_head = 1
            max_seq_len = 64
            vocab_size = 500
            block_pattern = ["T", "M", "T"]
            mamba_d_state = 8
            mamba_d_conv = 3
            mamba_expand = 4
            mamba_use_mlp = True
            """))
        #expect(given == ModelConfig(sequenceLen: 64, vocabSize: 500, nLayer: 3, nHead: 3, nKVHead: 1, nEmbd: 96,
                                     blockPattern: [.transformer, .mamba, .transformer], mambaDState: 8, mambaDConv: 3,
                                     mambaExpand: 4, mambaUseMLP: true))
        let fromDepth = try TrainingKeys.modelConfig(try parse("depth = 6\n"), vocabSize: 300)
        #expect(fromDepth == ModelConfig(sequenceLen: 2048, vocabSize: 300, nLayer: 6, nHead: 3, nKVHead: 3, nEmbd: 384,
                                         blockPattern: Array(repeating: .transformer, count: 6), mambaDState: MambaDefaults.dState,
                                         mambaDConv: MambaDefaults.dConv, mambaExpand: MambaDefaults.expand, mambaUseMLP: MambaDefaults.useMLP))
        let width = try TrainingKeys.modelConfig(try parse("depth = 2\nn_embd = 384\nvocab_size = 500\n"), vocabSize: 300)
        #expect(width.nEmbd == 384 && width.nHead == 3 && width.nKVHead == 3 && width.vocabSize == 300)
        let heads = try TrainingKeys.modelConfig(try parse("depth = 2\nn_head = 1\n"), vocabSize: 300)
        #expect(heads.nEmbd == 128 && heads.nHead == 1 && heads.nKVHead == 1)
    }

    /// Arithmetic with a float in it is float arithmetic, as Python's: each operator, mixed
    /// with ints, with `*` before `+` and `-`, left to right.
    @Test func floatArithmetic() throws {
        let c = try parse("""
            matrix_lr = 0.01 * 3
            embedding_lr = 0.5 + 0.25
            unembedding_lr = 1 - 0.75
            weight_decay = 2 * 0.125
            warmup_ratio = 0.5 - 0.125 * 2
            warmdown_ratio = 1.0 - 0.25 - 0.5
            final_lr_frac = -0.5 + 1
            """)
        #expect(c.double("matrix_lr") == 0.01 * 3.0 && c.double("embedding_lr") == 0.75 && c.double("unembedding_lr") == 0.25)
        #expect(c.double("weight_decay") == 0.25 && c.double("warmup_ratio") == 0.25 && c.double("warmdown_ratio") == 0.25)
        #expect(c.double("final_lr_frac") == 0.5)
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 22, "1e+308 * 10.0 is too large for a 64-bit float")) {
            try parse("target_flops = 1e308 * 10\n")
        }
    }

    /// Arithmetic that would overflow, non-finite floats and huge lists are errors at the
    /// operator or literal; an empty list repeated any number of times stays empty.
    @Test func arithmeticAndListsStayInRange() throws {
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 29, "integer overflow: 9223372036854775807 + 1 is outside the 64-bit range")) {
            try parse("depth = 9223372036854775807 + 1\n")
        }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 29, "integer overflow: 4611686018427387904 * 2 is outside the 64-bit range")) {
            try parse("depth = 4611686018427387904 * 2\n")
        }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 16, "number 1e999 is too large for a 64-bit float")) {
            try parse("target_flops = 1e999\n")
        }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 23, "a list of 1 × 1000000000000 entries is longer than the 100000 a config list may hold")) {
            try parse("block_pattern = [\"T\"] * 1000000000000\n")
        }
        #expect(try parse("block_pattern = [] * 5555555555\n").list("block_pattern") == [])
        var c = try parse("depth = 4\n")
        #expect(throws: ConfigError(file: "command line", line: 1, column: 29, "depth (int): integer overflow: 9223372036854775807 + 1 is outside the 64-bit range")) {
            try c.override("--depth=9223372036854775807 + 1")
        }
    }

    @Test func overridesFromTheCommandLine() throws {
        var c = try parse("depth = 4\n")
        try c.override("--depth=6")
        try c.override("--block_pattern=[\"M\"]*6")
        try c.override("--model_tag=d6")
        try c.override("--matrix_lr=0.01")
        #expect(c.int("depth") == 6 && c.list("block_pattern")?.count == 6 && c.string("model_tag") == "d6")
        // A string key takes a number as its text (--model_tag=12 names the tag "12").
        try c.override("--model_tag=12")
        #expect(c.string("model_tag") == "12")
        try c.override("--model_tag=0.5")
        #expect(c.string("model_tag") == "0.5")
        #expect(throws: ConfigError(file: "command line", line: 1, column: 3, "unknown key dpeth; did you mean depth?")) {
            try c.override("--dpeth=3")
        }
    }

    @Test func unknownKeyNamesTheNearest() {
        #expect(throws: ConfigError(file: "test.py", line: 2, column: 1, "unknown key matrx_lr; did you mean matrix_lr?")) {
            try parse("depth = 4\nmatrx_lr = 0.02\n")
        }
    }

    @Test func wrongType() {
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 9, "depth must be int, got str \"four\"")) {
            try parse("depth = \"four\"\n")
        }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 17, "block_pattern must be list of str or None, got int 3")) {
            try parse("block_pattern = 3\n")
        }
    }

    @Test func syntaxErrors() {
        #expect(throws: ConfigError(file: "test.py", line: 3, column: 22, "expected `,` or `]`")) {
            try parse("depth = 4\n\nblock_pattern = [\"T\" \"M\"]\n")
        }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 7, "expected `=` after depth")) { try parse("depth 4\n") }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 18, "unterminated string")) { try parse("block_pattern = [\"T]\n") }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 23, "cannot apply `*` to list of str and list of str")) {
            try parse("block_pattern = [\"T\"] * [\"M\"]\n")
        }
        #expect(throws: ConfigError(file: "test.py", line: 2, column: 1, "expected `name = value`")) { try parse("depth = 4\n4 = depth\n") }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 8, "expected a value after `=`")) { try parse("depth = \n") }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 7, "expected a value after `=`")) { try parse("depth=\n") }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 11, "unexpected `5` after the value")) { try parse("depth = 4 5\n") }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 11, "unexpected `x` after the value")) { try parse("depth = 4 x\n") }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 17, "unexpected `\"b\"` after the value")) { try parse("model_tag = \"a\" \"b\"\n") }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 17, "unexpected `]`")) { try parse("block_pattern = ]\n") }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 23, "a list of 100001 entries is longer than the 100000 a config list may hold")) {
            try parse("block_pattern = [\"T\"] + [\"M\"] * 100000\n")
        }
    }

    /// A file that cannot be read or is not UTF-8, and an override without `=`, are refused
    /// by name before anything is parsed.
    @Test func unreadableFilesAndBadOverrides() throws {
        let missing = scratchPath("no-such-config") + ".py"
        #expect(throws: ConfigError(file: missing, line: 0, column: 0, "cannot read the config file")) {
            try ConfigFile.load(missing, schema: TrainingKeys.byName)
        }
        let latin1 = scratchPath("latin1") + ".py"
        try Data([0x64, 0x65, 0x70, 0x74, 0x68, 0x20, 0x3d, 0x20, 0x34, 0x20, 0x23, 0x20, 0xe9, 0x0a]).write(to: URL(fileURLWithPath: latin1))
        #expect(throws: ConfigError(file: latin1, line: 0, column: 0, "the config file is not UTF-8 text")) {
            try ConfigFile.load(latin1, schema: TrainingKeys.byName)
        }
        #expect(ConfigError(file: latin1, line: 0, column: 0, "x").description == "\(latin1): x")
        #expect(ConfigError(file: "a.py", line: 3, column: 7, "x").description == "a.py:3:7: x")
        var c = try parse("depth = 4\n")
        #expect(throws: ConfigError(file: "command line", line: 1, column: 1, "override --depth must look like --name=value")) {
            try c.override("--depth")
        }
        try c.override("depth=6")
        #expect(c.int("depth") == 6 && c.locations["depth"]?.file == "command line" && c.locations["depth"]?.column == 7)
    }

    /// Python's reading: string escapes, no leading zeros, no indentation, and a bound on
    /// nesting that a crafted value cannot pass.
    @Test func pythonSemantics() throws {
        #expect(try parse(#"model_tag = "x\ty\x41\u00e9\\n\q""# + "\n").string("model_tag") == "x\tyAé\\n\\q")
        #expect(try parse("model_tag = 'it\\'s'\n").string("model_tag") == "it's")
        #expect(try parse(#"model_tag = '\U0001F600\a\b\f\v\r\"\''"# + "\n").string("model_tag") == "😀\u{07}\u{08}\u{0C}\u{0B}\r\"'")
        // Octal: one to three digits (Python's '\0\012\1234\400\08' is "\x00\nS4Ā\x008").
        #expect(try parse(#"model_tag = '\0\012\1234\400\08'"# + "\n").string("model_tag") == "\0\nS4Ā\u{0}8")
        for (escape, count) in [(#"\u00e"#, "4 hex digits naming a character"), (#"\U0000D800"#, "8 hex digits naming a character"),
                                (#"\U00110000"#, "8 hex digits naming a character")] {
            #expect(throws: ConfigError(file: "test.py", line: 1, column: 14, "malformed \\\(escape.dropFirst().prefix(1)) escape: it takes \(count)")) {
                try parse("model_tag = \"\(escape)\"\n")
            }
        }
        // Python's numbers: a leading point, underscores between digits, an exponent; a list
        // may end in a comma.
        let numbers = try parse("matrix_lr = .5\nnum_iterations = 1_000\nembedding_lr = 2E-1\nblock_pattern = [\"T\", \"M\",]\n")
        #expect(numbers.double("matrix_lr") == 0.5 && numbers.int("num_iterations") == 1000 && numbers.double("embedding_lr") == 0.2)
        #expect(numbers.list("block_pattern") == ["T", "M"])
        #expect(try parse("seed = 0\ndepth = 00\n").int("depth") == 0)
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 8, "leading zeros in a decimal integer are not allowed (007); Python refuses them too: write 7")) {
            try parse("seed = 007\n")
        }
        #expect(throws: ConfigError(file: "test.py", line: 2, column: 1, "unexpected indent: an assignment starts at the line's first column (Python says IndentationError)")) {
            try parse("depth = 4\n  seed = 1\n")
        }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 14, "malformed \\x escape: it takes 2 hex digits")) {
            try parse(#"model_tag = "\xZ1""# + "\n")
        }
        #expect(try parse("depth = " + String(repeating: "(", count: 100) + "4" + String(repeating: ")", count: 100) + "\n").int("depth") == 4)
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 109, "the value nests more than 100 deep")) {
            try parse("depth = " + String(repeating: "(", count: 200_000) + "4" + String(repeating: ")", count: 200_000) + "\n")
        }
        #expect(throws: ConfigError(file: "test.py", line: 1, column: 109, "the value nests more than 100 deep")) {
            try parse("depth = " + String(repeating: "-", count: 500_000) + "4\n")
        }
    }

    @Test func badPatternEntryAndLength() throws {
        let bad = try parse("depth = 3\nvocab_size = 100\nblock_pattern = [\"T\", \"M\", \"attention\"]\n")
        #expect(throws: ConfigError(file: "test.py", line: 3, column: 17,
                                    "block_pattern[2] is \"attention\"; valid entries are \(BlockKind.spellings)")) {
            try TrainingKeys.modelConfig(bad)
        }
        let short = try parse("depth = 3\nvocab_size = 100\nblock_pattern = [\"T\"] * 2\n")
        #expect(throws: ConfigError(file: "test.py", line: 3, column: 17,
                                    "block_pattern has 2 entries but depth is 3; give one entry per layer")) {
            try TrainingKeys.modelConfig(short)
        }
    }

    /// Every key has a default or is required, defaults type-check, and --help and the
    /// table in docs/training.md list exactly the keys of `TrainingKeys.all`, in its order,
    /// the table with each key's type and default as written there (nanochat's defaults,
    /// typed by hand, not printed from the table).
    @Test func keyTableIsTheOneSourceOfKeys() throws {
        for key in TrainingKeys.all {
            if let v = key.defaultValue { #expect(key.type.accept(v) != nil, "\(key.name)'s default \(v) is not \(key.type)") }
        }
        #expect(Set(TrainingKeys.all.map(\.name)).count == TrainingKeys.all.count, "a key is listed twice")
        let help = TrainingKeys.helpText
        #expect(TrainingKeys.all.allSatisfy { help.contains("  \($0.name): ") })
        let docs = URL(fileURLWithPath: configsDirectory).deletingLastPathComponent().appendingPathComponent("docs/training.md")
        let rows = try String(contentsOf: docs, encoding: .utf8).split(separator: "\n").compactMap { line -> [String]? in
            guard line.hasPrefix("| `") else { return nil }
            return line.dropFirst(2).split(separator: " | ").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "`")) }
        }
        #expect(rows.map { $0[0] } == TrainingKeys.all.map(\.name), "docs/training.md's key table differs from TrainingKeys.all")
        for (row, key) in zip(rows, TrainingKeys.all) {
            #expect(row.count >= 3 && row[1] == key.type.name, "\(key.name): docs/training.md's type \(row.dropFirst().first ?? "")")
            guard row.count >= 3 else { continue }
            if row[2] == "—" {
                #expect(key.defaultValue == nil, "\(key.name): docs/training.md gives no default, the table \(key.defaultValue.map { "\($0)" } ?? "")")
            } else {
                let written = try parse("\(key.name) = \(row[2])\n").value(key.name)
                #expect(written.flatMap(key.type.accept) == key.defaultValue, "\(key.name): docs/training.md's default \(row[2])")
            }
        }
        // A key with no default that must be set says so.
        #expect(throws: ConfigError(file: "test.py", line: 0, column: 0,
                                    "depth is required (the number of layers, from which the sizes follow)")) {
            try TrainingKeys.modelConfig(try parse("vocab_size = 100\n"))
        }
    }

    /// A model the sizes cannot build is refused at the config's own key, in the config's
    /// own names (max_seq_len and depth, not model_config's sequence_len and n_layer); a head
    /// count the config does not set is refused where it was derived from (n_embd).
    @Test func anUnbuildableModelIsRefusedAtTheKeyInTheConfigsNames() {
        let cases: [(text: String, line: Int, column: Int, message: String)] = [
            ("depth = 2\nmax_seq_len = 0\nvocab_size = 100\n", 2, 15, "max_seq_len must be positive, got 0"),
            ("vocab_size = 100\ndepth = 5000\n", 2, 9, "depth must be in 1...4096, got 5000"),
            ("depth = 2\nvocab_size = 70000\n", 2, 14, "vocab_size is 70000; the most this accepts is 65536"),
            ("depth = 2\nn_embd = 64\nn_head = 3\nvocab_size = 100\n", 2, 10, "n_embd 64 must be divisible by n_head 3"),
            ("depth = 2\nn_head = 4\nn_kv_head = 3\nn_embd = 64\nvocab_size = 100\n", 3, 13, "n_kv_head 3 must divide n_head 4"),
            ("vocab_size = 100\nn_embd = 5\ndepth = 2\n", 2, 10, "head dim n_embd/n_head = 5 must be even for rotary"),
            ("vocab_size = 100\ndepth = 1\nn_embd = 64\nn_kv_head = 1\nn_head = 64\n", 5, 10, "head dim n_embd/n_head = 1 must be even for rotary"),
            ("vocab_size = 100\ndepth = 2\nmamba_expand = 0\n", 3, 16, "mamba_expand must be positive, got 0"),
        ]
        for c in cases {
            #expect(throws: ConfigError(file: "test.py", line: c.line, column: c.column, c.message), "\(c.text.debugDescription)") {
                try TrainingKeys.modelConfig(try parse(c.text))
            }
        }
        #expect(throws: Never.self) { try TrainingKeys.modelConfig(try parse("vocab_size = 100\nn_embd = 8\ndepth = 2\n")) }
    }

    /// A small run's config with `extra` lines after it, resolved.
    func resolved(_ extra: String) throws -> TrainSettings {
        try TrainSettings.resolve(try parse("""
            depth = 2
            block_pattern = ["T", "M"]
            max_seq_len = 16
            device_batch_size = 1
            total_batch_size = 16
            n_embd = 64
            num_iterations = 20

            """ + extra), path: "test.py", vocabSize: 300)
    }

    /// Each run key, given a value of its own, lands in its own setting.
    @Test func everyRunKeyReachesItsSetting() throws {
        let s = try resolved("""
            embedding_lr = 0.11
            unembedding_lr = 0.012
            matrix_lr = 0.013
            mamba_lr = 0.014
            weight_decay = 0.015
            grad_clip = 0.5
            warmup_ratio = 0.1
            warmdown_ratio = 0.3
            final_lr_frac = 0.05
            eval_every = 7
            eval_tokens = 320
            sample_every = 9
            save_every = 11
            core_metric_every = 13
            core_metric_max_per_task = 17
            core_bundle = "bundle"
            model_tag = "tag"
            data_dir = "d"
            tokenizer_dir = "tk"
            output_dir = "o"
            seed = 5
            threads = 2
            overlap_exchange = False
            dtype = "float32"
            """)
        let o = s.optimizer
        #expect(o.embeddingLR == 0.11 && o.unembeddingLR == 0.012 && o.matrixLR == 0.013 && o.mambaLR == 0.014)
        #expect(o.weightDecay == 0.015 && o.gradClip == 0.5 && o.warmupRatio == 0.1 && o.warmdownRatio == 0.3)
        #expect(o.finalLRFraction == 0.05 && !o.overlapExchange)
        #expect(s.evalEvery == 7 && s.evalTokens == 320 && s.sampleEvery == 9 && s.saveEvery == 11)
        #expect(s.coreEvery == 13 && s.coreMaxPerTask == 17 && s.coreBundle == "bundle")
        #expect(s.modelTag == "tag" && s.dataDir == "d" && s.tokenizerDir == "tk" && s.outputDir == "o")
        #expect(s.seed == 5 && s.threads == 2 && s.precision == .float32 && s.numIterations == 20)
        #expect(s.deviceBatchSize == 1 && s.sequenceLen == 16 && s.totalBatchSize == 16)
        #expect(try resolved("core_metric_max_per_task = 0\n").coreMaxPerTask == nil)
        // Evaluation batches of B·T = 16 tokens: 320 / 16, a part of one rounded down, at least one.
        #expect(try s.evalBatches == 20 && resolved("eval_tokens = 47\n").evalBatches == 2)
        #expect(try resolved("eval_tokens = 15\n").evalBatches == 1)
    }

    /// Each bounded setting from both sides: the value at the edge is accepted and used, the
    /// first past it is refused naming the key. (A refusal alone passes a bound moved inwards,
    /// such as a warmup_ratio of 1 refused.)
    @Test func everySettingBoundFromBothSides() throws {
        let bounds: [(key: String, inside: String, outside: String, holds: (TrainSettings) -> Bool)] = [
            ("warmup_ratio", "1", "1.0001", { $0.optimizer.warmupRatio == 1 }),
            ("warmup_ratio", "0", "-0.0001", { $0.optimizer.warmupRatio == 0 }),
            ("warmdown_ratio", "1", "1.0001", { $0.optimizer.warmdownRatio == 1 }),
            ("warmdown_ratio", "0", "-0.0001", { $0.optimizer.warmdownRatio == 0 }),
            ("final_lr_frac", "1", "1.0001", { $0.optimizer.finalLRFraction == 1 }),
            ("final_lr_frac", "0", "-0.0001", { $0.optimizer.finalLRFraction == 0 }),
            ("matrix_lr", "0", "-1e-9", { $0.optimizer.matrixLR == 0 }),
            ("embedding_lr", "0", "-1e-9", { $0.optimizer.embeddingLR == 0 }),
            ("unembedding_lr", "0", "-1e-9", { $0.optimizer.unembeddingLR == 0 }),
            ("mamba_lr", "0", "-1e-9", { $0.optimizer.mambaLR == 0 }),
            ("weight_decay", "0", "-1e-9", { $0.optimizer.weightDecay == 0 }),
            ("grad_clip", "0", "-1e-9", { $0.optimizer.gradClip == 0 }),
            ("threads", "1", "0", { $0.threads == 1 }),
            ("threads", "\(Parallel.maxThreads)", "\(Parallel.maxThreads + 1)", { $0.threads == Parallel.maxThreads }),
            ("device_batch_size", "1", "0", { $0.deviceBatchSize == 1 }),
            ("total_batch_size", "16", "0", { $0.totalBatchSize == 16 }),
            ("num_iterations", "1_000_000_000", "1_000_000_001", { $0.numIterations == 1_000_000_000 }),
        ]
        for b in bounds {
            do {
                let settings = try resolved("\(b.key) = \(b.inside)\n")
                #expect(b.holds(settings), "\(b.key) = \(b.inside) was not used as given")
            } catch {
                Issue.record("\(b.key) = \(b.inside) refused: \(error)")
            }
            do {
                _ = try resolved("\(b.key) = \(b.outside)\n")
                Issue.record("\(b.key) = \(b.outside) accepted")
            } catch let e as ConfigError {
                #expect(e.message.hasPrefix(b.key) && e.line == 8, "\(b.key) = \(b.outside): \(e)")
            }
        }
    }

    /// The horizon's keys as nanochat turns them into steps: target_param_data_ratio's
    /// tokens floor-divided by the batch, target_flops' steps rounded to the nearest.
    @Test func horizonsRoundAsNanochats() throws {
        let base = try resolved("")
        let parameters = Double(base.model.parameterCount), total = 16.0
        // 10.75 steps' worth of tokens: 10 steps (a rounding to the nearest would give 11).
        let ratio = try resolved("num_iterations = -1\ntarget_param_data_ratio = \(10.75 * total / parameters)\n")
        #expect(ratio.numIterations == 10 && ratio.horizon.hasPrefix("target_param_data_ratio"), "\(ratio.numIterations)")
        // FLOPs for 10.75 and 10.25 steps: 11 and 10.
        let perStep = base.model.flopsPerToken * total
        let up = try resolved("num_iterations = -1\ntarget_flops = \(10.75 * perStep)\n")
        let down = try resolved("num_iterations = -1\ntarget_flops = \(10.25 * perStep)\n")
        #expect(up.numIterations == 11 && down.numIterations == 10, "\(up.numIterations), \(down.numIterations)")
        // Any budget above 0 is the horizon, however small (one step at least), not the ratio.
        let tiny = try resolved("num_iterations = -1\ntarget_flops = 1\n")
        #expect(tiny.numIterations == 1 && tiny.horizon.hasPrefix("target_flops"), "\(tiny.numIterations), \(tiny.horizon)")
        // A budget of a billion steps is the most a run may have, from either key.
        let most = try resolved("num_iterations = -1\ntarget_flops = \(1e9 * perStep)\n")
        #expect(most.numIterations == 1_000_000_000, "\(most.numIterations)")
        #expect(throws: ConfigError(file: "test.py", line: 9, column: 16,
                                    "target_flops gives 1e+09 steps, more than the 1000000000 a run may have")) {
            try resolved("num_iterations = -1\ntarget_flops = \((1e9 + 1) * perStep)\n")
        }
        let ratioMost = try resolved("num_iterations = -1\ntarget_param_data_ratio = \((1e9 + 0.5) * total / parameters)\n")
        #expect(ratioMost.numIterations == 1_000_000_000, "\(ratioMost.numIterations)")
    }
}
