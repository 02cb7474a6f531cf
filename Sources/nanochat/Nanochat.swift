// The `nanochat` command: create, evaluate and sample hybrid Transformer/Mamba models.
//
//   nanochat tokenizer train|encode|decode              byte-level BPE
//   nanochat prepare --input FILES --tokenizer DIR --out DIR   train/val token shards
//   nanochat train CONFIG [--key=value ...] [--resume]   train, evaluate, sample, save
//   nanochat init CONFIG [--key=value ...] --out DIR     a freshly initialised checkpoint
//   nanochat eval --checkpoint DIR --data SHARD [...]    loss and bpb of a checkpoint
//   nanochat sample --checkpoint DIR --prompt TEXT       stream a completion
//   nanochat sweep CONFIG --target-flops F,... --out DIR  patterns at equal FLOPs, over seeds
import ArgumentParser
import Blocks
import Foundation
import Tensor
import Train
import Tokenizer
import Inference

@main
struct Nanochat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nanochat",
        abstract: "Train and study small hybrid Transformer/Mamba language models on the CPU.",
        subcommands: [TokenizerCommand.self, PrepareCommand.self, TrainCommand.self, InitCommand.self, EvalCommand.self, SampleCommand.self,
                      SweepCommand.self, SFTCommand.self, ChatCommand.self, ChatEvalCommand.self, ServeCommand.self, ExportCommand.self, ImportCommand.self]
    )

    /// Parses and runs the command, once OpenBLAS runs the core this CPU deserves
    /// (`HostCPU.correctBLASCore`). A file larger than the process may write (`ulimit -f`)
    /// fails the write with an error instead of killing the process; negative values after a
    /// space (`--threads -2`) are read as values; file-system errors from Foundation are
    /// reported as the path and the system's reason; the libraries' errors (`UserFacingError`)
    /// are printed as they describe themselves.
    static func main() {
        HostCPU.correctBLASCore()
        signal(SIGXFSZ, SIG_IGN)
        let arguments = joiningNegativeValues(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch let e as UserFacingError {
            exit(withError: UserError(e.description))
        } catch let e as NSError where e.domain == NSCocoaErrorDomain || e.domain == NSPOSIXErrorDomain {
            exit(withError: UserError(plainDescription(of: e)))
        } catch {
            exit(withError: error)
        }
    }
}

/// `--name -2` becomes `--name=-2`: a word of a leading `-` and a digit is a negative number
/// given as the option's value, never an option of its own.
func joiningNegativeValues(_ arguments: [String]) -> [String] {
    var out: [String] = []
    var i = 0
    while i < arguments.count {
        let a = arguments[i]
        if a.hasPrefix("--"), a.count > 2, !a.contains("="), i + 1 < arguments.count, isNegativeNumber(arguments[i + 1]) {
            out.append("\(a)=\(arguments[i + 1])")
            i += 2
        } else {
            out.append(a)
            i += 1
        }
    }
    return out
}

func isNegativeNumber(_ s: String) -> Bool {
    guard s.hasPrefix("-"), let second = s.dropFirst().first else { return false }
    return second.isNumber || (second == "." && s.dropFirst(2).first?.isNumber == true)
}

/// A Foundation file error as "PATH: cannot do X: reason", from its POSIX cause when known.
func plainDescription(of e: NSError) -> String {
    let path = (e.userInfo[NSFilePathErrorKey] as? String) ?? (e.userInfo["NSDestinationFilePath"] as? String)
    let reason: String
    if let underlying = e.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        reason = String(cString: strerror(Int32(underlying.code)))
    } else if e.domain == NSPOSIXErrorDomain {
        reason = String(cString: strerror(Int32(e.code)))
    } else {
        switch CocoaError.Code(rawValue: e.code) {
        case .fileWriteNoPermission, .fileReadNoPermission: reason = "permission denied"
        case .fileWriteVolumeReadOnly: reason = "read-only file system"
        case .fileWriteOutOfSpace: reason = "no space left on the device"
        case .fileNoSuchFile, .fileReadNoSuchFile: reason = "no such file or directory"
        case .fileWriteFileExists: reason = "a file of that name exists"
        default: reason = "file operation failed (code \(e.code))"
        }
    }
    return path.map { "\($0): \(reason)" } ?? reason
}

/// How `sample` and `chat` pick tokens; each command gives its own default temperature.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Softmax temperature; 0 picks the most likely token (default: 0.8 for sample, 0.6 for chat).")
    var temperature: Double?
    @Option(help: "Sample among the k most likely tokens (0: all).") var topK: Int = 50
    @Option(help: "Random seed.") var seed: UInt64 = 42

    func validate() throws {
        if let temperature {
            guard temperature >= 0 else { throw ValidationError("--temperature must be ≥ 0, got \(temperature)") }
            guard temperature.isFinite else { throw ValidationError("--temperature must be finite, got \(temperature)") }
        }
        guard topK >= 0 else { throw ValidationError("--top-k must be ≥ 0, got \(topK)") }
    }

    func sampler(defaultTemperature: Double) -> Sampler {
        Sampler(temperature: temperature ?? defaultTemperature, topK: topK, seed: seed)
    }
}

/// Options shared by the commands that run a model.
struct RunOptions: ParsableArguments {
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard (1...Parallel.maxThreads).contains(threads) else {
            throw ValidationError("--threads must be in 1...\(Parallel.maxThreads), got \(threads)")
        }
    }

    /// Sets the worker count, and tells the user (on stderr) when the products will run on
    /// OpenBLAS kernels below what the CPU supports.
    func apply() {
        Parallel.setThreadCount(threads)
        for warning in HostCPU.warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
    }
}

extension MatmulPrecision: ExpressibleByArgument {}

/// The precision of matrix products, for the commands that run a model.
struct PrecisionOptions: ParsableArguments {
    @Option(help: "Matrix products: bfloat16 (bf16 operands, fp32 sums) or float32 (default: bfloat16 where the CPU multiplies bf16 natively, AMX or AMD's AVX512_BF16; else float32).")
    var dtype: MatmulPrecision?

    var precision: MatmulPrecision { dtype ?? Precision.fastest }

    /// Sets the precision for the process and says which kernel runs (on stderr). With
    /// `inference`, in bf16 the model's matrices are also packed in bf16 once (decoding then
    /// reads half the bytes); a model that will be trained is not given that copy.
    func apply(to model: GPT, inference: Bool) {
        Precision.set(precision)
        if inference && precision == .bfloat16 { model.packWeightsBF16() }
        FileHandle.standardError.write(Data("\(Precision.summary)\n".utf8))
    }
}

/// An error of the command line's own (a flag's value, a missing file), printed as is.
struct UserError: UserFacingError {
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
        let model = try GPT(config: try TrainingKeys.modelConfig(file), seed: UInt64(bitPattern: Int64(try file.requiredInt("seed"))))
        try Checkpoint.save(model, step: 0, to: out, extra: TrainingMeta(
            valBPB: nil, userConfig: TrainingKeys.values(file), resume: nil, tokenizerDir: nil))
        print("wrote \(Checkpoint.modelPath(out, step: 0)): \(model.config.parameterCount) parameters, "
              + "pattern \(model.config.blockPattern.map(\.rawValue).joined())")
    }
}

/// Reads a config file and applies the overrides; a model error names the file.
func loadConfig(_ path: String, overrides: [String]) throws -> ConfigFile {
    do {
        var file = try ConfigFile.load(path, schema: TrainingKeys.byName)
        for o in overrides { try file.override(o) }
        return file
    } catch let e as ModelConfigError {
        throw UserError("\(path): \(e)")
    }
}

/// The tokenizer beside a checkpoint (`train` copies it to DIR/tokenizer), or the one given.
func checkpointTokenizer(_ checkpoint: String, given: String?) throws -> Tokenizer? {
    if let given { return try loadTokenizer(given) }
    let beside = "\(checkpoint)/tokenizer"
    return FileManager.default.fileExists(atPath: "\(beside)/\(Tokenizer.ranksFile)") ? try loadTokenizer(beside) : nil
}

/// Loads a checkpoint (the latest step when `step` is nil).
func loadCheckpoint(_ dir: String, step: Int?) throws -> (model: GPT, step: Int) {
    try Checkpoint.load(from: dir, step: step)
}

/// The tokenizer identity a checkpoint's meta file records, if any.
func checkpointTokenizerHash(_ dir: String, step: Int) -> String? {
    struct Recorded: Decodable {
        let tokenizerHash: String?
        enum CodingKeys: String, CodingKey { case tokenizerHash = "tokenizer_hash" }
    }
    return (try? Checkpoint.meta(Recorded.self, in: dir, step: step))?.tokenizerHash
}

/// The tokenizer a text command uses with a loaded checkpoint: the one given, else the one
/// beside it, checked to have the model's vocabulary and to be the one it was trained with.
/// `offersFlag`: the command has --tokenizer, which the error then suggests.
func textTokenizer(for model: GPT, checkpoint: String, step: Int, given: String?, offersFlag: Bool = true) throws -> Tokenizer {
    guard let tok = try checkpointTokenizer(checkpoint, given: given) else {
        throw UserError("\(checkpoint) has no tokenizer/ directory" + (offersFlag ? "; give --tokenizer DIR" : ""))
    }
    guard tok.vocabSize == model.config.vocabSize else {
        throw UserError("the tokenizer has \(tok.vocabSize) ids but the model's vocab_size is \(model.config.vocabSize)")
    }
    try checkSameTokenizer(tok, checkpoint: checkpoint, step: step, source: given ?? "\(checkpoint)/tokenizer")
    return tok
}

/// Checks that `tokenizer` is the one the checkpoint of `step` in `dir` was trained with,
/// when its meta file records one.
func checkSameTokenizer(_ tokenizer: Tokenizer, checkpoint dir: String, step: Int, source: String) throws {
    if let hash = checkpointTokenizerHash(dir, step: step), hash != tokenizer.identity {
        throw UserError("\(source) (hash \(tokenizer.identity)) is another tokenizer than the one \(Checkpoint.metaPath(dir, step: step)) "
                        + "was trained with (\(hash)), though both have \(tokenizer.vocabSize) ids")
    }
}

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
        let (model, loadedStep) = try loadCheckpoint(checkpoint, step: step)
        precision.apply(to: model, inference: true)
        let tok = try checkpointTokenizer(checkpoint, given: tokenizer)
        if let tok, tok.vocabSize != model.config.vocabSize {
            throw UserError("the tokenizer has \(tok.vocabSize) ids but the model's vocab_size is \(model.config.vocabSize)")
        }
        if let tok { try checkSameTokenizer(tok, checkpoint: checkpoint, step: loadedStep, source: tokenizer ?? "\(checkpoint)/tokenizer") }
        let seqLen = seq ?? model.config.sequenceLen
        try model.config.checkFitsInMemory(Double(batch) * Double(seqLen) * Double(model.config.vocabSize) * 8,
                                           for: "the logits of --batch \(batch) × --seq \(seqLen)")
        let e: Evaluation
        let identity = tok?.identity ?? checkpointTokenizerHash(checkpoint, step: loadedStep)
        let stream: TokenStream
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: data, isDirectory: &isDirectory), isDirectory.boolValue {
            stream = try DataPreparation.openShards(data, vocabSize: model.config.vocabSize, tokenizerIdentity: identity).val
        } else {
            // The shard's data.json, when it has one, names the tokenizer that made it.
            let shardDir = (data as NSString).deletingLastPathComponent
            try DataPreparation.checkTokenizer(ofShardsIn: shardDir.isEmpty ? "." : shardDir, vocabSize: model.config.vocabSize,
                                               identity: identity)
            let shard = try TokenShard(path: data)
            try shard.validate(vocabSize: model.config.vocabSize)
            stream = TokenStream(shard)
        }
        e = try Evaluator.evaluate(model, stream: stream, batch: batch, sequence: seqLen,
                                   maxBatches: steps, byteLengths: tok?.byteLengths)
        let bpb = e.bpb.map { String(format: "%.6f", $0) }
        if json {
            print("{\"loss\": \(e.loss), \"bpb\": \(bpb ?? "null"), \"batches\": \(e.batches), \"tokens\": \(e.tokens)}")
        } else {
            print(String(format: "loss %.6f, bpb %@ over %d batches (%d tokens)", e.loss, bpb ?? "n/a (no tokenizer)", e.batches, e.tokens))
        }
    }
}

struct SampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Continue a text prompt (or token ids), streaming the completion token by token."
    )

    @Option(help: "Checkpoint directory.") var checkpoint: String
    @Option(help: "Checkpoint step (default: the latest).") var step: Int?
    @Option(help: "Text prompt; the model sees <|bos|> then its tokens.") var prompt: String?
    @Option(help: "Prompt token ids instead of text, comma-separated (prints ids).") var tokens: String?
    @Option(help: "Tokenizer directory (default: the checkpoint's tokenizer/).") var tokenizer: String?
    @Option(help: "Tokens to generate.") var maxNewTokens: Int = 200
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var runOptions: RunOptions
    @OptionGroup var precision: PrecisionOptions

    func validate() throws {
        guard maxNewTokens >= 0 else { throw ValidationError("--max-new-tokens must be ≥ 0, got \(maxNewTokens)") }
        guard (prompt == nil) != (tokens == nil) else { throw ValidationError("give either --prompt TEXT or --tokens IDS") }
    }

    func run() throws {
        runOptions.apply()
        let (model, loadedStep) = try loadCheckpoint(checkpoint, step: step)
        precision.apply(to: model, inference: true)
        var sampler = sampling.sampler(defaultTemperature: 0.8)
        let bytes = DecodeCache.bytesPerSequence(model.config, contextLength: model.config.sequenceLen)
        FileHandle.standardError.write(Data("decode cache: \(bytes) bytes per sequence at \(model.config.sequenceLen) positions\n".utf8))
        if let tokens {
            let ids = try parseIDs(tokens, vocabSize: model.config.vocabSize, flag: "--tokens")
            guard !ids.isEmpty else { throw UserError("--tokens is empty; give at least one token id") }
            Generator.generate(model, prompt: ids, maxNewTokens: maxNewTokens, sampler: &sampler) { id in
                print(id, terminator: " ")
                fflush(nil)
                return true
            }
            print()
            return
        }
        let tok = try textTokenizer(for: model, checkpoint: checkpoint, step: loadedStep, given: tokenizer)
        let text = prompt ?? ""
        print(text, terminator: "")
        fflush(nil)
        var stream = UTF8Stream()
        Generator.generate(model, prompt: [tok.bosID] + tok.encode(text), maxNewTokens: maxNewTokens, sampler: &sampler) { id in
            // <|bos|> starts a new document: show it as a blank line and go on.
            let piece = id == tok.bosID ? "\n" : stream.push((try? tok.bytes(of: id)) ?? [])
            print(piece, terminator: "")
            fflush(nil)
            return true
        }
        print(stream.finish())
    }
}
