// One measurement case of `bench model`, run in a child process of its own so that its
// peak resident memory (VmHWM) is its own: `bench model-case` (train step, forward, memory)
// and `bench decode-case` (prefill and decode at one context length). Each prints one JSON
// line for the parent.
import ArgumentParser
import Blocks
import CBLAS
import Foundation
import Tensor
import Train
import Inference

/// What a child measures.
struct ModelCase: Codable {
    var pattern: String, depth: Int, batch: Int, seq: Int, vocab: Int
    var optimizer: String, runs: Int, threads: Int
    /// Decode cases: the context length and the tokens decoded after it.
    var context = 0, newTokens = 0
    /// Train cases: also time PyTorch's step (tools/torch_bench.py --serve), in turn with ours.
    var torch: Bool?
    /// Train cases: after the timed rounds, run `runs` more steps with `OpProfile` on.
    var profile: Bool?
    /// Train cases: each round also times the step (ours, and PyTorch's when asked for)
    /// while a busy process spins on the last core.
    var busy: Bool?
    /// The precision of the products (float32 or bfloat16; nil: float32).
    var dtype: String?
    /// Train cases in bf16: each round also times the step in fp32 (the same model, the
    /// products switched for that step), for a ratio taken round by round.
    var compareFP32: Bool?

    /// The case a parent passed as JSON, with this process's threads set to it, and its
    /// model (seed 1).
    static func load(_ json: String) throws -> (ModelCase, ModelConfig, GPT) {
        let c = try JSONDecoder().decode(ModelCase.self, from: Data(json.utf8))
        Parallel.setThreadCount(c.threads)
        Precision.set(c.precision)
        let config = try c.config()
        return (c, config, try GPT(config: config, seed: 1))
    }

    var precision: MatmulPrecision { dtype.flatMap(MatmulPrecision.init(rawValue:)) ?? .float32 }

    func config() throws -> ModelConfig {
        let kinds = try NamedPattern.parse(pattern, depth: depth)
        let config = ModelConfig.fromDepth(depth, vocabSize: vocab, sequenceLen: max(seq, context + newTokens + 3), blockPattern: kinds)
        try config.validate()
        return config
    }
}

struct TrainResult: Codable {
    var parameters: Int, flopsPerToken: Double
    var trainSeconds: [Double], forwardSeconds: [Double]
    /// Resident bytes before the first step (weights, optimiser state), the peak over the
    /// first step, and the peak less that and the gradients: the activations' share.
    var rssBefore: Int, peakRSS: Int, gradientBytes: Int
    var activationBytes: Int { peakRSS - rssBefore - gradientBytes }
    /// The FLOPs of the train step's linear-layer products (6 per weight per token, for B·T
    /// tokens), and the timed rounds of them: round i ran train step i, then the products by
    /// raw OpenBLAS sgemm (its own threads), then through our `gemm`.
    var linearFLOPs: Double, rawSeconds: [Double], oursSeconds: [Double]
    /// PyTorch's train step, round by round after ours (nil: not asked for, or it failed).
    var torchSeconds: [Double]?
    /// The same step in fp32, round by round (nil: not asked for).
    var fp32Seconds: [Double]?
    /// The same steps with a busy process on one core, round by round (nil: not asked for).
    var busySeconds: [Double]?, torchBusySeconds: [Double]?
    /// The profiled steps (nil: not asked for): how many, their total wall time, and the
    /// time per op summed over them.
    var profileSteps: Int?, profileSeconds: Double?, profile: [OpProfile.Entry]?
    /// The median GFLOPS of the raw products, and of ours.
    var rawLinearGFLOPS: Double { linearFLOPs / Samples(seconds: rawSeconds).median / 1e9 }
    var oursLinearGFLOPS: Double { linearFLOPs / Samples(seconds: oursSeconds).median / 1e9 }

    /// Model GFLOPS ÷ raw sgemm GFLOPS, round by round (each round's step against the raw
    /// products timed right after it), and the median of those: a slow spell of the shared
    /// machine falls on both sides of a round and cancels in its ratio.
    func modelOverRaw(tokens: Double) -> Double {
        Samples(seconds: zip(trainSeconds, rawSeconds).map { flopsPerToken * tokens / $0 / (linearFLOPs / $1) }).median
    }
    /// Our products ÷ the raw ones, round by round, and the median.
    var oursOverRaw: Double { Samples(seconds: zip(oursSeconds, rawSeconds).map { $1 / $0 }).median }
}

struct DecodeResult: Codable {
    var prefillSeconds: Double, decodeSeconds: [Double], cacheBytes: Int
}

/// Resident memory of this process from /proc/self/status: (current, peak) in bytes.
func residentMemory() -> (current: Int, peak: Int) {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    func field(_ name: String) -> Int {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first { Int($0) != nil } ?? "0") ?? 0) * 1024
    }
    return (field("VmRSS"), field("VmHWM"))
}

func printJSON<T: Encodable>(_ value: T) throws {
    print(String(decoding: try JSONEncoder().encode(value), as: UTF8.self))
}

struct ModelCaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model-case", abstract: "One train/forward case of `bench model` (run by it).", shouldDisplay: false)

    @Option(help: "The case, as JSON.") var json: String

    func run() throws {
        let (c, config, model) = try ModelCase.load(json)
        var settings = OptimizerSettings()
        settings.muonForMatrices = c.optimizer == "muon"
        let trainer = Trainer(model: model, settings: settings)
        var g = SeededGenerator(seed: 2)
        let ids = IndexTensor(shape: [c.batch, c.seq], values: (0..<(c.batch * c.seq)).map { _ in Int32(g.next() % UInt64(c.vocab)) })
        let targets = IndexTensor(shape: [c.batch, c.seq], values: ids.values.map { ($0 + 1) % Int32(c.vocab) })
        // The first step, cold, sets the peak: gradients and activations come on top of the
        // weights and optimiser state already resident.
        let before = residentMemory().current
        _ = try trainer.step([(ids, targets)], totalSteps: 1_000_000)
        let peak = residentMemory().peak
        // The train step and the raw and our products at its shapes take turns, so a slow
        // phase of a shared machine falls on each alike and their ratio holds. After the raw
        // products OpenBLAS's own threads spin for a while (about 2^28 cycles) before they
        // sleep; an untimed pause keeps them off the cores while the next body is timed.
        // PyTorch's step, when asked for, is a fourth body of each round (its OpenMP threads
        // spin after it like OpenBLAS's, hence the pause).
        let products = LinearProducts(config, tokens: c.batch * c.seq)
        let layers = config.blockPattern.map(\.rawValue).joined()
        let server = c.torch == true
            ? TorchServer(layers: layers, batch: c.batch, seq: c.seq, vocab: c.vocab, threads: c.threads, dtype: c.precision) : nil
        var torchFailed = c.torch == true && server == nil
        var bodies: [() -> Void] = [
            { _ = try? trainer.step([(ids, targets)], totalSteps: 1_000_000) },
            { openblas_set_num_threads(Int32(c.threads)); products.pass(raw: true); openblas_set_num_threads(1) },
            { products.pass(raw: false) },
        ]
        var pauses = [0, 0.25, 0]
        let fp32Index = bodies.count
        if c.compareFP32 == true {
            bodies.append { Precision.with(.float32) { _ = try? trainer.step([(ids, targets)], totalSteps: 1_000_000) } }
            pauses.append(0)
        }
        if let server {
            bodies.append { if !torchFailed && !server.step() { torchFailed = true } }
            pauses.append(0.3)
        }
        // The busy rounds: the competitor runs only while their step is timed.
        let competitor = c.busy == true ? try BusyProcess() : nil
        let busyIndex = bodies.count
        if let competitor {
            bodies.append { competitor.run { _ = try? trainer.step([(ids, targets)], totalSteps: 1_000_000) } }
            pauses.append(0)
            if let server {
                bodies.append { competitor.run { if !torchFailed && !server.step() { torchFailed = true } } }
                pauses.append(0.3)
            }
        }
        let timed = timeInterleaved(warmup: 1, runs: c.runs, pauses: pauses, bodies)
        competitor?.stop()
        server?.close()
        let forward = timeRuns(runs: c.runs) { _ = GradMode.withoutGradients { model.loss(ids, targets: targets) } }
        var profiled: (seconds: Double, entries: [OpProfile.Entry])?
        if c.profile == true {
            OpProfile.start()
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<c.runs { _ = try trainer.step([(ids, targets)], totalSteps: 1_000_000) }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            profiled = (seconds, OpProfile.stop())
        }
        try printJSON(TrainResult(parameters: config.parameterCount, flopsPerToken: config.flopsPerToken,
                                  trainSeconds: timed[0].seconds, forwardSeconds: forward.seconds,
                                  rssBefore: before, peakRSS: peak, gradientBytes: config.parameterCount * 4,
                                  linearFLOPs: products.flops, rawSeconds: timed[1].seconds, oursSeconds: timed[2].seconds,
                                  torchSeconds: server != nil && !torchFailed ? timed[fp32Index + (c.compareFP32 == true ? 1 : 0)].seconds : nil,
                                  fp32Seconds: c.compareFP32 == true ? timed[fp32Index].seconds : nil,
                                  busySeconds: competitor != nil ? timed[busyIndex].seconds : nil,
                                  torchBusySeconds: competitor != nil && server != nil && !torchFailed ? timed[busyIndex + 1].seconds : nil,
                                  profileSteps: profiled.map { _ in c.runs }, profileSeconds: profiled?.seconds,
                                  profile: profiled?.entries))
    }
}

/// A process that spins on the machine's last core (pinned with `taskset` where it is
/// installed), stopped except inside `run`: the competing load of a shared machine.
final class BusyProcess {
    let pid: pid_t

    init() throws {
        let core = ProcessInfo.processInfo.activeProcessorCount - 1
        let spin = ["sh", "-c", "while :; do :; done"]
        var child: pid_t = 0
        func spawn(_ args: [String]) -> Int32 {
            var argv = args.map { strdup($0) } + [nil]
            defer { for a in argv { free(a) } }
            return posix_spawnp(&child, args[0], nil, nil, &argv, environ)
        }
        if spawn(["taskset", "-c", "\(core)"] + spin) != 0, spawn(spin) != 0 {
            throw ValidationError("--busy: could not start a busy process (sh)")
        }
        pid = child
        kill(pid, SIGSTOP)
    }

    func run(_ body: () -> Void) {
        kill(pid, SIGCONT)
        body()
        kill(pid, SIGSTOP)
    }

    func stop() {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}

/// The products of the linear layers in a train step of `tokens` tokens — y = x·Wᵀ,
/// dx = dy·W, dW = dyᵀ·x for each weight matrix (the lm_head too, not the embedding lookup)
/// — on buffers of their sizes, either as raw cblas_sgemm calls (with OpenBLAS's own threads
/// when the caller sets them) or through our `gemm` (OpenBLAS on one thread, blocks over our
/// workers).
final class LinearProducts {
    let shapes: [(out: Int, in: Int, count: Int)]
    let tokens: Int
    /// 6 FLOPs per weight per token.
    let flops: Double
    private var x: [Float], w: [Float], y: [Float]

    init(_ config: ModelConfig, tokens t: Int) {
        var byShape: [[Int]: Int] = [:]   // [out, in] → how many matrices have it
        for spec in config.parameterSpecs where spec.shape.count == 2 && spec.name != "transformer.wte.weight" {
            byShape[spec.shape, default: 0] += 1
        }
        shapes = byShape.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { ($0[0], $0[1], byShape[$0]!) }
        tokens = t
        flops = shapes.reduce(0) { $0 + 6 * Double(t * $1.out * $1.in * $1.count) }
        let largest = shapes.map { max($0.out, $0.in) }.max() ?? 1
        x = [Float](repeating: 0.5, count: t * largest)
        w = [Float](repeating: 0.25, count: largest * largest)
        y = [Float](repeating: 0, count: max(t * largest, largest * largest))
    }

    func pass(raw: Bool) {
        let t = tokens
        x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
            let (xa, wa, ya) = (xp.baseAddress!, wp.baseAddress!, yp.baseAddress!)
            for (o, i, count) in shapes {
                for _ in 0..<count {
                    if raw {
                        let (o, i, tt) = (Int32(o), Int32(i), Int32(t))
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tt, o, i, 1, xa, i, wa, i, 0, ya, o)    // y = x Wᵀ
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tt, i, o, 1, xa, o, wa, i, 0, ya, i)  // dx = dy W
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o, i, tt, 1, xa, o, xa, i, 0, ya, i)    // dW = dyᵀ x
                    } else {
                        gemm(transposeB: true, m: t, n: o, k: i, a: xa, b: wa, c: ya)
                        gemm(m: t, n: i, k: o, a: xa, b: wa, c: ya)
                        gemm(transposeA: true, m: o, n: i, k: t, a: xa, b: xa, c: ya)
                    }
                }
            }
        } } }
    }
}

struct DecodeCaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode-case", abstract: "One prefill/decode case of `bench model` (run by it).", shouldDisplay: false)

    @Option(help: "The case, as JSON.") var json: String

    func run() throws {
        let (c, config, model) = try ModelCase.load(json)
        if c.precision == .bfloat16 { model.packWeightsBF16() }
        var g = SeededGenerator(seed: 3)
        let prompt = (0..<c.context).map { _ in Int32(g.next() % UInt64(c.vocab)) }
        // Greedy decoding: the first callback comes after the prefill, each next one after one
        // more token (its step and the pick of the next id). The first two tokens warm up.
        var sampler = Sampler(temperature: 0, topK: 0, seed: 0)
        var stamps: [UInt64] = []
        let t0 = DispatchTime.now().uptimeNanoseconds
        Generator.generate(model, prompt: prompt, maxNewTokens: c.newTokens + 3, sampler: &sampler) { _ in
            stamps.append(DispatchTime.now().uptimeNanoseconds)
            return true
        }
        let prefill = Double(stamps[0] - t0) * 1e-9
        let times = (3..<stamps.count).map { Double(stamps[$0] - stamps[$0 - 1]) * 1e-9 }
        try printJSON(DecodeResult(prefillSeconds: prefill, decodeSeconds: times,
                                   cacheBytes: DecodeCache.bytesPerSequence(config, contextLength: c.context)))
    }
}

/// Runs a case in a child process of this executable; the error carries the child's output.
func runChild<T: Decodable>(_ mode: String, _ c: ModelCase, as: T.Type) throws -> T {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
    if !FileManager.default.isExecutableFile(atPath: process.executableURL!.path) {
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    }
    process.arguments = [mode, "--json", String(decoding: try JSONEncoder().encode(c), as: UTF8.self)]
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errors = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0, let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last else {
        throw ValidationError("\(mode) \(c.pattern) d\(c.depth) T=\(c.seq) failed: \(String(decoding: errors, as: UTF8.self))")
    }
    return try JSONDecoder().decode(T.self, from: Data(line.utf8))
}
