// `bench kernels`' bf16 part: every bf16 kernel this CPU runs checked against a Double
// reference on the same rounded operands (so a figure is never timed on a wrong kernel),
// then timed at the d12 shapes next to our fp32 products and raw sgemm.
import CBLAS
import Foundation
import Tensor

enum BF16Bench {
    /// Checks products of awkward shapes (a few rows, tails off every multiple of 16 and 32,
    /// K over two chunks), transposes, and packed weights on `kernel`; returns what failed.
    /// An output passes when it is within (K+2)·2⁻²⁴·Σ|a·b| of the reference: fp32
    /// accumulation error of the exact bf16 products.
    static func check(_ kernel: BF16Kernel) -> [String] {
        var failures: [String] = []
        var g = SeededGenerator(seed: 42)
        func random(_ shape: [Int]) -> Tensor { Tensor.randomNormal(shape, generator: &g) }
        func worst(_ got: Tensor, _ a: Tensor, _ b: Tensor, _ ta: Bool, _ tb: Bool, m: Int, n: Int, k: Int) -> Double {
            let pa = a.floats.map { Double(roundedToBF16($0)) }, pb = b.floats.map { Double(roundedToBF16($0)) }
            let out = got.data(Float.self)
            var ratio = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0, abs = 0.0
                    for p in 0..<k {
                        let x = ta ? pa[p * m + i] : pa[i * k + p], y = tb ? pb[j * k + p] : pb[p * n + j]
                        s += x * y; abs += Swift.abs(x * y)
                    }
                    let r = Swift.abs(Double(out[i * n + j]) - s) / (Double(k + 2) * 0x1p-24 * abs + 1e-30)
                    if !(r <= ratio) { ratio = r }
                }
            }
            return ratio
        }
        for (m, n, k) in [(5, 37, 61), (1, 300, 96), (15, 17, 33), (70, 45, 77), (130, 300, 600), (256, 96, 1100)] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                let a = random(ta ? [k, m] : [m, k]), b = random(tb ? [n, k] : [k, n])
                let y = Precision.with(.bfloat16, kernel: kernel) { matmul(a, b, transposeA: ta, transposeB: tb) }
                let r = worst(y, a, b, ta, tb, m: m, n: n, k: k)
                if !(r <= 1) { failures.append("\(m)×\(n)×\(k) ta \(ta) tb \(tb): error \(fmt(r, 3))× the bound") }
            }
        }
        for (m, n, k) in [(3, 70, 90), (200, 130, 600)] {
            let x = random([m, k]), w = random([n, k])
            let one = Precision.with(.bfloat16, kernel: kernel) { Parallel.withThreadCount(1) { linear(x, w) } }
            let many = Precision.with(.bfloat16, kernel: kernel) { Parallel.withThreadCount(5) { linear(x, w) } }
            if one.floats != many.floats { failures.append("\(m)×\(n)×\(k): 1 and 5 threads differ") }
            let packed = w.detached()
            packed.packBF16()
            let viaPacked = Precision.with(.bfloat16, kernel: kernel) { GradMode.withoutGradients { linear(x, packed) } }
            let r = worst(viaPacked, x, w, false, true, m: m, n: n, k: k)
            if !(r <= 1) { failures.append("\(m)×\(n)×\(k) packed weight: error \(fmt(r, 3))× the bound") }
        }
        return failures
    }

    /// The sampled error of a large product: 64 outputs against the Double reference, as a
    /// multiple of the bound (≤ 1 is right).
    static func sampledError(_ c: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                             m: Int, n: Int, k: Int, transposeB: Bool) -> Double {
        var g = SeededGenerator(seed: 7), ratio = 0.0
        for _ in 0..<64 {
            let i = Int(g.next() % UInt64(m)), j = Int(g.next() % UInt64(n))
            var s = 0.0, abs = 0.0
            for p in 0..<k {
                let x = Double(roundedToBF16(a[i * k + p]))
                let y = Double(roundedToBF16(transposeB ? b[j * k + p] : b[p * n + j]))
                s += x * y; abs += Swift.abs(x * y)
            }
            ratio = Swift.max(ratio, Swift.abs(Double(c[i * n + j]) - s) / (Double(k + 2) * 0x1p-24 * abs + 1e-30))
        }
        return ratio
    }
}

struct BF16MatmulRow: Codable {
    var product: String, kernel: String, blocking: String
    var bf16GFLOPS: Double, fp32GFLOPS: Double, rawGFLOPS: Double, errorOverBound: Double
    var bf16: Samples, fp32: Samples, raw: Samples
}

extension KernelsCommand {
    /// bf16 products at the given shapes (d12's at 4096 tokens by default) on each kernel and blocking asked for,
    /// each round timing raw sgemm (OpenBLAS's threads), our fp32 product and our bf16 one.
    func bf16Rows(kernels: [BF16Kernel], blockings: [BF16Blocking], shapes: [(m: Int, k: Int, n: Int, linear: Bool)]) -> [BF16MatmulRow] {
        print("\n## bf16 products: bf16 operands, fp32 sums (\(common.threads) threads, median of \(common.runs))\n")
        for kernel in kernels {
            let failures = BF16Bench.check(kernel)
            print("check \(kernel): " + (failures.isEmpty ? "every product within fp32 accumulation error of the reference"
                                                          : "FAILED\n  " + failures.joined(separator: "\n  ")))
        }
        print("\nerror: the largest of 64 sampled outputs' |ours − Double reference on the rounded operands|, as a multiple "
              + "of (K+2)·2⁻²⁴·Σ|a·b| (≤ 1 is within fp32 accumulation error). Blocking: row panels × column pairs × K chunk.\n")
        print("| product | kernel | blocking | bf16 GFLOPS | our fp32 GFLOPS | raw sgemm GFLOPS | bf16 ÷ fp32 | bf16 ÷ raw | error |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|")
        var rows: [BF16MatmulRow] = []
        let saved = BF16Blocking.current
        defer { BF16Blocking.current = saved }
        for (m, k, n, linearWeight) in shapes {
            var g = SeededGenerator(seed: 3)
            let a = Tensor.randomNormal([m, k], generator: &g)
            let b = Tensor.randomNormal(linearWeight ? [n, k] : [k, n], generator: &g)
            let c = Tensor(zeros: [m, n])
            let name = linearWeight ? "\(m)x\(k) · (\(n)x\(k))ᵀ linear" : "\(m)x\(k) · \(k)x\(n)"
            for kernel in kernels {
                for blocking in (kernel == .rounded ? [saved] : blockings) {
                    BF16Blocking.current = blocking
                    let samples = timeInterleaved(runs: common.runs, pauses: [0.25, 0, 0], [
                        {
                            openblas_set_num_threads(Int32(common.threads))
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, linearWeight ? CblasTrans : CblasNoTrans,
                                        Int32(m), Int32(n), Int32(k), 1, a.data(Float.self), Int32(k),
                                        b.data(Float.self), Int32(linearWeight ? k : n), 0, c.data(Float.self), Int32(n))
                            openblas_set_num_threads(1)
                        },
                        { _ = linearWeight ? linear(a, b) : matmul(a, b) },
                        { _ = Precision.with(.bfloat16, kernel: kernel) { linearWeight ? linear(a, b) : matmul(a, b) } },
                    ])
                    let y = Precision.with(.bfloat16, kernel: kernel) { linearWeight ? linear(a, b) : matmul(a, b) }
                    let error = BF16Bench.sampledError(y.data(Float.self), a: a.data(Float.self), b: b.data(Float.self),
                                                       m: m, n: n, k: k, transposeB: linearWeight)
                    let flops = 2.0 * Double(m * n * k)
                    let (raw, fp32, bf16) = (flops / samples[0].median * 1e-9, flops / samples[1].median * 1e-9,
                                             flops / samples[2].median * 1e-9)
                    let blockingName = kernel == .rounded ? "-"
                        : "\(blocking.rowPanels)×\(blocking.columnPairs)×\(blocking.kChunk)"
                    print("| \(name) | \(kernel) | \(blockingName) | \(fmt(bf16)) | \(fmt(fp32)) | \(fmt(raw)) | "
                          + "\(fmt(bf16 / fp32, 2)) | \(fmt(bf16 / raw, 2)) | \(fmt(error, 2)) |")
                    rows.append(BF16MatmulRow(product: name, kernel: "\(kernel)", blocking: blockingName, bf16GFLOPS: bf16,
                                              fp32GFLOPS: fp32, rawGFLOPS: raw, errorOverBound: error,
                                              bf16: samples[2], fp32: samples[1], raw: samples[0]))
                }
            }
        }
        return rows
    }
}

struct AttentionRow: Codable {
    var pass: String, kernel: String, rowBlock: Int
    var gflops: Double, overFP32: Double
    var samples: Samples
}

extension KernelsCommand {
    /// Causal attention at d12's train shape (B = 4, T = 512, H = 6, hd = 128), forward and
    /// backward, in fp32 and on each bf16 kernel asked for, timed in turn in each round, for
    /// each row block asked for (0: each kernel's own). GFLOPS count the products' multiply-adds over the visible
    /// keys only (forward: QKᵀ and PV; backward: the recomputed QKᵀ, dY Vᵀ, dS K, Pᵀ dY and
    /// dSᵀ Q), so a block that computes more masked scores shows as slower.
    func attentionRows(kernels: [BF16Kernel], blocks: [Int]) -> [AttentionRow] {
        let (batch, t, h, hd) = (4, 512, 6, 128)
        print("\n## Attention: fp32 and bf16 products (B=\(batch) T=\(t) H=\(h) hd=\(hd), \(common.threads) threads, median of \(common.runs))\n")
        print("| pass | row block | products | GFLOPS | ÷ fp32, same rounds |")
        print("|---|---:|---|---:|---:|")
        let shape = AttentionShape(batch: batch, queries: t, heads: h, kvHeads: h, headDim: hd)
        var g = SeededGenerator(seed: 5)
        func random() -> Tensor { Tensor.randomNormal([batch, t, h, hd], generator: &g) }
        let (q, k, v, dy) = (random(), random(), random(), random())
        let y = Tensor(zeros: [batch, t, h, hd]), lse = Tensor(zeros: [batch, h, t])
        let dq = Tensor(zeros: [batch, t, h, hd]), dk = Tensor(zeros: [batch, t, h, hd]), dv = Tensor(zeros: [batch, t, h, hd])
        let (pq, pk, pv, pdy) = (q.data(Float.self), k.data(Float.self), v.data(Float.self), dy.data(Float.self))
        let (py, plse) = (y.data(Float.self), lse.data(Float.self))
        let (pdq, pdk, pdv) = (dq.data(Float.self), dk.data(Float.self), dv.data(Float.self))
        let visible = Double(batch * h) * Double(t * (t + 1) / 2) * Double(hd) * 2
        let kinds: [BF16Kernel?] = [nil] + kernels.filter(\.packs).map { $0 }
        var rows: [AttentionRow] = []
        for (pass, flops) in [("forward", 2 * visible), ("backward", 5 * visible)] {
            for block in blocks {
                let forced = block == 0 ? nil : block
                let bodies: [() -> Void] = kinds.map { kernel in
                    pass == "forward"
                        ? { attentionForward(out: py, lse: plse, q: pq, k: pk, v: pv, shape: shape, bf16: kernel,
                                                rowBlock: forced) }
                        : { attentionBackward(dq: pdq, dk: pdk, dv: pdv, dout: pdy, q: pq, k: pk, v: pv, out: py, lse: plse,
                                              shape: shape, bf16: kernel, rowBlock: forced) }
                }
                attentionForward(out: py, lse: plse, q: pq, k: pk, v: pv, shape: shape,
                                 rowBlock: forced)
                let samples = timeInterleaved(runs: common.runs, bodies)
                for (i, kernel) in kinds.enumerated() {
                    let gflops = flops / samples[i].median * 1e-9
                    let ratios = zip(samples[0].seconds, samples[i].seconds).map { $0 / $1 }.sorted()
                    let over = ratios.isEmpty ? 0 : ratios[ratios.count / 2]
                    let name = kernel.map { "bf16 \($0)" } ?? "fp32"
                    let used = forced ?? attentionRowBlock(for: kernel)
                    print("| \(pass) | \(used) | \(name) | \(fmt(gflops)) | \(kernel == nil ? "-" : fmt(over, 2) + "x") |")
                    rows.append(AttentionRow(pass: pass, kernel: name, rowBlock: used, gflops: gflops, overFP32: over,
                                             samples: samples[i]))
                }
            }
        }
        return rows
    }
}
