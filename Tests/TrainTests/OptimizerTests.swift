// The optimisers against hand-computed steps, Newton–Schulz's orthogonality, the schedules.
import Foundation
import Testing
import Tensor
import Train

/// Eigenvalues of a symmetric n×n matrix by cyclic Jacobi rotations, in Double.
func symmetricEigenvalues(_ input: [Double], n: Int) -> [Double] {
    var a = input
    for _ in 0..<100 {
        var off = 0.0
        for p in 0..<n { for q in 0..<n where p != q { off += a[p * n + q] * a[p * n + q] } }
        if off < 1e-22 { break }
        for p in 0..<(n - 1) {
            for q in (p + 1)..<n where abs(a[p * n + q]) > 1e-300 {
                let theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q])
                let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0..<n {   // rotate columns p, q
                    let akp = a[k * n + p], akq = a[k * n + q]
                    a[k * n + p] = c * akp - s * akq
                    a[k * n + q] = s * akp + c * akq
                }
                for k in 0..<n {   // rotate rows p, q
                    let apk = a[p * n + k], aqk = a[q * n + k]
                    a[p * n + k] = c * apk - s * aqk
                    a[q * n + k] = s * apk + c * aqk
                }
            }
        }
    }
    return (0..<n).map { a[$0 * n + $0] }.sorted()
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

    // Singular values of the Newton–Schulz output lie in [0.6, 1.25] (the quintic's band;
    // exact orthogonality would be all ones), for wide and tall matrices.
    @Test(arguments: [(16, 40), (40, 16), (24, 24)])
    func newtonSchulzIsNearlyOrthogonal(_ s: (Int, Int)) {
        let (rows, cols) = s
        var g = SeededGenerator(seed: UInt64(rows * 100 + cols))
        let m = Tensor.randomNormal([rows, cols], generator: &g)
        let x = newtonSchulz(m.data(Float.self), rows: rows, cols: cols).map(Double.init)
        let r = min(rows, cols)
        var gram = [Double](repeating: 0, count: r * r)   // X Xᵀ (wide) or Xᵀ X (tall)
        for i in 0..<r { for j in 0..<r {
            var acc = 0.0
            for k in 0..<max(rows, cols) {
                acc += rows <= cols ? x[i * cols + k] * x[j * cols + k] : x[k * cols + i] * x[k * cols + j]
            }
            gram[i * r + j] = acc
        } }
        let sv = symmetricEigenvalues(gram, n: r).map { max($0, 0).squareRoot() }
        #expect(sv.first! >= 0.6 && sv.last! <= 1.25, "singular values \(sv.first!) ... \(sv.last!)")
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
        func run(threads: Int) -> [UInt32] {
            let old = Parallel.threadCount
            Parallel.setThreadCount(threads)
            defer { Parallel.setThreadCount(old) }
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

    @Test func schedules() {
        #expect(Schedule.lrMultiplier(step: 0, total: 100) == 1)
        #expect(Schedule.lrMultiplier(step: 80, total: 100) == 1)
        #expect(abs(Schedule.lrMultiplier(step: 90, total: 100) - 0.5) < 1e-12)
        #expect(Schedule.lrMultiplier(step: 100, total: 100) == 0)
        #expect(abs(Schedule.lrMultiplier(step: 90, total: 100, finalFraction: 0.1) - 0.55) < 1e-12)
        #expect(abs(Schedule.lrMultiplier(step: 4, total: 100, warmupRatio: 0.1) - 0.5) < 1e-12)
        #expect(Schedule.muonMomentum(step: 0) == 0.85 && Schedule.muonMomentum(step: 300) == 0.95)
        #expect(abs(Schedule.muonMomentum(step: 150) - 0.9) < 1e-12)
    }
}
