// `bench cores`: how much of its cores one process gets. For each thread count N it runs,
// side by side on the same cores, one process × N threads training B = N sequences per step
// against N processes × 1 thread training one sequence each (the same work per core, no
// exchange between them: the most N cores compute alone), and reports the one process's
// tokens/s as a share of the N processes' sum. `--profile` adds, per op, the time a step
// spends in it in each layout: an op whose time grows in the one process is where its cores
// are lost (ideal: the same ms per step in both, as every core does the same work). Each
// layout's minor page faults per step are reported beside it: memory the allocator gives
// back and takes again every step is faulted in anew, and one process's threads take those
// faults in turn where separate processes take them side by side.
import ArgumentParser
import Blocks
import Foundation
import Tensor
import Train

struct CoresCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cores",
        abstract: "One process × N threads against N single-thread processes, side by side (the same work per core).")

    @Option(help: "Comma-separated patterns.") var patterns = "all-T,all-M"
    @Option(help: "Model depth.") var depth = 12
    @Option(help: "Tokens per sequence.") var seq = 512
    @Option(help: "Vocabulary size.") var vocab = 32768
    @Option(help: "Matrix optimiser: muon or adamw.") var optimizer = "adamw"
    @Option(help: "Precision of the products: float32 or bfloat16. Default: the fastest here.")
    var dtype = Precision.fastest.rawValue
    @Option(help: "Comma-separated thread counts N (default: all cores).")
    var threads = String(ProcessInfo.processInfo.activeProcessorCount)
    @Option(help: "Timed steps per process (after one warm-up); the median is reported.") var runs = 3
    @Flag(help: "Also time each op over --runs more steps in both layouts, and print where the one process loses time.")
    var profile = false
    @Option(help: "Also write the results as JSON to this file.") var json: String?

    struct Row: Codable {
        var pattern: String, threads: Int, batch: Int, seq: Int
        /// The one process's tokens/s, and the sum of the single-thread processes'.
        var oneTokS: Double, separateTokS: Double
        /// Minor page faults per timed step: the one process's, and the single-thread ones'
        /// summed (fresh memory touched each step, which one process's threads fault in turn).
        var oneFaults: Double, separateFaults: Double
        var share: Double { oneTokS / separateTokS }
        /// `--profile`: per op, ms per step in the one process and (mean over the processes)
        /// in a single-thread one.
        var ops: [OpRow]?
    }
    struct OpRow: Codable {
        var phase: String, op: String, oneMs: Double, separateMs: Double
    }

    func validate() throws {
        guard ["muon", "adamw"].contains(optimizer) else { throw ValidationError("--optimizer must be muon or adamw, got \(optimizer)") }
        _ = try ModelCommand.precisions(dtype)
        let counts = try ModelCommand.list(threads, "--threads")
        guard !counts.isEmpty, counts.allSatisfy({ $0 >= 1 && $0 <= Parallel.maxThreads }) else {
            throw ValidationError("--threads: each count must be 1...\(Parallel.maxThreads), got \(threads)")
        }
        guard runs >= 1, seq >= 8, depth >= 1 else { throw ValidationError("--runs and --depth must be ≥ 1 and --seq ≥ 8") }
        for p in patterns.split(separator: ",") { _ = try NamedPattern.parse(String(p), depth: depth) }
    }

    func run() throws {
        let counts = try ModelCommand.list(threads, "--threads")
        print("# bench cores\n\n\(machineSummary(threads: counts.max() ?? 1))\n")
        print("d\(depth), V=\(vocab), T=\(seq), \(optimizer), \(dtype); per layout: one warm-up step, then the median of \(runs) "
              + "(the single-thread processes start their timed steps together). Share = one process ÷ the sum of the separate ones.\n")
        var rows: [Row] = []
        print("| pattern | N | one process × N threads, B=N | N processes × 1 thread, B=1 each (sum) | share | page faults per step: one, separate (sum) |")
        print("|---|---:|---:|---:|---:|---:|")
        for n in counts {
            for p in patterns.split(separator: ",").map(String.init) {
                var c = ModelCase(pattern: p, depth: depth, batch: n, seq: seq, vocab: vocab, optimizer: optimizer, runs: runs, threads: n)
                c.dtype = dtype
                c.profile = profile
                let one = try CaseProcess.runTogether([c])[0]
                (c.batch, c.threads) = (1, 1)
                let separate = try CaseProcess.runTogether([ModelCase](repeating: c, count: n))
                let oneTokS = Double(n * seq) / Samples(seconds: one.seconds).median
                let separateTokS = separate.reduce(0) { $0 + Double(seq) / Samples(seconds: $1.seconds).median }
                var row = Row(pattern: p, threads: n, batch: n, seq: seq, oneTokS: oneTokS, separateTokS: separateTokS,
                              oneFaults: one.faultsPerStep, separateFaults: separate.reduce(0) { $0 + $1.faultsPerStep })
                if profile { row.ops = Self.compare(one, separate) }
                rows.append(row)
                print("| \(p) | \(n) | \(fmt(oneTokS, 0)) tok/s | \(fmt(separateTokS, 0)) tok/s | \(fmt(row.share * 100, 0))% | "
                      + "\(fmt(row.oneFaults, 0)), \(fmt(row.separateFaults, 0)) |")
                fflush(nil)
            }
        }
        if profile { Self.printProfiles(rows) }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(rows).write(to: URL(fileURLWithPath: json))
            print("\nJSON: \(json)")
        }
    }

    /// Per (phase, op): ms per step of the one process and the mean of the separate ones.
    static func compare(_ one: CoresResult, _ separate: [CoresResult]) -> [OpRow] {
        func perStep(_ r: CoresResult) -> [String: (phase: String, op: String, ms: Double)] {
            var table: [String: (String, String, Double)] = [:]
            for e in r.profile ?? [] where e.phase != OpProfile.insidePhase { table[e.phase + " " + e.op] = (e.phase, e.op, e.seconds * 1000 / Double(max(1, r.profileSteps))) }
            return table
        }
        let o = perStep(one), s = separate.map(perStep)
        var keys = Array(o.keys)
        for t in s { keys += t.keys.filter { o[$0] == nil && !keys.contains($0) } }
        return keys.compactMap { key -> OpRow? in
            guard let known = o[key] ?? s.lazy.compactMap({ $0[key] }).first else { return nil }
            let mean = s.reduce(0) { $0 + ($1[key]?.ms ?? 0) } / Double(max(1, s.count))
            return OpRow(phase: known.phase, op: known.op, oneMs: o[key]?.ms ?? 0, separateMs: mean)
        }.sorted { $0.oneMs - $0.separateMs > $1.oneMs - $1.separateMs }
    }

    static func printProfiles(_ rows: [Row]) {
        print("\n## Where the one process loses time (--profile)\n")
        print("Per op, ms per step in each layout (the separate side: the mean over its processes). Every core does the "
              + "same work in both, so ideally the columns are equal; rows are ordered by the time the one process loses "
              + "(one − separate), ops under 0.5% of the step left out.")
        for row in rows {
            guard let ops = row.ops else { continue }
            let oneTotal = ops.reduce(0) { $0 + $1.oneMs }, separateTotal = ops.reduce(0) { $0 + $1.separateMs }
            print("\n### \(row.pattern), N=\(row.threads): ops sum to \(fmt(oneTotal, 0)) ms (one) against \(fmt(separateTotal, 0)) ms (separate)\n")
            print("| phase | op | one ms | separate ms | one ÷ separate | lost ms |")
            print("|---|---|---:|---:|---:|---:|")
            for r in ops where max(r.oneMs, r.separateMs) >= 0.005 * oneTotal {
                print("| \(r.phase) | \(r.op) | \(fmt(r.oneMs, 1)) | \(fmt(r.separateMs, 1)) | "
                      + "\(r.separateMs > 0 ? fmt(r.oneMs / r.separateMs, 2) : "-") | \(fmt(r.oneMs - r.separateMs, 1)) |")
            }
        }
    }
}

/// What a `cores-case` child measured: its timed steps, and its profiled ones.
struct CoresResult: Codable {
    var seconds: [Double]
    /// Minor page faults per timed step.
    var faultsPerStep: Double = 0
    var profileSteps = 0
    var profile: [OpProfile.Entry]?
}

/// `bench cores-case`: builds a case's model and trainer, takes a warm-up step, says
/// `ready`, and waits for a line on its input before its timed steps, so that several can
/// be started together.
struct CoresCaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cores-case", abstract: "One process of `bench cores` (run by it).", shouldDisplay: false)

    @Option(help: "The case, as JSON.") var json: String

    func run() throws {
        let (c, _, model) = try ModelCase.load(json)
        var settings = OptimizerSettings()
        settings.muonForMatrices = c.optimizer == "muon"
        let trainer = Trainer(model: model, settings: settings)
        // Each process its own tokens (seeded by its pid would break reproducibility; the
        // content does not change the time).
        var g = SeededGenerator(seed: 2)
        let ids = IndexTensor(shape: [c.batch, c.seq], values: (0..<(c.batch * c.seq)).map { _ in Int32(g.next() % UInt64(c.vocab)) })
        let targets = IndexTensor(shape: [c.batch, c.seq], values: ids.values.map { ($0 + 1) % Int32(c.vocab) })
        _ = try trainer.step([(ids, targets)], totalSteps: 1_000_000)
        print("ready")
        fflush(nil)
        guard readLine() != nil else { return }
        let faultsBefore = minorFaults()
        let timed = try (0..<c.runs).map { _ in
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try trainer.step([(ids, targets)], totalSteps: 1_000_000)
            return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        }
        var result = CoresResult(seconds: timed, faultsPerStep: Double(minorFaults() - faultsBefore) / Double(c.runs))
        if c.profile == true {
            OpProfile.start()
            for _ in 0..<c.runs { _ = try trainer.step([(ids, targets)], totalSteps: 1_000_000) }
            result.profile = OpProfile.stop()
            result.profileSteps = c.runs
        }
        try printJSON(result)
    }
}

/// This process's minor page faults so far.
func minorFaults() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_minflt
}

/// `cores-case` children of this executable, started together.
enum CaseProcess {
    /// Starts one child per case, waits until each has taken its warm-up step, lets them all
    /// go at once, and returns their results in the order of `cases`.
    static func runTogether(_ cases: [ModelCase]) throws -> [CoresResult] {
        var children: [(process: Process, input: Pipe, lines: LineReader)] = []
        defer { for c in children where c.process.isRunning { c.process.terminate() } }
        for c in cases {
            let process = Process(), input = Pipe(), output = Pipe()
            process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            process.arguments = ["cores-case", "--json", String(decoding: try JSONEncoder().encode(c), as: UTF8.self)]
            process.standardInput = input
            process.standardOutput = output
            try process.run()
            children.append((process, input, LineReader(output.fileHandleForReading)))
        }
        for (i, child) in children.enumerated() where child.lines.next() != "ready" {
            throw ValidationError("cores-case \(i) (\(cases[i].pattern) d\(cases[i].depth)) did not start")
        }
        for child in children { try child.input.fileHandleForWriting.write(contentsOf: Data("go\n".utf8)) }
        return try children.enumerated().map { i, child in
            guard let line = child.lines.next() else { throw ValidationError("cores-case \(i) ended without its result") }
            child.process.waitUntilExit()
            return try JSONDecoder().decode(CoresResult.self, from: Data(line.utf8))
        }
    }
}

/// The lines a child prints, read as they come.
final class LineReader {
    private let handle: FileHandle
    private var buffer = Data()

    init(_ handle: FileHandle) { self.handle = handle }

    /// The next line without its newline; nil at the end of the output.
    func next() -> String? {
        while true {
            if let end = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[buffer.startIndex..<end], as: UTF8.self)
                buffer = Data(buffer[(end + 1)...])
                return line
            }
            let chunk = handle.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }
}
