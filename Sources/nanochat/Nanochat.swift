// The `nanochat` command: create, evaluate and sample hybrid Transformer/Mamba models.
//
//   nanochat tokenizer train|encode|decode              byte-level BPE
//   nanochat prepare --input FILES --tokenizer DIR --out DIR   train/val token shards
//   nanochat train CONFIG [--key=value ...] [--resume]   train, evaluate, sample, save
//   nanochat init CONFIG [--key=value ...] --out DIR     a freshly initialised checkpoint
//   nanochat eval --checkpoint DIR --data SHARD [...]    loss and bpb of a checkpoint
//   nanochat core --checkpoint DIR --bundle DIR          the CORE metric on an eval bundle
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
                      SweepCommand.self, SFTCommand.self, ChatCommand.self, ChatEvalCommand.self, CoreCommand.self, ServeCommand.self, ExportCommand.self, ImportCommand.self]
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

/// Runs a command's work on this process: alone (a nil world) when not started by mpirun;
/// under MPI an error on any rank ends every rank with that rank's message, and a run that
/// ends well closes MPI.
func runOnRanks(_ body: (World?) throws -> Void) throws {
    guard let world = World.current else { return try body(nil) }
    do {
        try body(world)
    } catch {
        world.abort("\(error)")
    }
    world.finalize()
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

