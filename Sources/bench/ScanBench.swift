// `bench scan`: the selective scan at the d12 mixer shape and a batched shape: forward and
// forward+backward time and elements/s (B·T·Di·N per second), 1 vs N threads, the chunked
// parallel scan vs the sequential reference, and the scan's extra memory.
import ArgumentParser
import Foundation
import SelectiveScan
import Tensor

struct ScanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Selective scan throughput: chunked parallel vs sequential reference, 1 vs N threads."
    )

    @OptionGroup var common: CommonOptions

    @Flag(help: "Skip the sequential reference (slow: seconds per run at the d12 shape).")
    var skipReference = false

    @Option(help: "Shapes to measure, B×T×Di×N separated by commas (default: the d12 mixer at T=2048, and a batched one).")
    var shapes = "1x2048x1536x16,4x512x512x16"

    func shapeList() throws -> [(Int, Int, Int, Int)] {
        try shapes.split(separator: ",").map { item in
            let v = item.split(separator: "x").compactMap { Int($0) }
            guard v.count == 4, v.allSatisfy({ $0 >= 1 }) else {
                throw ValidationError("--shapes: \"\(item)\" is not B×T×Di×N, e.g. 1x512x1536x16")
            }
            return (v[0], v[1], v[2], v[3])
        }
    }

    func validate() throws { _ = try shapeList() }

    func run() throws {
        Parallel.setThreadCount(common.threads)
        print("# bench scan\n")
        print(machineSummary(threads: common.threads))
        print("\nElements = B·T·Di·N state updates. Median of \(common.runs) runs (reference: of 1).\n")
        print("| shape | pass | reference | chunked, 1 thread | chunked, \(common.threads) threads | G elem/s (\(common.threads) thr) | threads speedup | vs reference |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        var rows: [ScanRow] = []
        let shapeList = try shapeList()
        for (b, t, di, n) in shapeList {
            rows += measure(ScanShape(batch: b, time: t, channels: di, state: n))
        }
        print("\nExtra memory of forward + backward (boundary states, scratch, partials; formula in ScanShape.extraBytes):\n")
        for (b, t, di, n) in shapeList {
            let sh = ScanShape(batch: b, time: t, channels: di, state: n)
            let full = b * t * di * n * 4
            print("- B=\(b) T=\(t) Di=\(di) N=\(n): \(fmt(Double(sh.extraBytes(threads: common.threads)) / 1048576, 2)) MiB "
                  + "(a kept (B,T,Di,N) state would be \(fmt(Double(full) / 1048576, 1)) MiB)")
        }
        if let path = common.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(rows).write(to: URL(fileURLWithPath: path))
            print("\nwrote \(path)")
        }
    }

    func measure(_ sh: ScanShape) -> [ScanRow] {
        var g = SeededGenerator(seed: 1)
        let bt = [sh.batch, sh.time], di = sh.channels, n = sh.state
        let u = Tensor.randomNormal(bt + [di], generator: &g), dr = Tensor.randomNormal(bt + [di], std: 0.5, generator: &g)
        let bias = Tensor(repeating: -4, shape: [di])   // softplus⁻¹ of ≈ 0.018, mid of Mamba's Δ init
        let aLog = Tensor(shape: [di, n], scalars: (0..<(di * n)).map { log(Double($0 % n + 1)) })
        let bm = Tensor.randomNormal(bt + [n], generator: &g), cm = Tensor.randomNormal(bt + [n], generator: &g)
        let d = Tensor(repeating: 1, shape: [di]), z = Tensor.randomNormal(bt + [di], generator: &g)
        let x = ScanInputs(u: u.data(Float.self), deltaRaw: dr.data(Float.self), dtBias: bias.data(Float.self),
                           aLog: aLog.data(Float.self), bm: bm.data(Float.self), cm: cm.data(Float.self),
                           d: d.data(Float.self), z: z.data(Float.self))
        let out = Tensor(zeros: u.shape), dout = Tensor.randomNormal(u.shape, generator: &g)
        let boundary = Tensor(zeros: [sh.boundaryCount])
        let grads = [u, dr, bias, aLog, bm, cm, d, z].map { Tensor(zeros: $0.shape) }
        let gp = grads.map { $0.data(Float.self) }
        let sg = ScanGradients(u: gp[0], deltaRaw: gp[1], dtBias: gp[2], aLog: gp[3], bm: gp[4], cm: gp[5], d: gp[6], z: gp[7])
        let forward = {
            selectiveScanForward(out: out.data(Float.self), inputs: x, shape: sh, boundaryStates: boundary.data(Float.self))
        }
        let both = {
            forward()
            selectiveScanBackward(grads: sg, dout: dout.data(Float.self), inputs: x, shape: sh,
                                  boundaryStates: boundary.data(Float.self))
        }
        let nt = common.threads
        let elements = Double(sh.batch * sh.time * sh.channels * sh.state)
        let label = "B=\(sh.batch) T=\(sh.time) Di=\(sh.channels) N=\(sh.state)"
        var rows: [ScanRow] = []
        for (pass, body) in [("forward", forward), ("forward+backward", both)] {
            let s = timeInterleaved(runs: common.runs, [
                { Parallel.setThreadCount(1); body() },
                { Parallel.setThreadCount(nt); body() },
            ])
            Parallel.setThreadCount(nt)
            var reference: Samples?
            if !skipReference {
                reference = timeRuns(warmup: 0, runs: 1) {
                    selectiveScanReference(out: out.data(Float.self), inputs: x, shape: sh)
                    if pass != "forward" {
                        selectiveScanBackwardReference(grads: sg, dout: dout.data(Float.self), inputs: x, shape: sh)
                    }
                }
            }
            let rate = elements / s[1].median * 1e-9
            let refCell = reference.map { "\(fmt($0.median * 1e3)) ms" } ?? "-"
            let vsRef = reference.map { fmt($0.median / s[1].median) + "x" } ?? "-"
            print("| \(label) | \(pass) | \(refCell) | \(fmt(s[0].median * 1e3)) ms | \(fmt(s[1].median * 1e3)) ms | "
                  + "\(fmt(rate, 2)) | \(fmt(s[0].median / s[1].median, 2))x | \(vsRef) |")
            rows.append(ScanRow(shape: label, pass: pass, elementsPerSecond: elements / s[1].median,
                                oneThread: s[0], allThreads: s[1], reference: reference))
        }
        return rows
    }
}

struct ScanRow: Codable {
    var shape: String, pass: String
    var elementsPerSecond: Double
    var oneThread: Samples, allThreads: Samples
    var reference: Samples?
}
