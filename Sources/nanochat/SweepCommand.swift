// `nanochat sweep`: train block patterns at equal FLOPs and depth over several seeds, and
// write the comparison (Markdown, JSON, SVG). See Train/Sweep.swift for the layout.
import ArgumentParser
import Blocks
import Foundation
import Tensor
import Train
import Tokenizer

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Train block patterns at equal training FLOPs and depth over several seeds; report val bpb vs FLOPs and time.",
        discussion: """
        Every run takes the base config and its --key=value overrides, then sets depth,
        block_pattern, seed and target_flops (its budget at that depth); it evaluates val bpb
        --eval-points times along the way and at the end, keeps metrics.jsonl and its log
        under OUT/runs/, and deletes its checkpoints. A run that finished is not repeated, so
        an interrupted sweep continues where it stopped when run again with the same
        arguments. --report-only rewrites the report from the runs already in OUT.
        """
    )

    @Argument(help: "Base config file (data, batch, sequence length, learning rates), e.g. configs/sweep_shakespeare.py.")
    var config: String?
    @Option(help: "Depths, comma-separated.") var depths = "4,6"
    @Option(help: "Patterns (names of bench model: all-T, all-M, early-T, alternating, mostly-M, or literal like TTMM), comma-separated.")
    var patterns = "all-T,all-M,early-T,alternating,mostly-M"
    @Option(help: "Seeds, comma-separated.") var seeds = "1,2,3"
    @Option(help: "Training FLOPs of every run, one per depth, comma-separated (e.g. 4e12,1e13).") var targetFlops: String?
    @Option(help: "Evaluations before the final one, evenly spaced.") var evalPoints = 4
    @Flag(inversion: .prefixedNo, help: "Add an all-M model deepened to all-T's parameter count at each depth's width.")
    var equalParameters = true
    @Option(help: "Directory of the sweep: sweep.json, runs/, report.md, charts.") var out: String
    @Flag(help: "Only rewrite the report from the finished runs in --out.") var reportOnly = false
    @OptionGroup var runOptions: RunOptions
    @Argument(parsing: .allUnrecognized, help: "Overrides of the base config, --key=value.") var overrides: [String] = []

    func run() throws {
        if reportOnly {
            try report()
            return
        }
        guard let config else { throw UserError("sweep: give a base config file (or --report-only)") }
        let depthList = try ints(depths, "--depths")
        let seedList = try ints(seeds, "--seeds")
        let deepest = ModelConfig.largest["n_layer"] ?? 4096
        if let bad = depthList.first(where: { !(1...deepest).contains($0) }) {
            throw UserError("--depths: depth must be in 1...\(deepest), got \(bad)")
        }
        let budgets = try (targetFlops ?? "").split(separator: ",").map { s -> Double in
            guard let v = Double(s.trimmingCharacters(in: .whitespaces)), v > 0 else {
                throw UserError("--target-flops: \(s) is not a positive number")
            }
            return v
        }
        guard budgets.count == depthList.count else {
            throw UserError("--target-flops needs one budget per depth (\(depthList.count) for --depths \(depths)), got \(budgets.count)")
        }
        guard evalPoints >= 1 else { throw UserError("--eval-points must be at least 1, got \(evalPoints)") }
        for key in SweepRunner.perRunKeys where overrides.contains(where: { $0.hasPrefix("--\(key)=") }) {
            throw UserError("--\(key) is set by the sweep for each run; remove it")
        }
        let base = try loadConfig(config, overrides: overrides)
        let tokenizer = try Tokenizer.load(from: TrainingKeys.tokenizerDir(base))
        let seq = try base.requiredInt("max_seq_len")
        let plan: [SweepRun]
        do {
            plan = try SweepPlan.runs(depths: depthList, patterns: patterns.split(separator: ",").map(String.init),
                                      seeds: seedList, equalParameters: equalParameters,
                                      vocabSize: tokenizer.vocabSize, sequenceLen: seq)
        } catch let e as ModelConfigError {
            throw UserError("--patterns: \(e.message)")
        }
        let manifest = SweepManifest(
            command: "nanochat sweep " + CommandLine.arguments.dropFirst(2).joined(separator: " "),
            config: config, settings: base.values.filter { !SweepRunner.perRunKeys.contains($0.key) }.mapValues(\.description),
            targetFLOPs: Dictionary(uniqueKeysWithValues: zip(depthList.map(String.init), budgets)),
            evalPoints: evalPoints, runs: plan, commit: gitCommit(), machine: machineDescription())
        try SweepRunner(manifest: manifest, base: base, tokenizer: tokenizer, out: out, threads: runOptions.threads).run { line in
            print(line)
            fflush(nil)
        }
        try report()
    }

    func report() throws {
        let report = try SweepReport.load(out)
        let md = try report.write(to: out)
        print(md)
        print("wrote \(out)/report.md, report.json and charts")
    }

    func ints(_ s: String, _ flag: String) throws -> [Int] {
        let parts = s.split(separator: ",", omittingEmptySubsequences: false)
        let values = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 > 0 }
        guard !values.isEmpty, values.count == parts.count else {
            throw UserError("\(flag): expected positive integers separated by commas, got \(s)")
        }
        return values
    }
}

/// The checked-out commit, with "+changes" when the tree differs from it; "unknown" outside git.
func gitCommit() -> String {
    func git(_ args: [String]) -> String? {
        let p = Process(), pipe = Pipe()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["git"] + args
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return p.terminationStatus == 0 ? String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : nil
    }
    guard let head = git(["rev-parse", "--short", "HEAD"]) else { return "unknown" }
    let dirty = git(["status", "--porcelain", "--untracked-files=no", "Sources"]).map { !$0.isEmpty } ?? false
    return dirty ? head + "+changes" : head
}

/// "AMD EPYC … (2 cores)" from /proc/cpuinfo.
func machineDescription() -> String {
    let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let line = info.split(separator: "\n").first { $0.hasPrefix("model name") }
    let model = line?.split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
    return "\(model), \(ProcessInfo.processInfo.activeProcessorCount) cores"
}
