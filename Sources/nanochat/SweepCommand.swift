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

    /// Keys the sweep sets for each run (a value in the base config is replaced; one on the
    /// command line is refused). They are left out of the manifest's settings.
    static let perRunKeys: Set<String> = ["depth", "block_pattern", "seed", "target_flops", "num_iterations", "output_dir",
                                          "n_embd", "model_tag", "eval_every", "sample_every", "save_every", "threads"]

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
        for key in Self.perRunKeys where overrides.contains(where: { $0.hasPrefix("--\(key)=") }) {
            throw UserError("--\(key) is set by the sweep for each run; remove it")
        }
        let base = try loadConfig(config, overrides: overrides)
        let tokenizer = try loadTokenizer(TrainingKeys.tokenizerDir(base))
        let seq = try base.requiredInt("max_seq_len")
        let plan: [SweepRun]
        do {
            plan = try SweepPlan.runs(depths: depthList, patterns: patterns.split(separator: ",").map(String.init),
                                      seeds: seedList, equalParameters: equalParameters,
                                      vocabSize: tokenizer.vocabSize, sequenceLen: seq)
        } catch let e as ModelConfigError {
            throw UserError("--patterns: \(e.message)")
        }
        let commit = gitCommit()
        var manifest = SweepManifest(
            command: "nanochat sweep " + CommandLine.arguments.dropFirst(2).joined(separator: " "),
            config: config, settings: base.values.filter { !Self.perRunKeys.contains($0.key) }.mapValues(\.description),
            targetFLOPs: Dictionary(uniqueKeysWithValues: zip(depthList.map(String.init), budgets)),
            evalPoints: evalPoints, runs: plan, commit: commit, machine: machineDescription())
        try AtomicFile.makeDirectories(out)
        let lock = try RunLock(dir: out, purpose: "nanochat sweep")
        defer { withExtendedLifetime(lock) {} }
        if let started = try checkContinuation(manifest) { manifest.commit = started }   // the sweep's first commit
        try AtomicFile.writeJSON(manifest, to: "\(out)/sweep.json")

        for (i, run) in plan.enumerated() {
            let dir = "\(out)/\(run.dir)"
            if FileManager.default.fileExists(atPath: "\(dir)/run.json") {
                print("[\(i + 1)/\(plan.count)] d\(run.depth) \(run.pattern) seed \(run.seed): finished earlier, kept")
                continue
            }
            try train(run, base: base, budget: budgets[depthList.firstIndex(of: run.depth)!], tokenizer: tokenizer,
                      commit: commit, label: "[\(i + 1)/\(plan.count)]")
        }
        try report()
    }

    /// One run: the base config with this run's model, seed and budget, evaluations spaced
    /// evenly, no samples, checkpoints deleted afterwards; run.json marks it finished.
    func train(_ run: SweepRun, base: ConfigFile, budget: Double, tokenizer: Tokenizer, commit: String, label: String) throws {
        let dir = "\(out)/\(run.dir)"
        if FileManager.default.fileExists(atPath: dir) { try FileManager.default.removeItem(atPath: dir) }   // unfinished: start over
        try AtomicFile.makeDirectories(dir)
        var file = base
        let blocks = "[" + run.blocks.map { "\"\($0)\"" }.joined(separator: ",") + "]"
        var sets = ["--depth=\(run.blocks.count)", "--block_pattern=\(blocks)", "--seed=\(run.seed)", "--target_flops=\(budget)",
                    "--num_iterations=0", "--output_dir=\(dir)", "--model_tag=d\(run.depth)-\(run.pattern)-seed\(run.seed)",
                    "--sample_every=0", "--save_every=0", "--threads=\(runOptions.threads)"]
        if run.equalParameters { sets.append("--n_embd=\(64 * run.depth)") }
        for s in sets { try file.override(s) }
        var settings = try TrainSettings.resolve(file, path: config ?? "sweep", vocabSize: tokenizer.vocabSize)
        if settings.numIterations < evalPoints {
            throw UserError("d\(run.depth) \(run.pattern): the budget buys only \(settings.numIterations) steps of "
                            + "\(settings.totalBatchSize) tokens, fewer than --eval-points \(evalPoints); raise --target-flops")
        }
        settings.evalEvery = settings.numIterations / evalPoints
        let logHandle = try FileHandle(forWritingTo: createFile("\(dir)/train.log"))
        defer { try? logHandle.close() }
        print("\(label) d\(run.depth) \(run.pattern) (\(run.blocks)) seed \(run.seed): \(settings.model.parameterCount) parameters, "
              + "\(settings.numIterations) steps of \(settings.totalBatchSize) tokens")
        fflush(nil)
        let training = try TrainingRun(settings: settings, tokenizer: tokenizer, resume: nil) { line in
            logHandle.write(Data((line + "\n").utf8))
            if line.contains("val bpb") { print("    " + line); fflush(nil) }
        }
        let summary = try training.run()
        try Checkpoint.remove(in: dir)
        try? FileManager.default.removeItem(atPath: "\(dir)/tokenizer")
        let record = SweepRunRecord(run: run, parameters: settings.model.parameterCount,
                                    nonEmbeddingParameters: settings.model.nonEmbeddingParameterCount,
                                    flopsPerToken: settings.model.flopsPerToken, tokensPerStep: settings.totalBatchSize,
                                    steps: settings.numIterations, commit: commit)
        try AtomicFile.writeJSON(record, to: "\(dir)/run.json")
        print(String(format: "    done: val bpb %.4f, median %@ tok/s", summary.evaluations.last?.bpb ?? .nan,
                     TrainingRun.grouped(Int(summary.medianTokensPerSecond))))
    }

    /// A sweep directory holding finished runs of other settings is not mixed into: the
    /// runs must agree on everything but the list (more seeds or patterns may be added).
    /// Returns the commit the existing sweep started at, if there is one.
    func checkContinuation(_ manifest: SweepManifest) throws -> String? {
        let path = "\(out)/sweep.json"
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)) else { return nil }
        guard let old = try? JSONDecoder().decode(SweepManifest.self, from: data) else {
            throw UserError("\(path) is not a sweep manifest; choose another --out")
        }
        var differences: [String] = []
        if old.settings != manifest.settings { differences.append("the base config or its overrides") }
        for (d, f) in manifest.targetFLOPs where old.targetFLOPs[d].map({ $0 != f }) ?? false {
            differences.append("the budget of depth \(d) (\(old.targetFLOPs[d]!) before, \(f) now)")
        }
        if old.evalPoints != manifest.evalPoints { differences.append("--eval-points (\(old.evalPoints) before)") }
        guard differences.isEmpty else {
            throw UserError("\(out) holds a sweep with different settings (\(differences.joined(separator: "; "))); "
                            + "its finished runs would not be comparable: choose another --out or delete it")
        }
        return old.commit
    }

    func report() throws {
        let report = try SweepReport.load(out)
        let md = try report.write(to: out)
        print(md)
        print("wrote \(out)/report.md, report.json and charts")
    }

    func ints(_ s: String, _ flag: String) throws -> [Int] {
        let values = s.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw UserError("\(flag): expected positive integers separated by commas, got \(s)")
        }
        return values.map { $0! }
    }

    func createFile(_ path: String) throws -> URL {
        guard FileManager.default.createFile(atPath: path, contents: nil) else { throw UserError("cannot create \(path)") }
        return URL(fileURLWithPath: path)
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
