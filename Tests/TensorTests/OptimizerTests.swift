// The optimisers against hand-computed steps, and Newton–Schulz's orthogonality.
import CLAPACKE
import Foundation
import Testing
import Tensor

/// The thin SVD of a rows × cols matrix (row-major, Double) by LAPACK's dgesvd: U (rows × r),
/// σ (r, descending), Vᵀ (r × cols), r = min(rows, cols).
func singularValueDecomposition(_ a: [Double], rows: Int, cols: Int) -> (u: [Double], s: [Double], vt: [Double]) {
    let r = min(rows, cols)
    var work = a, s = [Double](repeating: 0, count: r), u = [Double](repeating: 0, count: rows * r)
    var vt = [Double](repeating: 0, count: r * cols), superb = [Double](repeating: 0, count: max(1, r - 1))
    let info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "S")), CChar(UInt8(ascii: "S")),
                              Int32(rows), Int32(cols), &work, Int32(cols), &s, &u, Int32(r), &vt, Int32(cols), &superb)
    precondition(info == 0, "dgesvd failed: info \(info)")
    return (u, s, vt)
}

@Suite struct OptimizerTests {
    @Test func adamWTwoStepsByHand() {
        let p = Tensor(shape: [1], scalars: [1.0], requiresGrad: true)
        let opt = AdamW(parameters: [p], lrs: [0.1], betas: (0.8, 0.95), epsilon: 1e-10, weightDecay: 0)
        p.gradData(Float.self)[0] = 0.5
        opt.update(lrMultiplier: 1)
        // m = 0.1, v = 0.0125; m̂ = 0.5, v̂ = 0.25: p = 1 - 0.1 · 0.5/0.5 = 0.9
        #expect(abs(p.item - 0.9) < 1e-6, "\(p.item)")
        p.gradData(Float.self)[0] = -0.25
        opt.update(lrMultiplier: 1)
        // m = 0.03, v = 0.015; m̂ = 0.03/0.36, v̂ = 0.015/0.0975: p = 0.9 - 0.1 · 0.2124591
        #expect(abs(p.item - 0.87875409) < 1e-6, "\(p.item)")
        // Weight decay multiplies p by 1 - lr·wd first; an lr multiplier scales the rate.
        let q = Tensor(shape: [1], scalars: [2.0], requiresGrad: true)
        let decayed = AdamW(parameters: [q], lrs: [0.1], betas: (0.8, 0.95), epsilon: 1e-10, weightDecay: 0.5)
        q.gradData(Float.self)[0] = 1
        decayed.update(lrMultiplier: 0.5)
        #expect(abs(q.item - (2 * (1 - 0.05 * 0.5) - 0.05)) < 1e-6, "\(q.item)")
    }

    /// Against the exact SVD G = U Σ Vᵀ (LAPACK, Double): Newton–Schulz is an odd polynomial
    /// in G, so its output is U f(Σ) Vᵀ with the same singular vectors; Uᵀ X V must be
    /// diagonal to Float rounding (off-diagonal ≤ 1e-4), and each f(σ) must lie in the
    /// quintic's band [0.6, 1.25] around the polar factor U Vᵀ (whose values would all be 1).
    @Test(arguments: [(16, 40), (40, 16), (24, 24), (48, 300)])
    func newtonSchulzApproximatesThePolarFactor(_ shape: (Int, Int)) {
        let (rows, cols) = shape, r = min(rows, cols)
        var g = SeededGenerator(seed: UInt64(rows * 100 + cols))
        let m = Tensor.randomNormal([rows, cols], generator: &g)
        let x = newtonSchulz(m.data(Float.self), rows: rows, cols: cols).map { Double($0) }
        let (u, sigma, vt) = singularValueDecomposition(m.doubles, rows: rows, cols: cols)
        #expect(sigma.last! > 1e-3 * sigma.first!, "the test matrix is far from singular")
        var offDiagonal = 0.0, band = (low: Double.infinity, high: -Double.infinity)
        for i in 0..<r {
            for j in 0..<r {   // (Uᵀ X V)[i, j] = Σ_a Σ_b U[a, i] X[a, b] Vᵀ[j, b]
                var acc = 0.0
                for a in 0..<rows {
                    var row = 0.0
                    for b in 0..<cols { row += x[a * cols + b] * vt[j * cols + b] }
                    acc += u[a * r + i] * row
                }
                if i == j { band = (min(band.low, acc), max(band.high, acc)) } else { offDiagonal = max(offDiagonal, abs(acc)) }
            }
        }
        #expect(offDiagonal <= 1e-4, "Uᵀ X V is not diagonal: off-diagonal up to \(offDiagonal)")
        #expect(band.low >= 0.6 && band.high <= 1.25, "singular values \(band.low) ... \(band.high), outside [0.6, 1.25]")
    }

    /// A tall matrix is orthogonalised in its own layout (A = XᵀX, X = aX + XB): the result
    /// is the transpose of the wide form's on the transposed input.
    @Test func tallNewtonSchulzIsTheWideOneTransposed() {
        let (rows, cols) = (40, 16)
        var g = SeededGenerator(seed: 5)
        let m = Tensor.randomNormal([rows, cols], generator: &g)
        let t = Tensor(shape: [cols, rows], scalars: (0..<(rows * cols)).map { m.doubles[($0 % rows) * cols + $0 / rows] })
        let tall = newtonSchulz(m.data(Float.self), rows: rows, cols: cols).map(Double.init)
        let wide = newtonSchulz(t.data(Float.self), rows: cols, cols: rows).map(Double.init)
        var worst = 0.0
        for i in 0..<rows { for j in 0..<cols { worst = max(worst, abs(tall[i * cols + j] - wide[j * rows + i])) } }
        #expect(worst < 1e-5, "tall and transposed wide differ by \(worst)")
    }

    /// Muon orthogonalises its matrices side by side, each serially on one worker: the same
    /// bits as on one thread, for square, wide, tall and small matrices.
    @Test func muonSideBySideKeepsTheBitsOfOneThread() {
        func run(threads: Int) -> [UInt32] { Parallel.withThreadCount(threads) { runHere() } }
        func runHere() -> [UInt32] {
            var g = SeededGenerator(seed: 21)
            let shapes = [[200, 200], [128, 400], [400, 128], [5, 7], [48, 300]]
            let ps = shapes.map { s -> Tensor in
                let p = Tensor.randomNormal(s, generator: &g)
                p.requiresGrad = true
                return p
            }
            let muon = Muon(parameters: ps, lr: 0.02)
            for _ in 0..<2 {
                for p in ps {
                    let grad = Tensor.randomNormal(p.shape, generator: &g)
                    p.gradData(Float.self).update(from: grad.data(Float.self), count: p.count)
                }
                muon.update(lrMultiplier: 1, momentum: 0.9, gradScale: 0.5)
                for p in ps { p.zeroGrad() }
            }
            return (ps + muon.buffers).flatMap { $0.floats.map(\.bitPattern) }
        }
        #expect(run(threads: 1) == run(threads: 2))
    }

    @Test func muonStepIsScaledNewtonSchulzOfNesterovMomentum() {
        var g = SeededGenerator(seed: 9)
        let p = Tensor.randomNormal([12, 6], generator: &g)
        p.requiresGrad = true
        let grad = Tensor.randomNormal([12, 6], generator: &g)
        let before = p.doubles
        p.gradData(Float.self).update(from: grad.data(Float.self), count: 72)
        Muon(parameters: [p], lr: 0.02).update(lrMultiplier: 1, momentum: 0.85)
        // buf = 0.15 g, nesterov = 0.2775 g; NS normalises the scale away.
        let x = newtonSchulz(grad.data(Float.self), rows: 12, cols: 6).map(Double.init)
        let scale = 0.02 * 2.0.squareRoot()   // max(1, 12/6)^½
        var worst = 0.0
        for j in 0..<72 { worst = max(worst, abs(p.doubles[j] - (before[j] - scale * x[j]))) }
        #expect(worst < 1e-5, "Muon step differs by \(worst)")
    }

    /// Two steps with unrelated gradients: the second step's direction depends on how the
    /// momentum buffer and the new gradient are mixed (after one step from a zero buffer,
    /// every mix is a multiple of the gradient, which Newton–Schulz normalises away).
    @Test func muonSecondStepMixesMomentumAsNesterov() {
        var g = SeededGenerator(seed: 13)
        let (rows, cols) = (10, 6), count = 60
        let p = Tensor.randomNormal([rows, cols], generator: &g)
        p.requiresGrad = true
        let g1 = Tensor.randomNormal([rows, cols], generator: &g).floats
        let g2 = Tensor.randomNormal([rows, cols], generator: &g).floats
        let muon = Muon(parameters: [p], lr: 0.02)
        let (mu1, mu2): (Float, Float) = (0.85, 0.9)
        p.gradData(Float.self).update(from: g1, count: count)
        muon.update(lrMultiplier: 1, momentum: Double(mu1))
        let afterFirst = p.doubles
        p.gradData(Float.self).update(from: g2, count: count)
        muon.update(lrMultiplier: 1, momentum: Double(mu2))
        // buf₁ = (1-μ₁) g₁;  buf₂ = buf₁ + (1-μ₂)(g₂ - buf₁);  update = g₂ + μ₂ (buf₂ - g₂)
        var nesterov = [Float](repeating: 0, count: count)
        for j in 0..<count {
            let buf1 = (1 - mu1) * g1[j]
            let buf2 = buf1 + (1 - mu2) * (g2[j] - buf1)
            nesterov[j] = g2[j] + mu2 * (buf2 - g2[j])
        }
        let x = nesterov.withUnsafeBufferPointer { newtonSchulz($0.baseAddress!, rows: rows, cols: cols) }.map { Double($0) }
        let scale = 0.02 * (Double(rows) / Double(cols)).squareRoot()
        var worst = 0.0
        for j in 0..<count { worst = max(worst, abs(p.doubles[j] - (afterFirst[j] - scale * x[j]))) }
        #expect(worst < 1e-5, "Muon's second step differs by \(worst)")
    }

    /// Newton–Schulz by value: nanochat's quintic iteration written out in Double with its
    /// coefficients as literals (a, b, c) = (3.4445, -4.7750, 2.0315), on a wide and a tall
    /// matrix, five steps.
    @Test func newtonSchulzIsNanochatsQuinticIteration() {
        func reference(_ g: [Double], rows: Int, cols: Int) -> [Double] {
            // On the wide form: X (r × n) with r ≤ n.
            let tall = rows > cols, r = min(rows, cols), n = max(rows, cols)
            var x = [Double](repeating: 0, count: r * n)
            for i in 0..<rows { for j in 0..<cols { if tall { x[j * n + i] = g[i * cols + j] } else { x[i * n + j] = g[i * cols + j] } } }
            let norm = g.reduce(0) { $0 + $1 * $1 }.squareRoot() + 1e-7
            x = x.map { $0 / norm }
            for _ in 0..<5 {
                var a = [Double](repeating: 0, count: r * r)
                for i in 0..<r { for j in 0..<r { for k in 0..<n { a[i * r + j] += x[i * n + k] * x[j * n + k] } } }
                var b = a.map { -4.7750 * $0 }
                for i in 0..<r { for j in 0..<r { for k in 0..<r { b[i * r + j] += 2.0315 * a[i * r + k] * a[k * r + j] } } }
                var next = x.map { 3.4445 * $0 }
                for i in 0..<r { for j in 0..<n { for k in 0..<r { next[i * n + j] += b[i * r + k] * x[k * n + j] } } }
                x = next
            }
            var out = [Double](repeating: 0, count: rows * cols)
            for i in 0..<rows { for j in 0..<cols { out[i * cols + j] = tall ? x[j * n + i] : x[i * n + j] } }
            return out
        }
        let g: [Float] = [0.3, -1.2, 0.5, 2.0, -0.7, 1.1, 0.4, -0.9, 0.8, 0.05, -1.5, 0.6, 0.25, -0.35, 1.3]
        for (rows, cols) in [(3, 5), (5, 3)] {
            let ours = g.withUnsafeBufferPointer { newtonSchulz($0.baseAddress!, rows: rows, cols: cols) }
            let want = reference(g.map(Double.init), rows: rows, cols: cols)
            let worst = zip(ours, want).map { abs(Double($0) - $1) }.max() ?? 1
            #expect(worst < 2e-5, "\(rows)×\(cols): largest difference \(worst)")
        }
    }
}
