// gram: C = alpha·A·Aᵀ + beta·C through syrk bands, against the Double reference; exactly
// symmetric; the same bits on any number of threads.
import Testing
import Tensor

extension TensorTests {
    @Suite struct GramTests {
        /// (n, k): one band (small), and two bands (n·n·k/2 ≥ 2^22) of unequal row counts.
        static let shapes = [(1, 3), (5, 7), (64, 40), (200, 300), (300, 100)]

        @Test(arguments: shapes, [false, true])
        func matchesReferenceAndIsSymmetric(_ s: (Int, Int), transpose: Bool) {
            let (n, k) = s
            // op(A) is n×k: A itself, or stored k×n and transposed (C = AᵀA).
            let a = randn(transpose ? [k, n] : [n, k], seed: UInt64(n * 1000 + k))
            let c0 = randn([n, n], seed: 7).doubles
            // A symmetric C for beta ≠ 0: (c0 + c0ᵀ) / 2.
            let sym = Tensor(shape: [n, n], scalars: (0..<(n * n)).map { (c0[$0] + c0[($0 % n) * n + $0 / n]) / 2 })
            let symValues = sym.doubles
            for (alpha, beta) in [(Float(1), Float(0)), (0.7, 0.5)] {
                let ours = sym.copy()
                gram(transpose: transpose, n: n, k: k, a: a.data(Float.self), c: ours.data(Float.self), alpha: alpha, beta: beta)
                let ref = Tensor(zeros: [n, n], dtype: .float64)
                let a64 = a.copy(dtype: .float64)
                matmulReference(transposeA: transpose, transposeB: !transpose, m: n, n: n, k: k, a: a64.data(Double.self),
                                b: a64.data(Double.self), c: ref.data(Double.self))
                let expected = zip(ref.doubles, symValues).map { Double(alpha) * $0 + Double(beta) * $1 }
                expectClose(ours.doubles, expected, atol: 1e-6 * Double(k), rtol: 1e-5, "gram \(n)x\(k)\(transpose ? " transposed" : "") alpha \(alpha) beta \(beta)")
                let f = ours.floats
                var asymmetric = 0
                for i in 0..<n { for j in 0..<n where f[i * n + j].bitPattern != f[j * n + i].bitPattern { asymmetric += 1 } }
                #expect(asymmetric == 0, "gram \(n)x\(k): \(asymmetric) elements differ from their mirror")
            }
        }

        @Test(arguments: [false, true])
        func sameBitsOnAnyThreadCount(transpose: Bool) {
            let (n, k) = (300, 100)
            let a = randn(transpose ? [k, n] : [n, k], seed: 3)
            var results: [[UInt32]] = []
            for threads in [1, 2, 3, 4] {
                let c = Tensor(zeros: [n, n])
                withThreads(threads) { gram(transpose: transpose, n: n, k: k, a: a.data(Float.self), c: c.data(Float.self)) }
                results.append(c.floats.map(\.bitPattern))
            }
            for (i, r) in results.enumerated().dropFirst() {
                #expect(r == results[0], "gram\(transpose ? " transposed" : "") on \(i + 1) threads differs from one thread")
            }
        }
    }
}
