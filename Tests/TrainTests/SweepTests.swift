// The sweep's plan (which runs, the equal-parameter depth) and its report, read back from a
// sweep directory written here by hand: means, ranges, verdicts, curves, and the errors for
// unfinished or malformed runs; when a sweep directory may be continued; and the training
// loop on a tiny budget (scripts/smoke.sh runs it from the command line).
import Foundation
import Testing
import Blocks
import Tensor
import Train

@Suite struct SweepTests {
    /// A sweep directory is continued only with the same settings: the first sweep's commit
    /// comes back; another budget, base config or --eval-points is refused naming what
    /// differs; a file that is not a manifest is refused; an empty directory starts fresh.
    @Test func aSweepContinuesOnlyWithTheSameSettings() throws {
        let dir = scratchPath("continuation")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let runs = try SweepPlan.runs(depths: [2], patterns: ["all-T"], seeds: [1], equalParameters: false, vocabSize: 300, sequenceLen: 32)
        let first = SweepManifest(command: "nanochat sweep", config: "base.py", settings: ["max_seq_len": "32"],
                                  targetFLOPs: ["2": 1e9], evalPoints: 2, runs: runs, commit: "abc1234", machine: "test")
        #expect(try SweepRunner.continuation(of: first, in: dir) == nil)
        try AtomicFile.writeJSON(first, to: "\(dir)/sweep.json")
        var later = first
        later.commit = "def5678"
        later.runs += try SweepPlan.runs(depths: [2], patterns: ["all-M"], seeds: [1], equalParameters: false, vocabSize: 300, sequenceLen: 32)
        #expect(try SweepRunner.continuation(of: later, in: dir) == "abc1234", "more runs, same settings: continued")
        var budget = first
        budget.targetFLOPs = ["2": 2e9]
        #expect(throws: TrainingError.self) { try SweepRunner.continuation(of: budget, in: dir) }
        do { _ = try SweepRunner.continuation(of: budget, in: dir) } catch {
            #expect("\(error)".contains("the budget of depth 2 (1000000000.0 before, 2000000000.0 now)"), "\(error)")
        }
        var settings = first
        settings.settings["max_seq_len"] = "64"
        #expect(throws: TrainingError("\(dir) holds a sweep with different settings (the base config or its overrides); "
                                      + "its finished runs would not be comparable: choose another --out or delete it")) {
            try SweepRunner.continuation(of: settings, in: dir)
        }
        var points = first
        points.evalPoints = 3
        #expect(throws: TrainingError.self) { try SweepRunner.continuation(of: points, in: dir) }
        try Data("{}".utf8).write(to: URL(fileURLWithPath: "\(dir)/sweep.json"))
        #expect(throws: TrainingError("\(dir)/sweep.json is not a sweep manifest; choose another --out")) {
            try SweepRunner.continuation(of: first, in: dir)
        }
    }

    @Test func planCoversEveryPatternDepthAndSeed() throws {
        let runs = try SweepPlan.runs(depths: [4, 6], patterns: ["all-T", "all-M", "early-T", "alternating", "mostly-M"],
                                      seeds: [1, 2, 3], equalParameters: true, vocabSize: 4096, sequenceLen: 512)
        #expect(runs.count == 2 * 6 * 3)
        #expect(Set(runs.map(\.dir)).count == runs.count, "every run has its own directory")
        let d4 = runs.filter { $0.depth == 4 && $0.seed == 1 }
        #expect(d4.map(\.blocks) == ["TTTT", "MMMM", try NamedPattern.parse("early-T", depth: 4).map(\.rawValue).joined(),
                                     "TMTM", try NamedPattern.parse("mostly-M", depth: 4).map(\.rawValue).joined(),
                                     String(repeating: "M", count: d4.last!.blocks.count)])
        #expect(d4.last!.equalParameters && d4.last!.pattern.hasPrefix("all-M ×"))
        #expect(throws: ModelConfigError.self) {
            try SweepPlan.runs(depths: [4], patterns: ["TTM"], seeds: [1], equalParameters: false, vocabSize: 4096, sequenceLen: 512)
        }
    }

    /// The deepened all-M model is the one closest to all-T's non-embedding size: its
    /// neighbours one layer shallower and deeper are no closer.
    @Test(arguments: [2, 4, 6, 12]) func equalParameterDepthIsTheClosest(_ d: Int) {
        let l = SweepPlan.equalParameterLayers(depth: d, vocabSize: 4096, sequenceLen: 512)
        func size(_ layers: Int, _ kind: Character) -> Int {
            SweepPlan.config(depth: d, layers: layers, blocks: String(repeating: kind, count: layers), vocabSize: 4096,
                             sequenceLen: 512).nonEmbeddingParameterCount
        }
        let target = size(d, "T")
        #expect(l > d, "a Mamba block is smaller than a Transformer block of the same width")
        #expect(abs(size(l, "M") - target) <= abs(size(l - 1, "M") - target))
        #expect(abs(size(l, "M") - target) <= abs(size(l + 1, "M") - target))
        #expect(SweepPlan.config(depth: d, layers: l, blocks: String(repeating: "M", count: l), vocabSize: 4096, sequenceLen: 512).nEmbd == 64 * d)
    }

    /// Writes a sweep directory by hand: three patterns at depth 4, final bpb per seed given.
    func writeSweep(_ finals: [String: [Double]], steps: Int = 4, omit: String? = nil, badLast: Bool = false,
                    equalParameters: String? = nil) throws -> String {
        let dir = scratchPath("sweep")
        var runs: [SweepRun] = []
        for (pattern, values) in finals.sorted(by: { $0.key < $1.key }) {
            for (i, final) in values.enumerated() {
                let run = SweepRun(depth: 4, pattern: pattern, blocks: "TTTT", seed: i + 1, equalParameters: pattern == equalParameters,
                                   dir: "runs/d4/\(pattern)/seed\(i + 1)")
                runs.append(run)
                let path = "\(dir)/\(run.dir)"
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                var rows: [String] = []
                for s in 0...steps {
                    if s > 0 { rows.append("{\"step\":\(s),\"loss\":5,\"tok_per_sec\":\(1000 * (i + 1)),\"elapsed_s\":\(Double(s) * 2)}") }
                    if s % 2 == 0 && !(badLast && s == steps) {
                        let bpb = s == steps ? final : 3.0 - Double(s) * 0.1
                        rows.append("{\"step\":\(s),\"val_bpb\":\(bpb),\"val_loss\":6}")
                    }
                }
                try rows.joined(separator: "\n").write(toFile: "\(path)/metrics.jsonl", atomically: true, encoding: .utf8)
                if run.dir != omit {
                    let record = SweepRunRecord(run: run, parameters: 12_345_678, nonEmbeddingParameters: 9_994_999, flopsPerToken: 1e6,
                                                tokensPerStep: 2048, steps: steps)
                    try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: "\(path)/run.json"))
                }
            }
        }
        let manifest = SweepManifest(command: "nanochat sweep test", config: "test.py", settings: ["max_seq_len": "512"],
                                     targetFLOPs: ["4": 8.192e9], evalPoints: 2, runs: runs, commit: "abc", machine: "test")
        try JSONEncoder().encode(manifest).write(to: URL(fileURLWithPath: "\(dir)/sweep.json"))
        return dir
    }

    @Test func reportAveragesSeedsAndCallsTiesWithinTheSpread() throws {
        // A best at 2.00 (range 0.02); B 0.015 behind: within A's range, a tie; C 0.10 behind: worse.
        let dir = try writeSweep(["A": [1.99, 2.00, 2.01], "B": [2.010, 2.015, 2.020], "C": [2.09, 2.10, 2.11]])
        let report = try SweepReport.load(dir)
        let byName = Dictionary(uniqueKeysWithValues: report.groups.map { ($0.pattern, $0) })
        #expect(abs(byName["A"]!.meanBPB - 2.0) < 1e-12)
        #expect(abs(byName["A"]!.rangeBPB - 0.02) < 1e-12)
        #expect(abs(byName["A"]!.stdBPB - 0.01) < 1e-12)
        #expect(byName["A"]!.verdict == "best")
        #expect(byName["B"]!.verdict == "tie")
        #expect(byName["C"]!.verdict == "worse")
        // The mean curve: evaluations at steps 0, 2, 4; FLOPs = step × 2048 × 1e6; seconds from the step rows.
        let curve = byName["C"]!.curve
        #expect(curve.map(\.step) == [0, 2, 4])
        let flops: [Double] = [0, 2 * 2048 * 1e6, 4 * 2048 * 1e6]
        #expect(curve.map(\.flops) == flops)
        #expect(curve.map(\.seconds) == [0, 4, 8])
        #expect(abs(curve.last!.bpb - 2.10) < 1e-12)
        #expect(byName["A"]!.medianTokensPerSecond == 2000)
        #expect(byName["A"]!.tokens == 4 * 2048)

        let md = try report.write(to: dir)
        // Each pattern's row, every column by value: 12,345,678 and 9,994,999 parameters (in
        // millions, rounded), 1e6 FLOPs a token, 4 steps of 2048 tokens, the finals, the gap to
        // A's mean, tok/s the median over seeds of 1000, 2000, 3000 and training seconds the
        // mean of the runs' 8.
        #expect(md.contains("| A | TTTT | 12.35M (9.99M) | 1e+06 | 4 | 8,192 | 2.0000 ± 0.0200 (0.0100) | 1.9900, 2.0000, 2.0100 | +0.0000 | best | 2,000 | 8 |\n"))
        #expect(md.contains("| B | TTTT | 12.35M (9.99M) | 1e+06 | 4 | 8,192 | 2.0150 ± 0.0100 (0.0050) | 2.0100, 2.0150, 2.0200 | +0.0150 | tie | 2,000 | 8 |\n"))
        #expect(md.contains("| C | TTTT | 12.35M (9.99M) | 1e+06 | 4 | 8,192 | 2.1000 ± 0.0200 (0.0100) | 2.0900, 2.1000, 2.1100 | +0.1000 | worse | 2,000 | 8 |\n"))
        #expect(byName["C"]!.meanTrainSeconds == 8 && byName["B"]!.seeds == [1, 2, 3] && byName["B"]!.nonEmbeddingParameters == 9_994_999)
        for file in ["report.md", "report.json", "d4_bpb_flops.svg", "d4_bpb_seconds.svg"] {
            #expect(FileManager.default.fileExists(atPath: "\(dir)/\(file)"), "\(file) written")
        }
        // Each chart: the mean curve of each pattern from the first evaluation after step 0
        // (steps 2 and 4), a dot at each evaluation and in each legend row.
        for (file, x) in [("d4_bpb_flops.svg", "FLOPs"), ("d4_bpb_seconds.svg", "seconds")] {
            let svg = try String(contentsOfFile: "\(dir)/\(file)", encoding: .utf8)
            #expect(svg.contains(">d4: val bpb vs training \(x) (mean of 3 seeds)</text>"), "\(file)")
            let lines = svg.split(separator: "\n")
            let polylines = lines.filter { $0.hasPrefix("<polyline") }
            #expect(polylines.count == 3 && polylines.allSatisfy { LineChartTests.attributeText("points", String($0))?.split(separator: " ").count == 2 },
                    "\(file): three patterns of two evaluations each")
            #expect(lines.filter { $0.hasPrefix("<circle") }.count == 3 * 2 + 3, "\(file): a dot per evaluation and per legend row")
            #expect(["A", "B", "C"].allSatisfy { name in lines.contains { $0.hasSuffix(">\(name)</text>") } }, "\(file)")
        }
    }

    /// The bound is inclusive: a gap exactly the larger seed range is a tie, anything past it
    /// worse (values exact in binary). With two seeds the median rate is the middle two's mean.
    @Test func aGapOfExactlyTheSpreadIsATie() throws {
        let dir = try writeSweep(["A": [2.0, 2.25], "B": [2.375, 2.375], "C": [2.5, 2.5]])
        let byName = Dictionary(uniqueKeysWithValues: try SweepReport.load(dir).groups.map { ($0.pattern, $0) })
        #expect(byName["A"]?.meanBPB == 2.125 && byName["A"]?.rangeBPB == 0.25)
        #expect(byName["A"]?.verdict == "best")
        #expect(byName["B"]?.verdict == "tie", "gap 0.25, range 0.25")
        #expect(byName["C"]?.verdict == "worse", "gap 0.375, range 0.25")
        #expect(byName["A"]?.medianTokensPerSecond == 1500, "seeds at 1000 and 2000 tok/s")
    }

    /// One seed a pattern (a quick sweep): no spread, so the standard deviation is 0, not 0/0,
    /// and any gap at all is worse; report.json (which cannot hold a NaN) is written.
    @Test func oneSeedHasNoSpread() throws {
        let dir = try writeSweep(["A": [2.0], "B": [2.0625]])
        let report = try SweepReport.load(dir)
        let byName = Dictionary(uniqueKeysWithValues: report.groups.map { ($0.pattern, $0) })
        #expect(byName["A"]?.stdBPB == 0 && byName["A"]?.rangeBPB == 0 && byName["A"]?.meanBPB == 2)
        #expect(byName["A"]?.verdict == "best" && byName["B"]?.verdict == "worse")
        let md = try report.write(to: dir)
        #expect(md.contains("2.0000 ± 0.0000 (0.0000)") && md.contains("2.0625 ± 0.0000 (0.0000)"))
    }

    /// The report compares all-T with the pattern of as many parameters: better by the gap
    /// of the means when it is past the larger seed range, else a tie.
    @Test func equalParametersAreComparedWithAllT() throws {
        func report(_ finals: [String: [Double]], equal: String? = "all-M ×6") throws -> String {
            let dir = try writeSweep(finals, equalParameters: equal)
            return try SweepReport.load(dir).write(to: dir)
        }
        let better = try report(["all-T": [2.0, 2.125], "all-M ×6": [2.25, 2.25], "alternating": [2.5, 2.5]])
        #expect(better.contains("Equal parameters: all-T (9.99M non-embedding) against all-M ×6 (9.99M) at the same width and FLOPs: "
                                + "val bpb 2.0625 ± 0.1250 vs 2.2500 ± 0.0000 — all-T is better by 0.1875 bpb."), "\(better)")
        let tie = try report(["all-T": [2.25, 2.25], "all-M ×6": [2.0, 2.25]])
        #expect(tie.contains("val bpb 2.2500 ± 0.0000 vs 2.1250 ± 0.2500 — a tie (within the seed range)."), "\(tie)")
        let worse = try report(["all-T": [2.5, 2.5], "all-M ×6": [2.0, 2.25]])
        #expect(worse.contains("— all-M ×6 is better by 0.3750 bpb."), "\(worse)")
        #expect(!(try report(["all-T": [2.5, 2.5], "all-M": [2.0, 2.0]], equal: nil)).contains("Equal parameters"))
    }

    @Test func unfinishedAndMalformedRunsAreNamed() throws {
        let unfinished = try writeSweep(["A": [2.0, 2.1]], omit: "runs/d4/A/seed2")
        let missing = #expect(throws: TrainingError.self) { try SweepReport.load(unfinished) }
        #expect((missing?.description ?? "").contains("1 of 2 runs have not finished"))
        #expect((missing?.description ?? "").contains("runs/d4/A/seed2"))
        let truncated = try writeSweep(["A": [2.0]], badLast: true)
        let bad = #expect(throws: TrainingError.self) { try SweepReport.load(truncated) }
        #expect((bad?.description ?? "").contains("not at the final step 4"))
    }
}

/// The sweep's training loop on a tiny budget: each run's horizon from its budget, its
/// evaluations spaced by --eval-points, its model as planned (the equal-parameter all-M at
/// depth 1's width), what it records and what it leaves; run again it keeps the finished runs
/// and trains an unfinished one again from the start, to the same numbers.
@Suite(.serialized) struct SweepRunnerTests {
    @Test func runsTrainToTheirBudgetAndAreKeptOnceFinished() throws {
        let (data, tok) = try preparedData()
        let base = try runConfig(data: data, output: scratchPath("unused"))
        let out = scratchPath("sweep")
        let plan = try SweepPlan.runs(depths: [1], patterns: ["all-T", "all-M"], seeds: [1], equalParameters: true,
                                      vocabSize: tok.vocabSize, sequenceLen: 32)
        #expect(plan.count == 3)
        func model(_ run: SweepRun) -> ModelConfig {
            SweepPlan.config(depth: 1, layers: run.blocks.count, blocks: run.blocks, vocabSize: tok.vocabSize, sequenceLen: 32)
        }
        // 6.4 steps of all-T's 128 tokens; every run gets the steps the budget buys it, rounded.
        let budget = model(plan[0]).flopsPerToken * 128 * 6.4
        let manifest = SweepManifest(command: "test", config: "test.py", settings: [:], targetFLOPs: ["1": budget], evalPoints: 3,
                                     runs: plan, commit: "abc1234", machine: "test")
        var lines: [String] = []
        try SweepRunner(manifest: manifest, base: base, tokenizer: tok, out: out, threads: 2).run { lines.append($0) }

        let report = try SweepReport.load(out)
        #expect(report.groups.map(\.pattern) == plan.map(\.pattern))
        for run in plan {
            let dir = "\(out)/\(run.dir)"
            let record = try JSONDecoder().decode(SweepRunRecord.self, from: Data(contentsOf: URL(fileURLWithPath: "\(dir)/run.json")))
            let config = model(run)
            let steps = Int((budget / (config.flopsPerToken * 128)).rounded())
            #expect(record.steps == steps && record.tokensPerStep == 128 && record.commit == "abc1234", "\(run.pattern)")
            #expect(record.parameters == config.parameterCount && record.flopsPerToken == config.flopsPerToken, "\(run.pattern)")
            #expect(config.nEmbd == 64 && config.nLayer == run.blocks.count)
            let curve = try #require(report.groups.first { $0.pattern == run.pattern }).curve
            let every = steps / 3
            #expect(curve.map(\.step) == Array(stride(from: 0, through: steps, by: every)) + (steps % every == 0 ? [] : [steps]),
                    "\(run.pattern): evaluations at \(curve.map(\.step)), \(steps) steps")
            #expect(curve.allSatisfy { $0.bpb.isFinite && $0.flops == Double($0.step) * config.flopsPerToken * 128 })
            #expect(Checkpoint.steps(in: dir).isEmpty && !FileManager.default.fileExists(atPath: "\(dir)/tokenizer"),
                    "\(run.pattern): a finished run keeps its metrics, not its checkpoints")
        }
        let equal = try #require(plan.last)
        #expect(equal.equalParameters && equal.blocks.count == SweepPlan.equalParameterLayers(depth: 1, vocabSize: tok.vocabSize, sequenceLen: 32))
        #expect(try String(contentsOfFile: "\(out)/sweep.json", encoding: .utf8).contains("abc1234"))

        // Again, with one run unfinished: the others are kept as they are, that one trains again.
        let metrics = try plan.map { try bytes("\(out)/\($0.dir)/metrics.jsonl") }
        try FileManager.default.removeItem(atPath: "\(out)/\(plan[1].dir)/run.json")
        lines = []
        var later = manifest
        later.commit = "def5678"
        try SweepRunner(manifest: later, base: base, tokenizer: tok, out: out, threads: 2).run { lines.append($0) }
        #expect(lines.filter { $0.hasSuffix("finished earlier, kept") }.count == 2, "\(lines)")
        #expect(try bytes("\(out)/\(plan[0].dir)/metrics.jsonl") == metrics[0] && bytes("\(out)/\(plan[2].dir)/metrics.jsonl") == metrics[2])
        let again = try SweepReport.load(out)
        #expect(again.groups[1].finalBPB == report.groups[1].finalBPB, "trained again from its start, to the same val bpb")
        #expect(again.commits == ["abc1234", "def5678"] && again.manifest.commit == "abc1234")
    }
}
