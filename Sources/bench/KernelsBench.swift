// `bench kernels`: matmul through the Tensor API next to raw cblas_sgemm, and the SIMD
// kernels (silu, rmsnorm, attention, cross entropy; forward and backward) next to plain
// scalar loops, all in one run.
import ArgumentParser
import CBLAS
import Foundation
import Tensor

struct KernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "GFLOPS of matmul vs raw sgemm; GB/s of the SIMD kernels vs scalar loops."
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Comma-separated bf16 kernels to check and time: amx, avx512bf16, rounded, portable (default: those that multiply bf16 natively here, else rounded).")
    var bf16Kernels: String?

    @Option(help: "Comma-separated blockings for the packed bf16 kernels, each ROWPANELSxCOLUMNPAIRSxKCHUNK (default: the standard one).")
    var bf16Blocking: String?

    @Option(help: "Comma-separated shapes for the bf16 table, each MxKxN (x · W, W K×N) or MxKxNt (x · Wᵀ, W N×K as a linear layer's) (default: d12's at 4096 tokens).")
    var bf16Shapes: String?

    @Option(help: "Comma-separated tables to run: matmul, bf16, attention, simd (default: all).")
    var tables: String?

    @Option(help: "Comma-separated query rows per attention score block to time, every kernel at each (default: each kernel's own).")
    var attentionBlocks: String?

    func parsedAttentionBlocks() throws -> [Int] {
        guard let attentionBlocks else { return [0] }
        return try attentionBlocks.split(separator: ",").map { item in
            guard let n = Int(item), (16...4096).contains(n) else {
                throw ValidationError("--attention-blocks: \"\(item)\" is not a row count in 16...4096")
            }
            return n
        }
    }

    static let tableNames = ["matmul", "bf16", "attention", "simd"]

    func parsedTables() throws -> Set<String> {
        guard let tables else { return Set(Self.tableNames) }
        let names = tables.split(separator: ",").map(String.init)
        for name in names where !Self.tableNames.contains(name) {
            throw ValidationError("--tables: unknown table \(name); known: \(Self.tableNames.joined(separator: ", "))")
        }
        return Set(names)
    }

    func parsedShapes() throws -> [(m: Int, k: Int, n: Int, linear: Bool)] {
        guard let bf16Shapes else { return [(4096, 768, 3072, true), (4096, 3072, 768, true), (4096, 768, 3072, false), (4096, 768, 768, true)] }
        return try bf16Shapes.split(separator: ",").map { item in
            let linear = item.hasSuffix("t")
            let parts = item.dropLast(linear ? 1 : 0).split(separator: "x").compactMap { Int($0) }
            guard parts.count == 3, parts.allSatisfy({ (1...65536).contains($0) }) else {
                throw ValidationError("--bf16-shapes: \"\(item)\" is not MxKxN or MxKxNt with sizes in 1...65536")
            }
            return (parts[0], parts[1], parts[2], linear)
        }
    }

    func parsedBF16() throws -> (kernels: [BF16Kernel], blockings: [BF16Blocking]) {
        let kernels = try bf16Kernels.map { list in
            try list.split(separator: ",").map { name in
                guard let k = BF16Kernel(rawValue: String(name)) else {
                    throw ValidationError("--bf16-kernels: unknown kernel \(name); known: \(BF16Kernel.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                guard k.available else { throw ValidationError("--bf16-kernels: \(name) cannot run here: \(k.refusal ?? "")") }
                return k
            }
        } ?? (BF16Kernel.native ? [BF16Kernel.amx, .avx512bf16].filter(\.available) : [.rounded])
        let blockings = try bf16Blocking.map { list in
            try list.split(separator: ",").map { item in
                let parts = item.split(separator: "x").compactMap { Int($0) }
                guard parts.count == 3, parts[0] >= 1, parts[1] >= 1, parts[2] >= 32, parts[2] % 32 == 0 else {
                    throw ValidationError("--bf16-blocking: \"\(item)\" is not ROWPANELSxCOLUMNPAIRSxKCHUNK (K chunk a multiple of 32)")
                }
                return BF16Blocking(rowPanels: parts[0], columnPairs: parts[1], kChunk: parts[2])
            }
        } ?? [BF16Blocking.current]
        return (kernels, blockings)
    }

    func validate() throws { _ = try parsedBF16(); _ = try parsedShapes(); _ = try parsedTables(); _ = try parsedAttentionBlocks() }

    func run() throws {
        Parallel.setThreadCount(common.threads)
        print("# bench kernels\n")
        print(machineSummary(threads: common.threads))
        let (bf16Kernels, blockings) = try parsedBF16()
        let tables = try parsedTables()
        let matmuls = tables.contains("matmul") ? matmulRows() : []
        let bf16 = tables.contains("bf16") ? bf16Rows(kernels: bf16Kernels, blockings: blockings, shapes: try parsedShapes()) : []
        let attention = tables.contains("attention") ? attentionRows(kernels: bf16Kernels, blocks: try parsedAttentionBlocks()) : []
        let kernels = tables.contains("simd") ? kernelRows() : []
        if let path = common.json {
            let report = KernelsReport(threads: common.threads, matmul: matmuls, bf16: bf16, attention: attention,
                                       kernels: kernels)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: path))
            print("\nwrote \(path)")
        }
    }

    // MARK: matmul

    func matmulRows() -> [MatmulRow] {
        print("\n## matmul: Tensor API vs raw cblas_sgemm (\(common.threads) threads, median of \(common.runs))\n")
        print("| product | Tensor API GFLOPS | raw sgemm GFLOPS | ratio |")
        print("|---|---:|---:|---:|")
        var rows: [MatmulRow] = []
        // (M, K, N, weight stored transposed as nn.Linear does)
        for (m, k, n, linearWeight) in [(4096, 768, 3072, false), (4096, 3072, 768, false),
                                        (4096, 768, 3072, true), (4096, 3072, 768, true)] {
            let a = Tensor(repeating: 0.5, shape: [m, k])
            let b = Tensor(repeating: 0.25, shape: linearWeight ? [n, k] : [k, n])
            let c = Tensor(zeros: [m, n])
            // Raw: one sgemm call with OpenBLAS's own threads (its best); ours: OpenBLAS on one
            // thread, the product split over our workers. OpenBLAS's threads spin for a while
            // after its call; the untimed pause keeps them from slowing ours.
            let samples = timeInterleaved(runs: common.runs, pauses: [0, 0.25], [
                { openblas_set_num_threads(1); _ = linearWeight ? linear(a, b) : matmul(a, b) },
                {
                    openblas_set_num_threads(Int32(common.threads))
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, linearWeight ? CblasTrans : CblasNoTrans,
                                Int32(m), Int32(n), Int32(k), 1, a.data(Float.self), Int32(k),
                                b.data(Float.self), Int32(linearWeight ? k : n), 0, c.data(Float.self), Int32(n))
                },
            ])
            openblas_set_num_threads(1)
            let flops = 2.0 * Double(m * n * k)
            let ours = flops / samples[0].median * 1e-9, raw = flops / samples[1].median * 1e-9
            let name = linearWeight ? "\(m)x\(k) · (\(n)x\(k))ᵀ linear" : "\(m)x\(k) · \(k)x\(n)"
            print("| \(name) | \(fmt(ours)) | \(fmt(raw)) | \(fmt(ours / raw, 3)) |")
            rows.append(MatmulRow(product: name, oursGFLOPS: ours, rawGFLOPS: raw, ours: samples[0], raw: samples[1]))
        }
        if let best = rows.map(\.rawGFLOPS).max(), let warning = HostCPU.peakWarning(measured: best, threads: common.threads) {
            print("\nwarning: \(warning)")
        }
        return rows
    }

    // MARK: SIMD kernels

    func kernelRows() -> [KernelRow] {
        let nt = common.threads
        print("\n## SIMD kernels vs plain scalar loops (GB/s; median of \(common.runs))\n")
        print("Bytes count each tensor the op must read or write once; the same count for both columns.\n")
        print("| kernel | shape | scalar loop | ours, 1 thread | ours, \(nt) threads | 1 thread ÷ scalar | \(nt) threads ÷ scalar |")
        print("|---|---|---:|---:|---:|---:|---:|")
        var rows: [KernelRow] = []
        func measure(_ name: String, _ shape: String, bytes: Double,
                     scalar: @escaping () -> Void, ours: @escaping () -> Void) {
            let s = timeInterleaved(runs: common.runs, [
                scalar,
                { Parallel.setThreadCount(1); ours() },
                { Parallel.setThreadCount(nt); ours() },
            ])
            Parallel.setThreadCount(nt)
            let gb = s.map { bytes / $0.median * 1e-9 }
            print("| \(name) | \(shape) | \(fmt(gb[0], 2)) | \(fmt(gb[1], 2)) | \(fmt(gb[2], 2)) | \(fmt(gb[1] / gb[0]))x | \(fmt(gb[2] / gb[0]))x |")
            rows.append(KernelRow(kernel: name, shape: shape, bytes: bytes, scalarGBs: gb[0], ours1GBs: gb[1],
                                  oursNGBs: gb[2], scalar: s[0], ours1: s[1], oursN: s[2]))
        }

        // silu and rmsnorm at two sizes: 4096 tokens (as the matmuls above; 12-50 MB, out of
        // cache, so bounded by memory bandwidth) and 512 tokens (one d12 micro-batch at
        // T = 512; 1.5-6 MB, mostly cache-resident).
        for tokens in [4096, 512] {
            let n = tokens * 3072
            let x = randomTensor([n], seed: 1), y = Tensor(zeros: [n]), dy = randomTensor([n], seed: 2), dx = Tensor(zeros: [n])
            let (px, py, pdy, pdx) = (x.data(Float.self), y.data(Float.self), dy.data(Float.self), dx.data(Float.self))
            measure("silu forward", "\(tokens)x3072", bytes: Double(8 * n),
                    scalar: { ScalarLoops.siluForward(py, px, n) },
                    ours: { pointwiseForward(Silu.self, out: py, inp: px, count: n) })
            measure("silu backward", "\(tokens)x3072", bytes: Double(16 * n),
                    scalar: { ScalarLoops.siluBackward(pdx, px, pdy, n) },
                    ours: { pointwiseBackward(Silu.self, dinp: pdx, inp: px, out: py, dout: pdy, count: n) })

            let c = 768
            let rx = randomTensor([tokens, c], seed: 3), ry = Tensor(zeros: [tokens, c]), rstd = Tensor(zeros: [tokens])
            let rdy = randomTensor([tokens, c], seed: 4), rdx = Tensor(zeros: [tokens, c])
            let (prx, pry, prs, prdy, prdx) = (rx.data(Float.self), ry.data(Float.self), rstd.data(Float.self),
                                               rdy.data(Float.self), rdx.data(Float.self))
            measure("rmsnorm forward", "\(tokens)x768", bytes: Double(8 * tokens * c),
                    scalar: { rmsNormForwardReference(out: pry, inp: prx, rows: tokens, n: c) },
                    ours: { rmsNormForward(out: pry, rstd: prs, inp: prx, rows: tokens, n: c) })
            rmsNormForward(out: pry, rstd: prs, inp: prx, rows: tokens, n: c)
            measure("rmsnorm backward", "\(tokens)x768", bytes: Double(16 * tokens * c),
                    scalar: { rmsNormBackwardReference(dinp: prdx, dout: prdy, inp: prx, rows: tokens, n: c) },
                    ours: { rmsNormBackward(dinp: prdx, dout: prdy, out: pry, rstd: prs, rows: tokens, n: c) })
        }

        // Causal attention, d12 at T = 512: H = 6, hd = 128.
        let (t, h, hd) = (512, 6, 128)
        let shape = AttentionShape(batch: 1, queries: t, heads: h, kvHeads: h, headDim: hd)
        let q = randomTensor([t, h, hd], seed: 5), k = randomTensor([t, h, hd], seed: 6), v = randomTensor([t, h, hd], seed: 7)
        let ay = Tensor(zeros: [t, h, hd]), lse = Tensor(zeros: [h, t]), ady = randomTensor([t, h, hd], seed: 8)
        let dq = Tensor(zeros: [t, h, hd]), dk = Tensor(zeros: [t, h, hd]), dv = Tensor(zeros: [t, h, hd])
        let (pq, pk, pv, pay, plse, pady) = (q.data(Float.self), k.data(Float.self), v.data(Float.self),
                                             ay.data(Float.self), lse.data(Float.self), ady.data(Float.self))
        let (pdq, pdk, pdv) = (dq.data(Float.self), dk.data(Float.self), dv.data(Float.self))
        let tensorBytes = Double(t * h * hd * 4)
        measure("attention forward", "T=512 H=6 hd=128", bytes: 4 * tensorBytes,
                scalar: { ScalarLoops.attentionForward(pay, pq, pk, pv, t: t, h: h, hd: hd) },
                ours: { attentionForward(out: pay, lse: plse, q: pq, k: pk, v: pv, shape: shape) })
        attentionForward(out: pay, lse: plse, q: pq, k: pk, v: pv, shape: shape)
        measure("attention backward", "T=512 H=6 hd=128", bytes: 10 * tensorBytes,
                scalar: { ScalarLoops.attentionBackward(pdq, pdk, pdv, pady, pq, pk, pv, t: t, h: h, hd: hd) },
                ours: { attentionBackward(dq: pdq, dk: pdk, dv: pdv, dout: pady, q: pq, k: pk, v: pv,
                                          out: pay, lse: plse, shape: shape) })

        // Softcapped cross entropy: 1024 rows of an 8192-token vocabulary.
        let (nr, vocab) = (1024, 8192)
        let logits = randomTensor([nr, vocab], seed: 9, std: 4), dlogits = Tensor(zeros: [nr, vocab])
        var g = SeededGenerator(seed: 10)
        let targets = (0..<nr).map { _ in Int32(g.next() % UInt64(vocab)) }
        let losses = Tensor(zeros: [nr]), celse = Tensor(zeros: [nr]), dloss = Tensor(repeating: 1.0 / Double(nr), shape: [nr])
        let (pl, pdl, plo, pcl, pdlo) = (logits.data(Float.self), dlogits.data(Float.self), losses.data(Float.self),
                                         celse.data(Float.self), dloss.data(Float.self))
        targets.withUnsafeBufferPointer { tp in
            let pt = tp.baseAddress!
            measure("cross entropy forward", "1024x8192", bytes: Double(4 * nr * vocab),
                    scalar: { _ = ScalarLoops.crossEntropyForward(pl, targets, vocab, cap: 15) },
                    ours: { crossEntropyForward(losses: plo, lse: pcl, logits: pl, targets: pt, rows: nr, vocab: vocab, softcap: 15) })
            measure("cross entropy backward", "1024x8192", bytes: Double(12 * nr * vocab),
                    scalar: { ScalarLoops.crossEntropyBackward(pdl, pl, targets, vocab, cap: 15, scale: 1 / Float(nr)) },
                    ours: { crossEntropyBackward(dlogits: pdl, dloss: pdlo, logits: pl, lse: pcl, targets: pt,
                                                 rows: nr, vocab: vocab, softcap: 15) })
        }
        return rows
    }

    func randomTensor(_ shape: [Int], seed: UInt64, std: Double = 1) -> Tensor {
        var g = SeededGenerator(seed: seed)
        return Tensor.randomNormal(shape, std: std, generator: &g)
    }
}

struct MatmulRow: Codable {
    var product: String
    var oursGFLOPS: Double, rawGFLOPS: Double
    var ours: Samples, raw: Samples
}

struct KernelRow: Codable {
    var kernel: String, shape: String, bytes: Double
    var scalarGBs: Double, ours1GBs: Double, oursNGBs: Double
    var scalar: Samples, ours1: Samples, oursN: Samples
}

struct KernelsReport: Codable {
    var threads: Int
    var matmul: [MatmulRow]
    var bf16: [BF16MatmulRow]
    var attention: [AttentionRow]
    var kernels: [KernelRow]
}

/// One line naming the CPU, core count and thread setting, for the head of every report.
func machineSummary(threads: Int) -> String {
    let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?
        .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
    let flags = cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }.map(String.init) ?? ""
    let simd = ["avx512f", "avx2", "fma"].filter { flags.contains(" \($0)") }.joined(separator: " ")
    var summary = "Machine: \(model), \(ProcessInfo.processInfo.activeProcessorCount) cores (\(simd)); threads: \(threads)\n"
        + HostCPU.summary
        + "\nbf16 products: \(BF16Kernel.chosen)" + (BF16Kernel.native ? "" : " (no bf16 instructions here: fp32 is the default)")
    for warning in HostCPU.warnings { summary += "\nwarning: \(warning)" }
    return summary
}
