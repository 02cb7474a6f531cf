// `bench distributed`: data-parallel training on this machine, 1 process × T threads against
// N MPI ranks × T/N threads on the same steps (the same tokens per step), run by the
// nanochat executable beside this one on a tokenizer and shards made from the repository's
// corpus. Reports the median step tok/s of each, their ratio, the time per step summing
// gradients onto their owners and broadcasting the updated weights (and the gradient
// reduction's bandwidth at the model's size), the optimiser state per rank, and the peak RSS of a process
// (rank 0's under MPI).
import ArgumentParser
import Blocks
import Foundation
import Tensor

struct DistributedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distributed",
        abstract: "Train steps on 1 process × all threads against N MPI ranks (needs mpirun and the nanochat executable)."
    )

    @Option(help: "Depths, comma-separated.") var depths = "6,12"
    @Option(help: "Block pattern name (all-T, all-M, early-T, alternating, mostly-M).") var pattern = "all-T"
    @Option(help: "MPI ranks.") var ranks = 2
    @Option(help: "Tokens per sequence.") var seq = 512
    @Option(help: "Timed steps per run (after one warm-up step).") var steps = 6
    @Option(help: "Threads of the one process; each rank gets threads / ranks.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Text to make the tokenizer and shards from.") var corpus = "data/tinyshakespeare.txt"
    @Option(help: "Also write the results as JSON to this file.") var json: String?

    func validate() throws {
        guard ranks >= 2 else { throw ValidationError("--ranks must be at least 2, got \(ranks)") }
        guard threads >= ranks, threads % ranks == 0 else {
            throw ValidationError("--threads \(threads) must be a multiple of --ranks \(ranks)")
        }
        guard steps >= 1, seq >= 8 else { throw ValidationError("--steps must be ≥ 1 and --seq ≥ 8") }
    }

    struct Side: Codable {
        var label: String, tokPerSec: Double, reduceMs: Double?, broadcastMs: Double?
        var optimizerMiB: Double, peakRSSMiB: Double
    }

    struct Row: Codable {
        var depth: Int, parameters: Int, one: Side, many: Side
        var ratio: Double { many.tokPerSec / one.tokPerSec }
        var reduceGBps: Double?
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

        var rows: [Row] = []
        for depth in depths.split(separator: ",").compactMap({ Int($0) }) {
            let config = "\(work)/d\(depth).py"
            let pattern = (try? NamedPattern.parse(self.pattern, depth: depth)) ?? []
            let text = """
                depth = \(depth)
                block_pattern = [\(pattern.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))]
                max_seq_len = \(seq)
                device_batch_size = 1
                total_batch_size = \(seq * ranks)
                num_iterations = \(steps + 1)
                eval_every = -1
                eval_tokens = \(seq)
                sample_every = -1
                save_every = -1
                data_dir = "\(work)/data"
                tokenizer_dir = "\(work)/tok"
                """
            try Data(text.utf8).write(to: URL(fileURLWithPath: config))
            let one = try side("1 process × \(threads) threads", try command(nanochat, [
                "train", config, "--threads=\(threads)", "--output_dir=\(work)/one-d\(depth)", "--overwrite"]))
            let many = try side("\(ranks) ranks × \(threads / ranks) threads", try command("mpirun", [
                "-np", String(ranks), "--oversubscribe", "--bind-to", "none", nanochat,
                "train", config, "--threads=\(threads / ranks)", "--output_dir=\(work)/many-d\(depth)", "--overwrite"]))
            let params = Int(one.log.firstMatch(of: /model: (\d+) parameters/)?.1 ?? "0") ?? 0
            // Summing onto the owners moves (N-1)/N of the gradients out of each rank.
            let bytes = Double(params) * 4 * Double(ranks - 1) / Double(ranks)
            let gbps = many.side.reduceMs.map { bytes / ($0 / 1000) / 1e9 }
            let row = Row(depth: depth, parameters: params, one: one.side, many: many.side, reduceGBps: gbps)
            rows.append(row)
            print(String(format: "d%d (%d parameters): %@ %.0f tok/s, %@ %.0f tok/s: %.2fx", depth, params,
                         one.side.label, one.side.tokPerSec, many.side.label, many.side.tokPerSec, row.ratio))
            fflush(nil)
        }
        print("\n| d | ranks × threads | tok/s | ÷ 1 process | gradient reduce ms/step | weight bcast ms/step | reduce GB/s | optimiser state per rank | peak RSS (rank 0) |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows {
            for (s, ratio) in [(r.one, 1.0), (r.many, r.ratio)] {
                print(String(format: "| %d | %@ | %.0f | %.2fx | %@ | %@ | %@ | %.1f MiB | %.0f MiB |", r.depth, s.label, s.tokPerSec, ratio,
                             s.reduceMs.map { String(format: "%.1f", $0) } ?? "-", s.broadcastMs.map { String(format: "%.1f", $0) } ?? "-",
                             s.reduceMs == nil ? "-" : r.reduceGBps.map { String(format: "%.2f", $0) } ?? "-",
                             s.optimizerMiB, s.peakRSSMiB))
            }
        }
        print("\nHidden behind the backward: none; the gradient reduction runs after the backward pass (docs/DISTRIBUTED.md says why).")
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
    func side(_ label: String, _ log: String) throws -> (side: Side, log: String) {
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
        return (Side(label: label, tokPerSec: rate, reduceMs: median(values(/reduce: ([\d.]+)ms/)),
                     broadcastMs: median(values(/bcast: ([\d.]+)ms/)), optimizerMiB: state, peakRSSMiB: rss), log)
    }
}
