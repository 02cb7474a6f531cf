// `bench distributed`: data-parallel training on this machine, 1 process × T threads against
// N MPI ranks × T/N threads for each N of a sweep, on the same steps (the same tokens per
// step, each rank one micro-batch of its share), run by the nanochat executable beside this
// one on a tokenizer and shards made from the repository's corpus. Reports per layout the
// median step tok/s and its ratio to the one process; the step split into compute (forward,
// backward, optimiser) and the exchange (the gradients' reduce-scatter onto their owners, the
// updated weights' all-gather), the share of the step the exchange takes and how much of it
// was hidden behind compute; the reduce-scatter's bandwidth at the model's size; the
// optimiser state per rank and the peak RSS of a process (rank 0's under MPI). `--route`
// picks the exchange: the shared-memory window of ranks on one host, or MPI's collectives as
// between hosts (over shared memory, or over TCP only), where each rank count runs twice:
// the exchange after compute, and overlapped with it (the gradients sent during the backward
// pass, the updated weights during the next forward pass); "hidden" is the share of the
// first's exchange (wait, reduce-scatter, all-gather) the second no longer spends.
import ArgumentParser
import Blocks
import Foundation
import Tensor

struct DistributedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distributed",
        abstract: "Train steps on 1 process × all threads against N MPI ranks × threads/N (needs mpirun and the nanochat executable)."
    )

    @Option(help: "Depths, comma-separated.") var depths = "6,12"
    @Option(help: "Block pattern name (all-T, all-M, early-T, alternating, mostly-M).") var pattern = "all-T"
    @Option(help: "MPI rank counts, comma-separated (each divides --threads; 1 is the one process).") var ranks = "2"
    @Option(help: "Tokens per sequence.") var seq = 512
    @Option(help: "Timed steps per run (after one warm-up step).") var steps = 6
    @Option(help: "Threads of the one process; each rank gets threads / ranks.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Text to make the tokenizer and shards from.") var corpus = "data/tinyshakespeare.txt"
    @Option(help: "Also write the results as JSON to this file.") var json: String?
    @Option(help: "The exchange: window (shared memory, ranks on one host), mpi (MPI's collectives, as between hosts), tcp (those over TCP only).")
    var route = "window"
    @Option(help: "More options for mpirun, space-separated (a --hostfile, the network to use: tools/slow_link.sh passes its own).")
    var mpirunOptions = ""

    /// mpirun's options for the route, then the ones given.
    var routeOptions: [String] {
        let extra = mpirunOptions.split(separator: " ").map(String.init)
        switch route {
        case "mpi": return ["--mca", "osc", "^sm"] + extra
        case "tcp":
            // Loopback, unless the options name the network.
            let link = extra.contains("btl_tcp_if_include") ? [] : ["--mca", "btl_tcp_if_include", "lo"]
            return ["--mca", "osc", "^sm", "--mca", "btl", "tcp,self"] + link + extra
        default: return extra
        }
    }

    var rankCounts: [Int] { ranks.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 > 1 } }

    func validate() throws {
        let counts = ranks.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("--ranks: a comma-separated list of rank counts ≥ 1, got \(ranks)")
        }
        for r in counts.compactMap({ $0 }) where threads < r || threads % r != 0 {
            throw ValidationError("--threads \(threads) must be a multiple of every rank count (\(r))")
        }
        guard steps >= 1, seq >= 8 else { throw ValidationError("--steps must be ≥ 1 and --seq ≥ 8") }
        guard ["window", "mpi", "tcp"].contains(route) else {
            throw ValidationError("--route must be window, mpi or tcp, got \(route)")
        }
    }

    struct Side: Codable {
        var label: String, ranks: Int, tokPerSec: Double, stepMs: Double
        /// Whether the gradients were summed during the backward pass, and the share of the
        /// same layout's reduce-scatter and wait, summing after it, that this no longer spent.
        var overlapped = false, hidden: Double?
        var waitMs: Double?, reduceMs: Double?, gatherMs: Double?
        var optimizerMiB: Double, peakRSSMiB: Double
        /// The exchange's time in the step (moving and summing), and the step less it and the
        /// wait for the slowest rank: compute.
        var exchangeMs: Double { (reduceMs ?? 0) + (gatherMs ?? 0) }
        var computeMs: Double { stepMs - exchangeMs - (waitMs ?? 0) }
    }

    struct Row: Codable {
        var depth: Int, parameters: Int, one: Side, many: [Side]
    }

    func run() throws {
        let nanochat = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("nanochat").path
        guard FileManager.default.isExecutableFile(atPath: nanochat) else {
            throw ValidationError("no nanochat executable beside bench (\(nanochat)); swift build -c release first")
        }
        print(machineSummary(threads: threads))
        let work = NSTemporaryDirectory() + "nanochat-bench-distributed-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: work) }
        _ = try command(nanochat, ["tokenizer", "train", "--input", corpus, "--vocab-size", "4096", "--out", "\(work)/tok"])
        _ = try command(nanochat, ["prepare", "--input", corpus, "--tokenizer", "\(work)/tok", "--out", "\(work)/data"])

        // Every layout trains the same sequences per step: as many as the most ranks asked for.
        let sequences = rankCounts.max() ?? 1
        var rows: [Row] = []
        for depth in depths.split(separator: ",").compactMap({ Int($0) }) {
            let config = "\(work)/d\(depth).py"
            let pattern = (try? NamedPattern.parse(self.pattern, depth: depth)) ?? []
            let text = """
                depth = \(depth)
                block_pattern = [\(pattern.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))]
                max_seq_len = \(seq)
                total_batch_size = \(seq * sequences)
                num_iterations = \(steps + 1)
                eval_every = -1
                eval_tokens = \(seq)
                sample_every = -1
                save_every = -1
                data_dir = "\(work)/data"
                tokenizer_dir = "\(work)/tok"
                """
            try Data(text.utf8).write(to: URL(fileURLWithPath: config))
            let one = try side("1 process × \(threads) threads", ranks: 1, sequences: sequences, try command(nanochat, [
                "train", config, "--threads=\(threads)", "--device_batch_size=\(sequences)",
                "--output_dir=\(work)/one-d\(depth)", "--overwrite"]))
            var many: [Side] = []
            for r in rankCounts {
                // Through MPI's collectives: the exchange after compute, then overlapped with it.
                var after: Side? = nil
                for overlap in route == "window" ? [false] : [false, true] {
                    let when = route == "window" ? "" : overlap ? ", overlapped" : ", after compute"
                    var s = try side("\(r) ranks × \(threads / r) threads\(when)", ranks: r, sequences: sequences, try command("mpirun", [
                        "-np", String(r), "--oversubscribe", "--bind-to", "none"] + routeOptions + [nanochat,
                        "train", config, "--threads=\(threads / r)", "--device_batch_size=\(sequences / r)",
                        "--overlap_exchange=\(overlap ? "True" : "False")",
                        "--output_dir=\(work)/many-d\(depth)", "--overwrite"])).side
                    s.overlapped = overlap
                    if let after, overlap {
                        let before = after.exchangeMs + (after.waitMs ?? 0), now = s.exchangeMs + (s.waitMs ?? 0)
                        if before > 0 { s.hidden = 1 - now / before }
                    }
                    if !overlap { after = s }
                    many.append(s)
                    print(String(format: "d%d: %@ %.0f tok/s, %@ %.0f tok/s: %.2fx", depth, one.side.label, one.side.tokPerSec,
                                 s.label, s.tokPerSec, s.tokPerSec / one.side.tokPerSec))
                    fflush(nil)
                }
            }
            let params = Int(one.log.firstMatch(of: /model: (\d+) parameters/)?.1 ?? "0") ?? 0
            rows.append(Row(depth: depth, parameters: params, one: one.side, many: many))
        }
        print("""

            Same sequences per step in every layout (\(sequences) × \(seq) tokens; each rank one micro-batch of its share). \
            Rank 0's medians. Wait: rank 0 waiting at a barrier before each exchange for the slowest rank's backward \
            pass and optimiser update (uneven speed of the cores); compute: the step less the wait and the exchange. \
            \(route == "window" ? "Through the shared-memory window the exchange runs after the backward pass (docs/DISTRIBUTED.md says why), so none of it is hidden: its share of the step is what overlapping it could win." : "Through MPI's collectives (\(routeOptions.joined(separator: " "))) each layout runs twice: the exchange after compute, then overlapped with it (the gradients sent to their owners during the backward pass, where the wait for the slowest rank is inside the reduce-scatter; the updated weights during the next forward pass, whose waits are in the all-gather); hidden: the share of the first's wait, reduce-scatter and all-gather the second no longer spends.")

            | d | ranks × threads | tok/s | ÷ 1 process | step ms | compute ms | wait ms | reduce-scatter ms | all-gather ms | exchange share of step | hidden | reduce-scatter GB/s | optimiser state per rank | peak RSS (rank 0) |
            |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
            """)
        for r in rows {
            for s in [r.one] + r.many {
                // A reduce-scatter moves (N-1)/N of the gradients out of each rank.
                let bytes = Double(r.parameters) * 4 * Double(s.ranks - 1) / Double(s.ranks)
                let gbps = s.reduceMs.map { bytes / ($0 / 1000) / 1e9 }
                func ms(_ v: Double?) -> String { v.map { String(format: "%.0f", $0) } ?? "-" }
                print(String(format: "| %d | %@ | %.0f | %.2fx | %.0f | %.0f | %@ | %@ | %@ | %@ | %@ | %@ | %.1f MiB | %.0f MiB |", r.depth, s.label,
                             s.tokPerSec, s.tokPerSec / r.one.tokPerSec, s.stepMs, s.computeMs, ms(s.waitMs), ms(s.reduceMs), ms(s.gatherMs),
                             s.ranks > 1 ? String(format: "%.0f%%", s.exchangeMs / s.stepMs * 100) : "-",
                             s.hidden.map { String(format: "%.0f%%", $0 * 100) } ?? (s.ranks > 1 && !s.overlapped ? "0%" : "-"),
                             gbps.map { String(format: "%.2f", $0) } ?? "-", s.optimizerMiB, s.peakRSSMiB))
            }
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(rows).write(to: URL(fileURLWithPath: json))
            print("wrote \(json)")
        }
    }

    /// Runs a program (mpirun as root needs its permission), returning its output.
    func command(_ program: String, _ arguments: [String]) throws -> String {
        try runChild(program, arguments, environment: ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"])
    }

    /// The median tok/s of the step lines after the first, the median collective times, and
    /// the optimiser state from a training log.
    func side(_ label: String, ranks: Int, sequences: Int, _ log: String) throws -> (side: Side, log: String) {
        let lines = log.split(separator: "\n").filter { $0.hasPrefix("step ") && $0.contains("tok/sec") }.dropFirst()
        func median(_ values: [Double]) -> Double? { values.isEmpty ? nil : values.sorted()[values.count / 2] }
        func values(_ pattern: Regex<(Substring, Substring)>) -> [Double] {
            lines.compactMap { line in line.firstMatch(of: pattern).flatMap { Double($0.1.replacingOccurrences(of: ",", with: "")) } }
        }
        guard let rate = median(values(/tok\/sec: ([\d,]+)/)) else {
            throw ValidationError("\(label): no step lines in its output:\n\(log.suffix(2000))")
        }
        let state = log.firstMatch(of: /optimiser state ([\d.]+) MiB/).flatMap { Double($0.1) } ?? 0
        let rss = log.firstMatch(of: /peak RSS (\d+) MiB/).flatMap { Double($0.1) } ?? 0
        return (Side(label: label, ranks: ranks, tokPerSec: rate, stepMs: Double(sequences * seq) / rate * 1000,
                     waitMs: median(values(/wait: ([\d.]+)ms/)), reduceMs: median(values(/reduce-scatter: ([\d.]+)ms/)), gatherMs: median(values(/all-gather: ([\d.]+)ms/)),
                     optimizerMiB: state, peakRSSMiB: rss), log)
    }
}
