// One measurement case of `bench model`, run in a child process of its own so that its
// peak resident memory (VmHWM) is its own: `bench model-case` (train step, forward, memory)
// and `bench decode-case` (prefill and decode at one context length). Each prints one JSON
// line for the parent.
import ArgumentParser
import Blocks
import Foundation
import Tensor
import Train

/// What a child measures.
struct ModelCase: Codable {
    var pattern: String, depth: Int, batch: Int, seq: Int, vocab: Int
    var optimizer: String, runs: Int, threads: Int
    /// Decode cases: the context length and the tokens decoded after it.
    var context = 0, newTokens = 0

    func config() throws -> ModelConfig {
        let kinds = try NamedPattern.parse(pattern, depth: depth)
        let config = ModelConfig.fromDepth(depth, vocabSize: vocab, sequenceLen: max(seq, context + newTokens), blockPattern: kinds)
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
        let c = try JSONDecoder().decode(ModelCase.self, from: Data(json.utf8))
        Parallel.setThreadCount(c.threads)
        let config = try c.config()
        let model = try GPT(config: config, seed: 1)
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
        let train = timeRuns(warmup: 0, runs: c.runs) { _ = try? trainer.step([(ids, targets)], totalSteps: 1_000_000) }
        let forward = timeRuns(runs: c.runs) { _ = GradMode.withoutGradients { model.loss(ids, targets: targets) } }
        try printJSON(TrainResult(parameters: config.parameterCount, flopsPerToken: config.flopsPerToken,
                                  trainSeconds: train.seconds, forwardSeconds: forward.seconds,
                                  rssBefore: before, peakRSS: peak, gradientBytes: config.parameterCount * 4))
    }
}

struct DecodeCaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode-case", abstract: "One prefill/decode case of `bench model` (run by it).", shouldDisplay: false)

    @Option(help: "The case, as JSON.") var json: String

    func run() throws {
        let c = try JSONDecoder().decode(ModelCase.self, from: Data(json.utf8))
        Parallel.setThreadCount(c.threads)
        let config = try c.config()
        let model = try GPT(config: config, seed: 1)
        var g = SeededGenerator(seed: 3)
        let prompt = IndexTensor(shape: [1, c.context], values: (0..<c.context).map { _ in Int32(g.next() % UInt64(c.vocab)) })
        let cache = DecodeCache(config: config, batch: 1, capacity: c.context + c.newTokens)
        let t0 = DispatchTime.now().uptimeNanoseconds
        var logits = GradMode.withoutGradients { model.logits(prompt, cache: cache) }
        let prefill = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        // Greedy decoding, each token timed on its own (logits to the next id included).
        var times: [Double] = []
        for _ in 0..<c.newTokens {
            let t = DispatchTime.now().uptimeNanoseconds
            let last = logits.floats.suffix(c.vocab)
            let next = Int32(last.indices.max { last[$0] < last[$1] }! - last.startIndex)
            logits = GradMode.withoutGradients { model.logits(IndexTensor(shape: [1, 1], values: [next]), cache: cache) }
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9)
        }
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
