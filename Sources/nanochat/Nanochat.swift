// The `nanochat` command: create, evaluate and sample hybrid Transformer/Mamba models.
//
//   nanochat init CONFIG [--key=value ...] --out DIR     a freshly initialised checkpoint
//   nanochat eval --checkpoint DIR --data SHARD [...]    loss of a checkpoint on a token shard
//   nanochat sample --checkpoint DIR --tokens 1,2,3      generate token ids
import ArgumentParser
import Blocks
import Foundation
import Tensor
import Train

@main
struct Nanochat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nanochat",
        abstract: "Train and study small hybrid Transformer/Mamba language models on the CPU.",
        subcommands: [TokenizerCommand.self, InitCommand.self, EvalCommand.self, SampleCommand.self]
    )
}

/// Options shared by the commands that run a model.
struct RunOptions: ParsableArguments {
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    func apply() { Parallel.setThreadCount(threads) }
}

/// An error the user can act on, printed as is.
struct UserError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a freshly initialised checkpoint (step 0) from a config file and overrides."
    )

    @Argument(help: "A config file of Python assignments, e.g. configs/hybrid_d12.py.")
    var config: String

    @Option(help: "Directory to write model_000000.safetensors and meta_000000.json into.")
    var out: String

    @Argument(parsing: .allUnrecognized, help: "Overrides, --key=value (e.g. --vocab_size=8192 --depth=4).")
    var overrides: [String] = []

    func run() throws {
        let file = try loadConfig(config, overrides: overrides)
        let model = try GPT(config: try NanochatKeys.modelConfig(file), seed: UInt64(file.int("seed") ?? 42))
        try Checkpoint.save(model, step: 0, to: out, meta: ["val_bpb": NSNull(), "user_config": userConfig(file)])
        print("wrote \(Checkpoint.modelPath(out, step: 0)): \(model.config.parameterCount) parameters, "
              + "pattern \(model.config.blockPattern.map(\.rawValue).joined())")
    }
}

/// Reads a config file and applies the overrides, turning config errors into user errors.
func loadConfig(_ path: String, overrides: [String]) throws -> ConfigFile {
    do {
        var file = try ConfigFile.load(path, schema: NanochatKeys.schema)
        for o in overrides { try file.override(o) }
        return file
    } catch let e as ConfigError {
        throw UserError("\(e)")
    } catch let e as ModelConfigError {
        throw UserError("\(path): \(e)")
    }
}

/// The config's values as JSON-ready objects, for meta_S.json's user_config.
func userConfig(_ file: ConfigFile) -> [String: Any] {
    file.values.mapValues { v -> Any in
        switch v {
        case .int(let i): return i
        case .float(let d): return d
        case .bool(let b): return b
        case .none: return NSNull()
        case .string(let s): return s
        case .list(let l): return l
        }
    }
}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Mean loss of a checkpoint on a token shard, batches in order from token 0."
    )

    @Option(help: "Checkpoint directory.") var checkpoint: String
    @Option(help: "Checkpoint step (default: the latest).") var step: Int?
    @Option(help: "Token shard (llm.c format).") var data: String
    @Option(help: "Sequences per batch.") var batch: Int = 1
    @Option(help: "Tokens per sequence (default: the model's sequence_len).") var seq: Int?
    @Option(help: "Batches to evaluate (default: all that fit).") var steps: Int?
    @Flag(help: "Print one JSON object with loss and bpb.") var json = false
    @OptionGroup var runOptions: RunOptions

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        if let seq, seq < 1 { throw ValidationError("--seq must be at least 1, got \(seq)") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1, got \(steps)") }
    }

    func run() throws {
        runOptions.apply()
        let (model, _) = try Checkpoint.load(from: checkpoint, step: step)
        let shard = try TokenShard(path: data)
        try shard.validate(vocabSize: model.config.vocabSize)
        let t = seq ?? model.config.sequenceLen
        var loader = BatchLoader(shard: shard, batch: batch, sequence: t)
        var total = 0.0, batches = 0
        while steps.map({ batches < $0 }) ?? true, let (x, y) = loader.next() {
            total += GradMode.withoutGradients { model.loss(x, targets: y).item }
            batches += 1
        }
        guard batches > 0 else {
            throw UserError("\(data): \(shard.count) tokens, fewer than one batch of \(batch)·\(t)+1")
        }
        let loss = total / Double(batches)
        if json {
            print("{\"loss\": \(loss), \"bpb\": null, \"batches\": \(batches)}")
        } else {
            print(String(format: "loss %.6f over %d batches of %dx%d (bpb needs a tokenizer)", loss, batches, batch, t))
        }
    }
}

struct SampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Generate token ids from a prompt of token ids, streaming them as they come."
    )

    @Option(help: "Checkpoint directory.") var checkpoint: String
    @Option(help: "Checkpoint step (default: the latest).") var step: Int?
    @Option(help: "Prompt token ids, comma-separated.") var tokens: String
    @Option(help: "Tokens to generate.") var maxNewTokens: Int = 32
    @Option(help: "Softmax temperature; 0 picks the most likely token.") var temperature: Double = 1.0
    @Option(help: "Sample among the k most likely tokens (0: all).") var topK: Int = 0
    @Option(help: "Random seed.") var seed: UInt64 = 42
    @OptionGroup var runOptions: RunOptions

    func validate() throws {
        guard temperature >= 0 else { throw ValidationError("--temperature must be ≥ 0, got \(temperature)") }
        guard topK >= 0 else { throw ValidationError("--top-k must be ≥ 0, got \(topK)") }
        guard maxNewTokens >= 0 else { throw ValidationError("--max-new-tokens must be ≥ 0, got \(maxNewTokens)") }
    }

    func run() throws {
        runOptions.apply()
        let (model, _) = try Checkpoint.load(from: checkpoint, step: step)
        let parts = tokens.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let prompt = try parts.map { s -> Int32 in
            guard let v = Int32(s), v >= 0, Int(v) < model.config.vocabSize else {
                throw UserError("--tokens: \"\(s)\" is not a token id in 0..<\(model.config.vocabSize)")
            }
            return v
        }
        guard !prompt.isEmpty else { throw UserError("--tokens is empty; give at least one token id") }
        var sampler = Sampler(temperature: temperature, topK: topK, seed: seed)
        let cache = DecodeCache(config: model.config, batch: 1, capacity: prompt.count + maxNewTokens)
        FileHandle.standardError.write(Data("cache: \(cache.byteCount) bytes for \(cache.capacity) positions\n".utf8))
        var input = IndexTensor(shape: [1, prompt.count], values: prompt)
        for _ in 0..<maxNewTokens {
            let logits = GradMode.withoutGradients { model.logits(input, cache: cache) }
            let v = model.config.vocabSize
            let last = Array(logits.doubles.suffix(v))
            let next = sampler.pick(last)
            print(next, terminator: " ")
            fflush(nil)
            input = IndexTensor(shape: [1, 1], values: [Int32(next)])
        }
        print()
    }
}
