// `bench model`: Transformer, Mamba and hybrid models on this CPU. For every (pattern,
// depth, sequence length): train step tokens/s (forward, backward, optimiser) with MFU
// against the sgemm peak measured in the same run, forward tokens/s, and the peak resident
// memory of a train step with the activation memory it implies; for every (pattern, depth,
// context length): prefill and decode tokens/s and cache bytes per sequence. Each case runs
// in a child process (its peak memory is its own). Output: Markdown tables, a JSON file and
// SVG charts; `--torch` adds PyTorch's train step for the same shapes, timed round by round
// in turn with ours.
import ArgumentParser
import Blocks
import Foundation
import Tensor
import Train

/// The results of one `bench model` run (its JSON file).
struct ModelReport: Codable {
    struct TrainRow: Codable {
        var pattern: String, layers: String, depth: Int, batch: Int, seq: Int, parameters: Int
        var trainTokS: Double, trainSpread: Double, mfu: Double, forwardTokS: Double, forwardSpread: Double
        var peakRSS: Int, activationBytes: Int
        /// Model GFLOPS (estimate_flops × tok/s) and raw sgemm GFLOPS at the model's linear
        /// products (same run): how close the whole step comes to sgemm speed.
        var modelGFLOPS: Double, rawLinearGFLOPS: Double, oursLinearGFLOPS: Double
        /// The medians of the per-round ratios model ÷ raw and ours ÷ raw (see TrainResult);
        /// nil in reports from before they were measured.
        var modelOverRaw: Double?, oursOverRaw: Double?
        /// PyTorch's train step, timed in turn with ours (one of each per round), and the
        /// median over rounds of each round's ours ÷ PyTorch.
        var torchTrainTokS: Double?, oursOverTorch: Double?
        /// bf16 rows with float32 also asked for: the median over rounds of each round's
        /// fp32 step ÷ bf16 step (both timed in the bf16 case's process, in turn).
        var overFP32: Double?
        /// `--profile`: where the profiled steps' time went.
        var profile: StepProfile?
        /// `--busy`: the step's speed with a busy process on one core, against quiet.
        var busy: BusyRow?
        /// The precision of the products (nil in reports from before there was a choice: fp32).
        var dtype: String?
        /// The slowest and fastest timed step as tok/s (nil in older reports): the charts' band.
        var trainRange: [Double]?
    }
    struct DecodeRow: Codable {
        var pattern: String, depth: Int, context: Int, prefillTokS: Double, decodeTokS: Double, decodeSpread: Double, cacheBytes: Int
        var dtype: String?
        /// The slowest and fastest timed token as tok/s (nil in older reports).
        var decodeRange: [Double]?
    }
    var machine: String, threads: Int, optimizer: String, sgemmPeakGFLOPS: Double, vocab: Int, runs: Int
    var train: [TrainRow] = [], decode: [DecodeRow] = []
    var torch: String?
}

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Train, forward, prefill and decode tokens/s and memory of T, M and hybrid models.",
        discussion: """
        Patterns: \(NamedPattern.allCases.map(\.rawValue).joined(separator: ", ")), or literal ones (TTMM).
        --quick: d4, T=256 and 512, contexts 128 and 1024, 3 runs: about two minutes on 2 cores.
        """
    )

    @Option(help: "Comma-separated patterns.") var patterns = NamedPattern.allCases.map(\.rawValue).joined(separator: ",")
    @Option(help: "Comma-separated depths.") var depths = "4,6"
    @Option(help: "Comma-separated sequence lengths for train and forward.") var seqs = "256,512,1024,2048"
    @Option(help: "Comma-separated context lengths for prefill and decode (0: none).") var contexts = "128,512,2048,8192"
    @Option(help: "Tokens per train step: the batch is max(1, tokens / seq).") var tokens = 2048
    @Option(help: "Sequences per train step (overrides --tokens).") var batch: Int?
    @Option(help: "Tokens decoded after each context.") var newTokens = 16
    @Option(help: "Vocabulary size.") var vocab = 8192
    @Option(help: "Matrix optimiser of the train step: muon (nanochat) or adamw (as the PyTorch side).") var optimizer = "muon"
    @Option(help: "Comma-separated precisions of the products, each case run in each: float32, bfloat16 (PyTorch's side then runs under bf16 autocast). Default: the fastest here.")
    var dtypes = Precision.fastest.rawValue
    @Option(help: "Timed runs per measurement (after one warm-up); the median is reported.") var runs = 3
    @Option(help: "Worker threads.") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Write the results as JSON here.") var json: String?
    @Option(help: "Directory for the SVG charts.") var charts = "runs/bench"
    @Flag(help: "Also time PyTorch's train step (tools/torch_bench.py) for each case, if torch is installed.") var torch = false
    @Flag(help: "A two-minute preset: d4, T=256,512, contexts 128,1024.") var quick = false
    @Flag(help: "Also run --runs train steps per case with each op timed, and print where the step's time goes.") var profile = false
    @Flag(help: "Also time each train step (ours, and PyTorch's with --torch) with a busy process spinning on one core.") var busy = false

    static func precisions(_ s: String) throws -> [MatmulPrecision] {
        try s.split(separator: ",").map {
            guard let p = MatmulPrecision(rawValue: String($0)) else { throw ValidationError("--dtypes: \"\($0)\" is not float32 or bfloat16") }
            return p
        }
    }

    static func list(_ s: String, _ flag: String) throws -> [Int] {
        try s.split(separator: ",").map {
            guard let v = Int($0.trimmingCharacters(in: .whitespaces)), v >= 0 else { throw ValidationError("\(flag): \"\($0)\" is not a count") }
            return v
        }
    }

    func validate() throws {
        guard ["muon", "adamw"].contains(optimizer) else { throw ValidationError("--optimizer must be muon or adamw, got \(optimizer)") }
        _ = try Self.precisions(dtypes)
        guard runs >= 1, threads >= 1, tokens >= 1 else { throw ValidationError("--runs, --threads and --tokens must be at least 1") }
        for d in try Self.list(depths, "--depths") {
            for p in patterns.split(separator: ",") { _ = try NamedPattern.parse(String(p), depth: d) }
        }
    }

    func run() throws {
        var depthList = try Self.list(depths, "--depths"), seqList = try Self.list(seqs, "--seqs")
        var contextList = try Self.list(contexts, "--contexts").filter { $0 > 0 }
        if quick { (depthList, seqList, contextList) = ([4], [256, 512], [128, 1024]) }
        let patternList = patterns.split(separator: ",").map(String.init)
        let dtypeList = try Self.precisions(dtypes)
        let bothPrecisions = dtypeList.contains(.float32) && dtypeList.contains(.bfloat16)
        Parallel.setThreadCount(threads)
        let peak = measureGemmPeak()
        let torchStatus = torch ? TorchSide.status() : nil
        var report = ModelReport(machine: machineSummary(threads: threads), threads: threads, optimizer: optimizer,
                                 sgemmPeakGFLOPS: peak, vocab: vocab, runs: runs, torch: torchStatus?.version)
        print("# bench model\n\n\(report.machine)\n")
        if let warning = HostCPU.peakWarning(measured: peak, threads: threads) { print("warning: \(warning)\n") }
        print("V=\(vocab); train step = forward + backward + clip + \(optimizer == "muon" ? "Muon + AdamW" : "AdamW"); "
              + "median of \(runs) after a warm-up, spread = (max-min)/median. MFU = nanochat's estimate_flops × tok/s ÷ "
              + "sgemm peak \(fmt(peak, 1)) GFLOPS (OpenBLAS, 2048³, best of 6, this run). Raw sgemm at its shapes: OpenBLAS with its own threads "
              + "on the step's linear-layer products (y = xWᵀ, dx = dyW, dW = dyᵀx), timed in the case's process in turn with the train steps: each round runs a step, the raw products, then ours. "
              + "Model ÷ raw (and ours ÷ raw) is the median over rounds of each round's ratio, so a slow spell of the shared machine "
              + "cancels within its round; the GFLOPS beside it are the medians of each side.")
        if let s = torchStatus, s.version == nil { print("\nPyTorch: \(s.message); its column is skipped.") }
        if report.torch != nil {
            print("\nPyTorch (tools/torch_bench.py --serve, eager, AdamW, torch threads = ours) runs in a process of its own, "
                  + "kept ready through the case: each round ends with one of its train steps, and ours ÷ torch is the median "
                  + "over rounds of each round's ratio.")
        }

        print("\n## Train step and forward\n")
        print("| pattern | layers | dtype | B×T | params | train tok/s | spread | MFU | model GFLOPS ÷ raw sgemm at its shapes | our gemm ÷ raw there | forward tok/s | peak RSS | activations |"
              + (report.torch != nil ? " torch train tok/s | ours ÷ torch |" : "") + (bothPrecisions ? " bf16 ÷ fp32, same rounds |" : ""))
        print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + (report.torch != nil ? "---:|---:|" : "")
              + (bothPrecisions ? "---:|" : ""))
        for depth in depthList {
            for seq in seqList {
                for p in patternList {
                  for dtype in dtypeList {
                    let b = batch ?? max(1, tokens / seq)
                    var c = ModelCase(pattern: p, depth: depth, batch: b, seq: seq, vocab: vocab, optimizer: optimizer, runs: runs, threads: threads)
                    c.dtype = dtype.rawValue
                    c.compareFP32 = dtype == .bfloat16 && dtypeList.contains(.float32)
                    c.torch = report.torch != nil
                    c.profile = profile
                    c.busy = busy
                    let r = try runChild("model-case", c, as: TrainResult.self)
                    let train = Samples(seconds: r.trainSeconds), fwd = Samples(seconds: r.forwardSeconds)
                    let n = Double(b * seq)
                    let layers = try NamedPattern.parse(p, depth: depth).map(\.rawValue).joined()
                    var row = ModelReport.TrainRow(
                        pattern: p, layers: layers, depth: depth, batch: b, seq: seq, parameters: r.parameters,
                        trainTokS: n / train.median, trainSpread: train.spread,
                        mfu: r.flopsPerToken * n / train.median / (peak * 1e9), forwardTokS: n / fwd.median, forwardSpread: fwd.spread,
                        peakRSS: r.peakRSS, activationBytes: r.activationBytes,
                        modelGFLOPS: r.flopsPerToken * n / train.median / 1e9, rawLinearGFLOPS: r.rawLinearGFLOPS,
                        oursLinearGFLOPS: r.oursLinearGFLOPS, modelOverRaw: r.modelOverRaw(tokens: n), oursOverRaw: r.oursOverRaw)
                    row.dtype = dtype.rawValue
                    row.trainRange = [n / train.max, n / train.min]
                    var torchColumns = ""
                    if report.torch != nil {
                        if let t = r.torchSeconds {
                            row.torchTrainTokS = n / Samples(seconds: t).median
                            row.oursOverTorch = Samples(seconds: zip(t, r.trainSeconds).map { $0 / $1 }).median
                            torchColumns = " \(fmt(row.torchTrainTokS!, 1)) | \(fmt(row.oursOverTorch!, 2))x |"
                        } else {
                            torchColumns = " failed | |"
                        }
                    }
                    if let f = r.fp32Seconds {
                        row.overFP32 = Samples(seconds: zip(f, r.trainSeconds).map { $0 / $1 }).median
                    }
                    if let b = r.busySeconds {
                        row.busy = BusyRow(quiet: r.trainSeconds, busy: b, torchQuiet: r.torchSeconds, torchBusy: r.torchBusySeconds)
                    }
                    if let steps = r.profileSteps, let seconds = r.profileSeconds, let entries = r.profile {
                        row.profile = StepProfile(entries, steps: steps, seconds: seconds)
                    }
                    report.train.append(row)
                    let head = "| \(p) | \(layers) | \(dtype) | \(b)×\(seq) | \(fmt(Double(r.parameters) / 1e6))M | \(fmt(row.trainTokS, 0)) | "
                    print(head + "\(fmt(train.spread * 100, 0))% | \(fmt(row.mfu * 100, 1))% | "
                          + "\(fmt((row.modelOverRaw ?? 0) * 100, 0))% (\(fmt(row.modelGFLOPS, 0)) ÷ \(fmt(row.rawLinearGFLOPS, 0))) | "
                          + "\(fmt((row.oursOverRaw ?? 0) * 100, 0))% | "
                          + "\(fmt(row.forwardTokS, 0)) | "
                          + "\(mib(r.peakRSS)) | \(mib(r.activationBytes)) |" + torchColumns
                          + (bothPrecisions ? " \(row.overFP32.map { fmt($0, 2) + "x" } ?? "-") |" : ""))
                    fflush(nil)
                  }
                }
            }
        }

        if busy { BusyRow.print(report.train) }
        if profile { StepProfile.print(report.train) }

        if !contextList.isEmpty {
            print("\n## Prefill and decode (batch 1; decode = \(newTokens) greedy tokens after the context)\n")
            print("| pattern | depth | dtype | context | prefill tok/s | decode tok/s | spread | cache bytes / sequence |")
            print("|---|---:|---|---:|---:|---:|---:|---:|")
            for depth in depthList {
                for context in contextList {
                    for p in patternList {
                      for dtype in dtypeList {
                        var c = ModelCase(pattern: p, depth: depth, batch: 1, seq: 0, vocab: vocab, optimizer: optimizer, runs: runs, threads: threads)
                        (c.context, c.newTokens) = (context, newTokens)
                        c.dtype = dtype.rawValue
                        let r = try runChild("decode-case", c, as: DecodeResult.self)
                        let d = Samples(seconds: r.decodeSeconds)
                        let row = ModelReport.DecodeRow(pattern: p, depth: depth, context: context, prefillTokS: Double(context) / r.prefillSeconds,
                                                        decodeTokS: 1 / d.median, decodeSpread: d.spread, cacheBytes: r.cacheBytes,
                                                        dtype: dtype.rawValue, decodeRange: [1 / d.max, 1 / d.min])
                        report.decode.append(row)
                        print("| \(p) | \(depth) | \(dtype) | \(context) | \(fmt(row.prefillTokS, 0)) | \(fmt(row.decodeTokS, 1)) | "
                              + "\(fmt(d.spread * 100, 0))% | \(row.cacheBytes) |")
                        fflush(nil)
                      }
                    }
                }
            }
        }
        try ModelCharts.write(report, to: charts)
        print("\nCharts: \(charts)/train_tok_s.svg, \(charts)/decode_tok_s.svg, \(charts)/memory.svg")
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
            print("JSON: \(json)")
        }
    }
}

/// A train case's step with a busy process spinning on one core, against the same step
/// quiet in the same rounds: each side's busy ÷ quiet speed is the median over rounds of
/// each round's ratio. With the busy process holding half of one of two cores, a step that
/// shares its work evenly keeps at most 0.75 of its speed.
struct BusyRow: Codable {
    var oursBusyOverQuiet: Double
    var torchBusyOverQuiet: Double?

    init(quiet: [Double], busy: [Double], torchQuiet: [Double]?, torchBusy: [Double]?) {
        oursBusyOverQuiet = Samples(seconds: zip(quiet, busy).map { $0 / $1 }).median
        if let tq = torchQuiet, let tb = torchBusy {
            torchBusyOverQuiet = Samples(seconds: zip(tq, tb).map { $0 / $1 }).median
        }
    }

    static func print(_ train: [ModelReport.TrainRow]) {
        Swift.print("\n## With a busy process on one core (--busy)\n")
        Swift.print("Each round also times the step while a process spins on the last core (pinned with taskset); "
                    + "busy ÷ quiet is the speed kept, the median over rounds of each round's ratio.\n")
        Swift.print("| pattern | B×T | ours busy ÷ quiet | PyTorch busy ÷ quiet |")
        Swift.print("|---|---|---:|---:|")
        for row in train {
            guard let b = row.busy else { continue }
            Swift.print("| \(row.pattern) d\(row.depth) | \(row.batch)×\(row.seq) | \(fmt(b.oursBusyOverQuiet, 2)) | "
                        + "\(b.torchBusyOverQuiet.map { fmt($0, 2) } ?? "-") |")
        }
    }
}

/// Where the time of a case's profiled train steps went (`bench model --profile`): each op's
/// wall-clock time per step and share of the step, by phase (`OpProfile`).
struct StepProfile: Codable {
    struct Row: Codable {
        var phase: String, op: String, msPerStep: Double, share: Double, callsPerStep: Double
    }
    /// Wall time per profiled step, and the rows, largest first.
    var stepSeconds: Double
    var rows: [Row]
    /// The share of the step spent in no op: the tape's bookkeeping, reading the loss, the
    /// step loop.
    var outsideOps: Double { 1 - ops.reduce(0) { $0 + $1.share } }
    /// The rows of ops (the step's shares), without the parts timed inside them.
    var ops: [Row] { rows.filter { $0.phase != OpProfile.insidePhase } }

    init(_ entries: [OpProfile.Entry], steps: Int, seconds: Double) {
        stepSeconds = seconds / Double(steps)
        rows = entries.map {
            Row(phase: $0.phase, op: $0.op, msPerStep: $0.seconds / Double(steps) * 1000, share: $0.seconds / seconds,
                callsPerStep: Double($0.calls) / Double(steps))
        }.sorted { $0.share > $1.share }
    }

    /// The section of the report: one table per profiled case, ops under 0.5% of the step
    /// folded into one row.
    static func print(_ train: [ModelReport.TrainRow]) {
        let cases = train.filter { $0.profile != nil }
        guard !cases.isEmpty else { return }
        Swift.print("\n## Where a train step's time goes (--profile)\n")
        Swift.print("Wall-clock time per op over \(cases.count == 1 ? "the case's" : "each case's") profiled steps (as many as --runs, after the timed "
                    + "ones). A forward op is charged the time since the op before it; a backward op, its backward rule; "
                    + "the optimiser, its phases. The matmul rows are the linear layers' products.")
        for row in cases {
            let p = row.profile!
            Swift.print("\n### \(row.pattern) d\(row.depth), \(row.batch)×\(row.seq): \(fmt(p.stepSeconds * 1000, 0)) ms per profiled step\n")
            let phases = ["forward", "backward", "optimizer"].map { phase in
                "\(phase) \(fmt(p.rows.filter { $0.phase == phase }.reduce(0) { $0 + $1.share } * 100, 1))%"
            }
            Swift.print("By phase: " + phases.joined(separator: ", ") + ", in no op \(fmt(p.outsideOps * 100, 1))%.\n")
            Swift.print("| phase | op | ms per step | share of step | calls per step |")
            Swift.print("|---|---|---:|---:|---:|")
            let shown = p.ops.filter { $0.share >= 0.005 }, rest = p.ops.filter { $0.share < 0.005 }
            for r in shown {
                Swift.print("| \(r.phase) | \(r.op) | \(fmt(r.msPerStep, 1)) | \(fmt(r.share * 100, 1))% | \(fmt(r.callsPerStep, 0)) |")
            }
            if !rest.isEmpty {
                let ms = rest.reduce(0) { $0 + $1.msPerStep }, share = rest.reduce(0) { $0 + $1.share }
                Swift.print("| | \(rest.count) smaller ops | \(fmt(ms, 1)) | \(fmt(share * 100, 1))% | |")
            }
            Swift.print("| | in no op | \(fmt(p.outsideOps * p.stepSeconds * 1000, 1)) | \(fmt(p.outsideOps * 100, 1))% | |")
            printProducts(p)
        }
    }

    /// The bf16 products of many rows by shape (op(A) m×k · op(B) k×n, ᵀ where the operand is
    /// read transposed): time per step rounding and packing the operands and multiplying the
    /// blocks, and the TFLOPS of the blocks alone and of the whole product.
    static func printProducts(_ p: StepProfile) {
        struct Product { var calls = 0.0, pack = 0.0, blocks = 0.0, flops = 0.0 }
        var byShape: [String: Product] = [:]
        for r in p.rows where r.phase == OpProfile.insidePhase && r.op.hasPrefix("bf16 ") {
            let words = r.op.split(separator: " ")
            guard words.count == 3 else { continue }
            let stage = words[1], shape = String(words[2])
            let sizes = shape.split(whereSeparator: { "×·ᵀ".contains($0) }).compactMap { Int($0) }
            guard sizes.count == 4 else { continue }
            var e = byShape[shape, default: Product()]
            if stage == "pack" {
                e.pack += r.msPerStep
            } else {
                e.blocks += r.msPerStep; e.calls += r.callsPerStep
                e.flops = 2 * Double(sizes[0]) * Double(sizes[1]) * Double(sizes[3])
            }
            byShape[shape] = e
        }
        guard !byShape.isEmpty else { return }
        Swift.print("\nInside the bf16 products (already counted in the matmul and attention rows above), per step:\n")
        Swift.print("| op(A) · op(B) | calls | pack ms | blocks ms | blocks TFLOPS | whole TFLOPS |")
        Swift.print("|---|---:|---:|---:|---:|---:|")
        let total = byShape.values.reduce(Product()) {
            Product(calls: $0.calls + $1.calls, pack: $0.pack + $1.pack, blocks: $0.blocks + $1.blocks,
                    flops: $0.flops + $1.flops * $1.calls)
        }
        func tflops(_ flops: Double, _ ms: Double) -> String { ms > 0 ? fmt(flops / ms / 1e9, 2) : "-" }
        for (shape, e) in byShape.sorted(by: { $0.value.pack + $0.value.blocks > $1.value.pack + $1.value.blocks }) {
            Swift.print("| \(shape) | \(fmt(e.calls, 0)) | \(fmt(e.pack, 1)) | \(fmt(e.blocks, 1)) | "
                        + "\(tflops(e.flops * e.calls, e.blocks)) | \(tflops(e.flops * e.calls, e.pack + e.blocks)) |")
        }
        Swift.print("| all | \(fmt(total.calls, 0)) | \(fmt(total.pack, 1)) | \(fmt(total.blocks, 1)) | "
                    + "\(tflops(total.flops, total.blocks)) | \(tflops(total.flops, total.pack + total.blocks)) |")
    }
}

func mib(_ bytes: Int) -> String { "\(fmt(Double(bytes) / 1_048_576, 0)) MiB" }

/// `bench charts`: redraws the charts of a `bench model` JSON file.
struct ChartsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "charts", abstract: "Draw the SVG charts of a `bench model --json` file again.")

    @Argument(help: "A JSON file written by `bench model --json`.") var json: String
    @Option(help: "Directory for the SVG charts.") var charts = "runs/bench"

    func run() throws {
        let report = try JSONDecoder().decode(ModelReport.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        try ModelCharts.write(report, to: charts)
        print("Charts: \(charts)/train_tok_s.svg, \(charts)/decode_tok_s.svg, \(charts)/memory.svg")
    }
}

/// The SVG charts of a report: tok/s against sequence length (train) and context (decode),
/// and peak memory against sequence length; one line per pattern and depth.
enum ModelCharts {
    static func write(_ r: ModelReport, to dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // One line per key, a marker at each measurement, and the band from the slowest to
        // the fastest run where every point has one (the noise, not a trend).
        func series<Row>(_ rows: [Row], key: (Row) -> String, x: (Row) -> Int, y: (Row) -> Double,
                         range: (Row) -> [Double]? = { _ in nil }) -> [LineChart.Series] {
            var order: [String] = [], points: [String: [(x: Double, y: Double)]] = [:]
            var bands: [String: [(x: Double, low: Double, high: Double)]] = [:], incomplete: Set<String> = []
            for row in rows {
                let k = key(row)
                if points[k] == nil { order.append(k) }
                points[k, default: []].append((Double(x(row)), y(row)))
                if let r = range(row), r.count == 2 { bands[k, default: []].append((Double(x(row)), r[0], r[1])) } else { incomplete.insert(k) }
            }
            return order.map { k in
                var one = LineChart.Series(name: k, points: (points[k] ?? []).sorted { $0.x < $1.x }, markers: true)
                if !incomplete.contains(k) { one.band = bands[k]?.sorted { $0.x < $1.x } }
                return one
            }
        }
        let charts: [(String, LineChart)] = [
            ("train_tok_s.svg", LineChart(title: "Train step tokens/s (\(r.optimizer))", xLabel: "sequence length", yLabel: "tokens/s",
                                          series: series(r.train, key: { "\($0.pattern) d\($0.depth)\($0.dtype.map { " \($0)" } ?? "")" }, x: \.seq, y: \.trainTokS,
                                                         range: \.trainRange), logX: true, zeroBasedY: true)),
            ("decode_tok_s.svg", LineChart(title: "Decode tokens/s, batch 1", xLabel: "context length", yLabel: "tokens/s",
                                           series: series(r.decode, key: { "\($0.pattern) d\($0.depth)\($0.dtype.map { " \($0)" } ?? "")" }, x: \.context, y: \.decodeTokS,
                                                          range: \.decodeRange), logX: true, zeroBasedY: true)),
            ("memory.svg", LineChart(title: "Peak resident memory of a train step", xLabel: "sequence length", yLabel: "MiB",
                                     series: series(r.train, key: { "\($0.pattern) d\($0.depth)\($0.dtype.map { " \($0)" } ?? "")" }, x: \.seq, y: { Double($0.peakRSS) / 1_048_576 }), logX: true, zeroBasedY: true)),
        ]
        for (name, chart) in charts { try chart.svg().write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8) }
    }
}

/// The PyTorch column: tools/torch_bench.py run with python3, when torch imports.
enum TorchSide {
    static let script = "tools/torch_bench.py"

    static func python(_ arguments: [String]) -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        guard (try? p.run()) != nil else { return (-1, "", "python3 not found") }
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// torch's version, or why there is none.
    static func status() -> (version: String?, message: String) {
        guard FileManager.default.fileExists(atPath: script) else { return (nil, "\(script) not found (run from the repository root)") }
        let r = python(["-c", "import torch; print(torch.__version__)"])
        guard r.status == 0 else { return (nil, "torch is not installed (pip install torch)") }
        let v = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
        return (v, "torch \(v)")
    }
}

/// PyTorch's train step kept ready in a process of its own (`torch_bench.py --serve`), so a
/// case can time it round by round between its own steps.
final class TorchServer {
    private let process = Process(), input = Pipe(), output = Pipe()
    private let lines: LineReader

    /// Starts the server and waits until its model is built; nil if it does not come up.
    init?(layers: String, batch: Int, seq: Int, vocab: Int, threads: Int, dtype: MatmulPrecision = .float32) {
        signal(SIGPIPE, SIG_IGN)   // a server that died must fail a write, not kill the case
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", TorchSide.script, "--serve", "--pattern", layers, "--batch", "\(batch)",
                             "--seq", "\(seq)", "--vocab", "\(vocab)", "--threads", "\(threads)", "--dtype", dtype.rawValue]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        lines = LineReader(output.fileHandleForReading)
        guard (try? process.run()) != nil, lines.next()?.contains("\"ready\"") == true else { return nil }
    }

    /// Runs one train step; false if the server failed.
    func step() -> Bool {
        guard (try? input.fileHandleForWriting.write(contentsOf: Data("step\n".utf8))) != nil, let line = lines.next(),
              let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return false }
        return obj["seconds"] is Double
    }

    func close() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}
