// `nanochat sweep`: which block pattern learns most for its compute? Each pattern trains at
// equal training FLOPs (the target_flops horizon) and equal depth, on the same data and
// seeds; the report compares val bpb against FLOPs and wall-clock, seed-to-seed spread
// included, and at equal parameters (an all-M model deepened to all-T's size).
//
// Layout of a sweep directory:
//   sweep.json                 what was asked (config, budgets, the list of runs), machine, commit
//   runs/d4/all-T/seed1/       one run: metrics.jsonl, train.log, loss.svg, run.json (done)
//   report.md, report.json     the tables, regenerated from the runs' files
//   d4_bpb_flops.svg, d4_bpb_seconds.svg, ...   the charts
import Blocks
import Foundation
import Tensor
import Tokenizer

/// One training run of a sweep.
public struct SweepRun: Codable, Sendable {
    /// The depth group: width 64 · depth, as nanochat sizes a model.
    public var depth: Int
    /// The pattern's name (all-T, early-T, …), or "all-M ×L" for the equal-parameter run.
    public var pattern: String
    /// One letter per layer.
    public var blocks: String
    public var seed: Int
    /// The all-M run deepened to all-T's parameter count at this depth's width.
    public var equalParameters: Bool
    /// Directory of its files, relative to the sweep directory.
    public var dir: String

    public init(depth: Int, pattern: String, blocks: String, seed: Int, equalParameters: Bool, dir: String) {
        self.depth = depth; self.pattern = pattern; self.blocks = blocks; self.seed = seed
        self.equalParameters = equalParameters; self.dir = dir
    }
}

/// What a finished run records in run.json beside its metrics.
public struct SweepRunRecord: Codable, Sendable {
    public var run: SweepRun
    public var parameters: Int, nonEmbeddingParameters: Int
    public var flopsPerToken: Double, tokensPerStep: Int, steps: Int
    /// The commit that trained it (absent in records older than this field: the manifest's).
    public var commit: String?

    public init(run: SweepRun, parameters: Int, nonEmbeddingParameters: Int, flopsPerToken: Double, tokensPerStep: Int, steps: Int,
                commit: String? = nil) {
        self.run = run; self.parameters = parameters; self.nonEmbeddingParameters = nonEmbeddingParameters
        self.flopsPerToken = flopsPerToken; self.tokensPerStep = tokensPerStep; self.steps = steps; self.commit = commit
    }
}

/// What was asked: written before the first run, checked when a sweep is continued.
public struct SweepManifest: Codable, Sendable {
    public var command: String
    public var config: String
    /// The base config's values after the command's overrides, as text.
    public var settings: [String: String]
    public var targetFLOPs: [String: Double]   // "4" → budget of depth 4
    public var evalPoints: Int
    public var runs: [SweepRun]
    public var commit: String, machine: String

    public init(command: String, config: String, settings: [String: String], targetFLOPs: [String: Double], evalPoints: Int,
                runs: [SweepRun], commit: String, machine: String) {
        self.command = command; self.config = config; self.settings = settings; self.targetFLOPs = targetFLOPs
        self.evalPoints = evalPoints; self.runs = runs; self.commit = commit; self.machine = machine
    }
}

public enum SweepPlan {
    /// The runs of a sweep: every pattern at every depth for every seed, then (if asked) the
    /// equal-parameter all-M run of each depth.
    public static func runs(depths: [Int], patterns: [String], seeds: [Int], equalParameters: Bool,
                            vocabSize: Int, sequenceLen: Int) throws -> [SweepRun] {
        var runs: [SweepRun] = []
        for d in depths {
            var groups: [(name: String, blocks: String, equal: Bool)] = []
            for p in patterns {
                let kinds = try NamedPattern.parse(p, depth: d)
                groups.append((p, kinds.map(\.rawValue).joined(), false))
            }
            if equalParameters {
                let layers = equalParameterLayers(depth: d, vocabSize: vocabSize, sequenceLen: sequenceLen)
                groups.append(("all-M ×\(layers)", String(repeating: "M", count: layers), true))
            }
            for g in groups {
                for s in seeds {
                    let slug = g.name.replacingOccurrences(of: " ×", with: "-x")
                    runs.append(SweepRun(depth: d, pattern: g.name, blocks: g.blocks, seed: s, equalParameters: g.equal,
                                         dir: "runs/d\(d)/\(slug)/seed\(s)"))
                }
            }
        }
        return runs
    }

    /// The number of Mamba layers at depth d's width whose non-embedding parameters come
    /// closest to the all-T model of depth d.
    public static func equalParameterLayers(depth d: Int, vocabSize: Int, sequenceLen: Int) -> Int {
        let target = config(depth: d, layers: d, blocks: String(repeating: "T", count: d), vocabSize: vocabSize,
                            sequenceLen: sequenceLen).nonEmbeddingParameterCount
        return (1...(4 * d)).min { a, b in
            func gap(_ l: Int) -> Int {
                abs(config(depth: d, layers: l, blocks: String(repeating: "M", count: l), vocabSize: vocabSize,
                           sequenceLen: sequenceLen).nonEmbeddingParameterCount - target)
            }
            return gap(a) < gap(b)
        }!
    }

    /// Depth d's width (64 · d, heads of 128) with `layers` layers of the given kinds.
    public static func config(depth d: Int, layers: Int, blocks: String, vocabSize: Int, sequenceLen: Int) -> ModelConfig {
        var c = ModelConfig.fromDepth(d, vocabSize: vocabSize, sequenceLen: sequenceLen,
                                      blockPattern: blocks.map { $0 == "T" ? BlockKind.transformer : .mamba })
        c.nLayer = layers
        return c
    }
}

extension ModelConfig {
    /// Parameters less the token embedding (the lm_head counts, as in nanochat's FLOPs).
    public var nonEmbeddingParameterCount: Int { parameterCount - vocabSize * nEmbd }
}

/// The report: per-run curves read back from metrics.jsonl, their means and spreads over
/// seeds, the tables, and the charts.
/// Runs a sweep into its directory: takes the directory's lock, refuses to mix into a sweep
/// of other settings, writes sweep.json, trains every run not finished before (an
/// unfinished one starts over) and leaves the report to `SweepReport`.
public struct SweepRunner {
    public let manifest: SweepManifest
    /// The base config after the command's overrides; each run sets its own keys on it.
    public let base: ConfigFile
    public let tokenizer: Tokenizer
    public let out: String
    public let threads: Int

    /// Keys the sweep sets for each run (a value in the base config is replaced; one on the
    /// command line is refused). They are left out of the manifest's settings.
    public static let perRunKeys: Set<String> = ["depth", "block_pattern", "seed", "target_flops", "num_iterations", "output_dir",
                                                 "n_embd", "model_tag", "eval_every", "sample_every", "save_every", "threads"]

    public init(manifest: SweepManifest, base: ConfigFile, tokenizer: Tokenizer, out: String, threads: Int) {
        self.manifest = manifest; self.base = base; self.tokenizer = tokenizer; self.out = out; self.threads = threads
    }

    /// Trains every run of the plan not finished before; `log` gets one line per run and its
    /// evaluations.
    public func run(log: @escaping (String) -> Void) throws {
        try AtomicFile.makeDirectories(out)
        let lock = try RunLock(dir: out, purpose: "nanochat sweep")
        defer { withExtendedLifetime(lock) {} }
        var manifest = manifest
        let commit = manifest.commit   // what trains the runs now; the manifest keeps the sweep's first
        if let started = try Self.continuation(of: manifest, in: out) { manifest.commit = started }   // the sweep's first commit
        try AtomicFile.writeJSON(manifest, to: "\(out)/sweep.json")
        let plan = manifest.runs
        for (i, run) in plan.enumerated() {
            let label = "[\(i + 1)/\(plan.count)]"
            if FileManager.default.fileExists(atPath: "\(out)/\(run.dir)/run.json") {
                log("\(label) d\(run.depth) \(run.pattern) seed \(run.seed): finished earlier, kept")
                continue
            }
            guard let budget = manifest.targetFLOPs[String(run.depth)] else {
                throw TrainingError("\(out)/sweep.json: no budget for depth \(run.depth)")
            }
            try train(run, budget: budget, commit: commit, label: label, log: log)
        }
    }

    /// One run: the base config with this run's model, seed and budget, evaluations spaced
    /// evenly, no samples, checkpoints deleted afterwards; run.json marks it finished.
    func train(_ run: SweepRun, budget: Double, commit: String, label: String, log: @escaping (String) -> Void) throws {
        let dir = "\(out)/\(run.dir)"
        if FileManager.default.fileExists(atPath: dir) { try FileManager.default.removeItem(atPath: dir) }   // unfinished: start over
        try AtomicFile.makeDirectories(dir)
        var file = base
        let blocks = "[" + run.blocks.map { "\"\($0)\"" }.joined(separator: ",") + "]"
        var sets = ["--depth=\(run.blocks.count)", "--block_pattern=\(blocks)", "--seed=\(run.seed)", "--target_flops=\(budget)",
                    "--num_iterations=0", "--output_dir=\(dir)", "--model_tag=d\(run.depth)-\(run.pattern)-seed\(run.seed)",
                    "--sample_every=0", "--save_every=0", "--threads=\(threads)"]
        if run.equalParameters { sets.append("--n_embd=\(64 * run.depth)") }
        for s in sets { try file.override(s) }
        var settings = try TrainSettings.resolve(file, path: manifest.config, vocabSize: tokenizer.vocabSize)
        if settings.numIterations < manifest.evalPoints {
            throw TrainingError("d\(run.depth) \(run.pattern): the budget buys only \(settings.numIterations) steps of "
                                + "\(settings.totalBatchSize) tokens, fewer than --eval-points \(manifest.evalPoints); raise --target-flops")
        }
        settings.evalEvery = settings.numIterations / manifest.evalPoints
        let logPath = "\(dir)/train.log"
        guard FileManager.default.createFile(atPath: logPath, contents: nil), let logHandle = FileHandle(forWritingAtPath: logPath) else {
            throw TrainingError("\(logPath): cannot create the run's log")
        }
        defer { try? logHandle.close() }
        log("\(label) d\(run.depth) \(run.pattern) (\(run.blocks)) seed \(run.seed): \(settings.model.parameterCount) parameters, "
            + "\(settings.numIterations) steps of \(settings.totalBatchSize) tokens")
        let training = try TrainingRun(settings: settings, tokenizer: tokenizer, resume: nil) { line in
            logHandle.write(Data((line + "\n").utf8))
            if line.contains("val bpb") { log("    " + line) }
        }
        let summary = try training.run()
        try Checkpoint.remove(in: dir)
        try? FileManager.default.removeItem(atPath: "\(dir)/tokenizer")
        let record = SweepRunRecord(run: run, parameters: settings.model.parameterCount,
                                    nonEmbeddingParameters: settings.model.nonEmbeddingParameterCount,
                                    flopsPerToken: settings.model.flopsPerToken, tokensPerStep: settings.totalBatchSize,
                                    steps: settings.numIterations, commit: commit)
        try AtomicFile.writeJSON(record, to: "\(dir)/run.json")
        log(String(format: "    done: val bpb %.4f, median %@ tok/s", summary.evaluations.last?.bpb ?? .nan,
                   TrainingRun.grouped(Int(summary.medianTokensPerSecond))))
    }

    /// A sweep directory holding a manifest of other settings is not mixed into: the runs must
    /// agree on everything but the list (more seeds or patterns may be added). Returns the
    /// commit the existing sweep started at, if there is one.
    public static func continuation(of manifest: SweepManifest, in out: String) throws -> String? {
        let path = "\(out)/sweep.json"
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)) else { return nil }
        guard let old = try? JSONDecoder().decode(SweepManifest.self, from: data) else {
            throw TrainingError("\(path) is not a sweep manifest; choose another --out")
        }
        var differences: [String] = []
        if old.settings != manifest.settings { differences.append("the base config or its overrides") }
        for (d, f) in manifest.targetFLOPs.sorted(by: { $0.key < $1.key }) {
            if let before = old.targetFLOPs[d], before != f { differences.append("the budget of depth \(d) (\(before) before, \(f) now)") }
        }
        if old.evalPoints != manifest.evalPoints { differences.append("--eval-points (\(old.evalPoints) before)") }
        guard differences.isEmpty else {
            throw TrainingError("\(out) holds a sweep with different settings (\(differences.joined(separator: "; "))); "
                                + "its finished runs would not be comparable: choose another --out or delete it")
        }
        return old.commit
    }
}

public struct SweepReport {
    /// One evaluation of one run: after `step` steps, `flops` training FLOPs and `seconds`
    /// of training (evaluation excluded).
    public struct Point: Codable, Sendable { public var step: Int, flops: Double, seconds: Double, bpb: Double }

    public struct RunCurve: Codable, Sendable {
        public var record: SweepRunRecord
        public var points: [Point]
        public var medianTokensPerSecond: Double
        public var finalBPB: Double { points.last?.bpb ?? .nan }
        public var trainSeconds: Double { points.last?.seconds ?? 0 }
    }

    /// A pattern at a depth, over its seeds.
    public struct Group: Codable, Sendable {
        public var depth: Int, pattern: String, blocks: String, equalParameters: Bool
        public var parameters: Int, nonEmbeddingParameters: Int, flopsPerToken: Double, steps: Int, tokens: Int
        public var seeds: [Int], finalBPB: [Double]
        public var meanBPB: Double, rangeBPB: Double, stdBPB: Double
        public var meanTrainSeconds: Double, medianTokensPerSecond: Double
        /// Compared with the depth's best mean: "best", "tie" or "worse".
        public var verdict: String
        public var curve: [Point]   // mean over seeds at each evaluation
    }

    public var manifest: SweepManifest
    public var groups: [Group]
    /// The commits that trained the runs, in order of first appearance.
    public var commits: [String] = []

    /// Reads every run of the manifest from `dir`; a run without run.json is an error naming it.
    public static func load(_ dir: String) throws -> SweepReport {
        let manifest = try JSONDecoder().decode(SweepManifest.self, from: Data(contentsOf: URL(fileURLWithPath: "\(dir)/sweep.json")))
        var curves: [RunCurve] = []
        var missing: [String] = []
        for run in manifest.runs {
            let path = "\(dir)/\(run.dir)"
            guard let data = try? Data(contentsOf: URL(fileURLWithPath: "\(path)/run.json")) else { missing.append(run.dir); continue }
            let record = try JSONDecoder().decode(SweepRunRecord.self, from: data)
            curves.append(try curve(record, metrics: "\(path)/metrics.jsonl"))
        }
        guard missing.isEmpty else {
            throw TrainingError("\(dir): \(missing.count) of \(manifest.runs.count) runs have not finished (no run.json): "
                                + missing.prefix(5).joined(separator: ", ") + (missing.count > 5 ? ", …" : "")
                                + "; run the sweep again to continue it")
        }
        var commits: [String] = []
        for c in curves.map({ $0.record.commit ?? manifest.commit }) where !commits.contains(c) { commits.append(c) }
        return SweepReport(manifest: manifest, groups: group(curves), commits: commits)
    }

    static func curve(_ record: SweepRunRecord, metrics path: String) throws -> RunCurve {
        var elapsed: [Int: Double] = [0: 0], bpb: [(Int, Double)] = [], rates: [Double] = []
        for row in try MetricsFile.read(path) {
            if let e = row.elapsedS { elapsed[row.step] = e }
            if let r = row.tokPerSec { rates.append(r) }
            if let b = row.valBPB { bpb.append((row.step, b)) }
        }
        let perStep = record.flopsPerToken * Double(record.tokensPerStep)
        let points = try bpb.map { step, b -> Point in
            guard let s = elapsed[step] else { throw TrainingError("\(path): no step row for the evaluation at step \(step)") }
            return Point(step: step, flops: Double(step) * perStep, seconds: s, bpb: b)
        }
        guard points.last?.step == record.steps else {
            throw TrainingError("\(path): the last evaluation is not at the final step \(record.steps)")
        }
        return RunCurve(record: record, points: points, medianTokensPerSecond: median(rates))
    }

    static func group(_ curves: [RunCurve]) -> [Group] {
        var order: [String] = [], byKey: [String: [RunCurve]] = [:]
        for c in curves {
            let key = "\(c.record.run.depth)|\(c.record.run.pattern)"
            if byKey[key] == nil { order.append(key) }
            byKey[key, default: []].append(c)
        }
        var groups: [Group] = order.map { key in
            let cs = byKey[key]!, r = cs[0].record
            let finals = cs.map(\.finalBPB), mean = finals.reduce(0, +) / Double(finals.count)
            let std = (finals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(max(1, finals.count - 1))).squareRoot()
            // Mean curve over seeds: the runs share their steps (same budget and batch).
            let k = cs.map(\.points.count).min() ?? 0
            let curve = (0..<k).map { i in
                Point(step: cs[0].points[i].step, flops: cs[0].points[i].flops,
                      seconds: cs.map { $0.points[i].seconds }.reduce(0, +) / Double(cs.count),
                      bpb: cs.map { $0.points[i].bpb }.reduce(0, +) / Double(cs.count))
            }
            return Group(depth: r.run.depth, pattern: r.run.pattern, blocks: r.run.blocks, equalParameters: r.run.equalParameters,
                         parameters: r.parameters, nonEmbeddingParameters: r.nonEmbeddingParameters,
                         flopsPerToken: r.flopsPerToken, steps: r.steps, tokens: r.steps * r.tokensPerStep,
                         seeds: cs.map(\.record.run.seed), finalBPB: finals, meanBPB: mean,
                         rangeBPB: (finals.max() ?? 0) - (finals.min() ?? 0), stdBPB: std,
                         meanTrainSeconds: cs.map(\.trainSeconds).reduce(0, +) / Double(cs.count),
                         medianTokensPerSecond: median(cs.map(\.medianTokensPerSecond)), verdict: "", curve: curve)
        }
        // Verdicts within each depth: the lowest mean is best; another pattern ties with it
        // when the gap is within the larger of the two seed ranges, else it is worse.
        for d in Set(groups.map(\.depth)) {
            let idx = groups.indices.filter { groups[$0].depth == d }
            guard let best = idx.min(by: { groups[$0].meanBPB < groups[$1].meanBPB }) else { continue }
            for i in idx {
                let gap = groups[i].meanBPB - groups[best].meanBPB
                groups[i].verdict = i == best ? "best" : gap <= max(groups[i].rangeBPB, groups[best].rangeBPB) ? "tie" : "worse"
            }
        }
        return groups
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        guard !s.isEmpty else { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Writes report.md, report.json and two charts per depth into `dir`; returns the Markdown.
    @discardableResult
    public func write(to dir: String) throws -> String {
        var md = "# Which pattern? Equal-compute sweep\n\n"
        md += "Made by `\(manifest.command)`, runs trained at commit \(commits.joined(separator: ", ")), on \(manifest.machine).\n"
        md += "Every number below is read from the runs' `metrics.jsonl` under `runs/`; report.json keeps each pattern's "
        md += "per-seed results and mean curve, and `nanochat sweep --report-only --out DIR` rewrites this file from the runs.\n\n"
        md += "Base config `\(manifest.config)`: "
        md += manifest.settings.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }.joined(separator: ", ") + ".\n\n"
        md += "Each pattern trains for the same training FLOPs at a depth (nanochat's `estimate_flops` per token × tokens: "
        md += "a pattern with fewer FLOPs per token sees more tokens), from the same data, with the same seeds. "
        md += "val bpb is measured on the same held-out tokens for every run. "
        md += "±: the range (max − min) over seeds; σ: their standard deviation. "
        md += "**Verdict**: the lowest mean is *best*; a pattern whose mean is within the larger of its own and the best's "
        md += "seed range is a *tie*; otherwise *worse*. Seconds are training time (evaluation excluded) on a shared, "
        md += "noisy 2-core machine: read them to ±20%.\n\n"
        for d in Array(Set(groups.map(\.depth))).sorted() {
            let gs = groups.filter { $0.depth == d }
            let budget = manifest.targetFLOPs[String(d)] ?? 0
            md += "## Depth \(d) (width \(64 * d)), \(String(format: "%.3g", budget)) training FLOPs each\n\n"
            md += "| pattern | layers | params (non-embedding) | FLOPs/token | steps | tokens | val bpb mean ± range (σ) | seeds | Δ vs best | verdict | tok/s | train s |\n"
            md += "|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|---:|\n"
            let best = gs.map(\.meanBPB).min() ?? 0
            for g in gs {
                md += "| \(g.pattern) | \(g.blocks) | \(millions(g.parameters)) (\(millions(g.nonEmbeddingParameters))) "
                md += "| \(String(format: "%.3g", g.flopsPerToken)) | \(g.steps) | \(grouped(g.tokens)) "
                md += "| \(String(format: "%.4f ± %.4f (%.4f)", g.meanBPB, g.rangeBPB, g.stdBPB)) "
                md += "| \(g.finalBPB.map { String(format: "%.4f", $0) }.joined(separator: ", ")) "
                md += "| \(String(format: "%+.4f", g.meanBPB - best)) | \(g.verdict) "
                md += "| \(grouped(Int(g.medianTokensPerSecond))) | \(String(format: "%.0f", g.meanTrainSeconds)) |\n"
            }
            if let t = gs.first(where: { $0.pattern == "all-T" }), let m = gs.first(where: { $0.equalParameters }) {
                md += "\nEqual parameters: all-T (\(millions(t.nonEmbeddingParameters)) non-embedding) against \(m.pattern) "
                md += "(\(millions(m.nonEmbeddingParameters))) at the same width and FLOPs: val bpb "
                md += String(format: "%.4f ± %.4f vs %.4f ± %.4f", t.meanBPB, t.rangeBPB, m.meanBPB, m.rangeBPB)
                let gap = abs(t.meanBPB - m.meanBPB), noise = max(t.rangeBPB, m.rangeBPB)
                md += gap <= noise ? " — a tie (within the seed range).\n"
                                   : " — \(t.meanBPB < m.meanBPB ? "all-T" : m.pattern) is better by \(String(format: "%.4f", gap)) bpb.\n"
            }
            // The fresh model (step 0) is alike for every pattern and would stretch the y axis
            // over the whole first drop; the charts start at the first evaluation after it.
            // A marker at each evaluation: the lines between them are no data. The seeds'
            // spread is the table's ± (at 6 patterns, bands would hide each other).
            let trained = gs.map { g in (g.pattern, g.curve.filter { $0.step > 0 }) }
            let flopsChart = LineChart(title: "d\(d): val bpb vs training FLOPs (mean of \(gs.first?.seeds.count ?? 0) seeds)",
                                       xLabel: "training FLOPs", yLabel: "val bpb",
                                       series: trained.map { .init(name: $0.0, points: $0.1.map { ($0.flops, $0.bpb) }, markers: true) })
            let timeChart = LineChart(title: "d\(d): val bpb vs training seconds (mean of \(gs.first?.seeds.count ?? 0) seeds)",
                                      xLabel: "training seconds (2 cores)", yLabel: "val bpb",
                                      series: trained.map { .init(name: $0.0, points: $0.1.map { ($0.seconds, $0.bpb) }, markers: true) })
            try flopsChart.svg().write(toFile: "\(dir)/d\(d)_bpb_flops.svg", atomically: true, encoding: .utf8)
            try timeChart.svg().write(toFile: "\(dir)/d\(d)_bpb_seconds.svg", atomically: true, encoding: .utf8)
            md += "\n![val bpb vs FLOPs, d\(d)](d\(d)_bpb_flops.svg)\n![val bpb vs seconds, d\(d)](d\(d)_bpb_seconds.svg)\n\n"
        }
        try md.write(toFile: "\(dir)/report.md", atomically: true, encoding: .utf8)
        try AtomicFile.writeJSON(groups, to: "\(dir)/report.json")
        return md
    }

    func millions(_ n: Int) -> String { String(format: "%.2fM", Double(n) / 1e6) }
    func grouped(_ n: Int) -> String { TrainingRun.grouped(n) }
}
