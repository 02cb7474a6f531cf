// One thread and two threads give identical bits: work is split into fixed ranges and no
// float is combined in an order that depends on the split.
import Testing
import Tensor

extension TensorTests {
    @Suite struct DeterminismTests {
        /// Runs a forward and backward under n threads; returns output and gradient bits.
        func run(_ n: Int, _ inputs: [Tensor], _ f: ([Tensor]) -> Tensor) -> [[UInt32]] {
            withThreads(n) {
                let xs = inputs.map { $0.copy(requiresGrad: true) }
                let y = f(xs)
                let seed = randn(y.shape, seed: 99)
                y.backward(seed: seed)
                return ([y] + xs.map { $0.grad! }).map { $0.floats.map(\.bitPattern) }
            }
        }

        func expectSameBits(_ label: String, _ inputs: [Tensor], _ f: ([Tensor]) -> Tensor) {
            let one = run(1, inputs, f), two = run(2, inputs, f)
            for (i, (a, b)) in zip(one, two).enumerated() {
                let diff = zip(a, b).filter { $0 != $1 }.count
                #expect(diff == 0, "\(label): tensor \(i) differs in \(diff) of \(a.count) elements between 1 and 2 threads")
            }
        }

        @Test func pointwiseAndBinary() {
            let x = randn([100_003], seed: 1)
            expectSameBits("silu", [x]) { silu($0[0]) }
            expectSameBits("softplus", [x]) { softplus($0[0]) }
            expectSameBits("tanh", [x]) { tanh($0[0]) }
            expectSameBits("broadcast mul", [randn([500, 300], seed: 2), randn([300], seed: 3)]) { $0[0] * $0[1] }
        }

        /// Products big enough for `gemm` to cut into blocks (≥ 2^23 multiply-adds): 600 rows
        /// (one block of rows per worker), 40 rows by 1200 columns (shape-only column blocks),
        /// one row (sgemv blocks); transposed operands, forward and both backward products.
        @Test func splitMatrixProducts() {
            expectSameBits("tall matmul", [randn([600, 200], seed: 20), randn([200, 100], seed: 21)]) { matmul($0[0], $0[1]) }
            expectSameBits("wide linear", [randn([40, 512], seed: 22), randn([1200, 512], seed: 23)]) { linear($0[0], $0[1]) }
            expectSameBits("decode-like", [randn([1, 1536], seed: 24), randn([6144, 1536], seed: 25)]) { linear($0[0], $0[1]) }
        }

        /// Products of 256 rows or more are cut into blocks of rows per worker, at multiples of
        /// the granularity found on this machine's OpenBLAS, inside column blocks chosen from the
        /// shape: any number of threads must give the bits of those column blocks computed by
        /// one sgemm call each (of one call, where the shape takes no column cuts). The shapes
        /// are a d12 train step's (512 tokens, width 768, MLP 3072, vocabulary 8192), weight
        /// gradients over many tokens (cut both ways) and a Mamba x_proj's (80 rows: columns
        /// only), in all four transposes, with beta 0 and beta 1.
        @Test func rowBlocksEqualOneCall() throws {
            let g = try #require(GemmRowSplit.granularity(Float.self),
                                 "no row granularity found: gemm falls back to shape-only blocks here")
            #expect(g <= 192)
            let shapes = [(512, 768, 768), (768, 768, 512), (512, 3072, 768), (3072, 768, 512),
                          (512, 768, 3072), (8192, 768, 512), (300, 200, 100), (768, 768, 1024), (80, 1536, 1024)]
            for (m, n, k) in shapes {
                for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                    for beta: Float in [0, 1] {
                        let a = randn(ta ? [k, m] : [m, k], seed: 31), b = randn(tb ? [n, k] : [k, n], seed: 32)
                        let c0 = randn([m, n], seed: 33)
                        let one = c0.copy()
                        // One call per column block, at the multiples of 64 nearest j·n / blocks.
                        let columns = gemmGridColumns(m: m, n: n, k: k)
                        let cuts = (0...columns).map { $0 == columns ? n : ($0 * n / columns + 32) / 64 * 64 }
                        for (lo, hi) in zip(cuts, cuts.dropFirst()) where lo < hi {
                            Float.gemm(transposeA: ta, transposeB: tb, m: m, n: hi - lo, k: k, alpha: 1,
                                       a: a.data(Float.self), lda: ta ? m : k, b: b.data(Float.self) + (tb ? lo * k : lo),
                                       ldb: tb ? k : n, beta: beta, c: one.data(Float.self) + lo, ldc: n)
                        }
                        for threads in [1, 2, 3, 4, 16] {
                            let ours = c0.copy()
                            withThreads(threads) {
                                gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, a: a.data(Float.self),
                                     b: b.data(Float.self), c: ours.data(Float.self), beta: beta)
                            }
                            let diff = zip(one.floats, ours.floats).filter { $0.bitPattern != $1.bitPattern }.count
                            #expect(diff == 0, "\(m)x\(n)x\(k) \(ta ? "T" : "N")\(tb ? "T" : "N") beta \(beta), \(threads) threads: \(diff) of \(m * n) elements differ from one sgemm call per column block")
                        }
                    }
                }
            }
        }

        @Test func normsLookupsAndReductions() {
            expectSameBits("rmsnorm", [randn([300, 768], seed: 4)]) { rmsNorm($0[0]) }
            let ids = randomIDs([4, 500], below: 50, seed: 5)
            expectSameBits("embedding", [randn([50, 64], seed: 6)]) { embedding($0[0], ids) }
            expectSameBits("sum", [randn([300_000], seed: 7)]) { scale(sum($0[0]), 1).reshaped([1]) }
        }

        @Test func attentionAndLoss() {
            let q = randn([2, 200, 4, 32], seed: 8), k = randn([2, 200, 2, 32], seed: 9), v = randn([2, 200, 2, 32], seed: 10)
            expectSameBits("attention", [q, k, v]) { causalAttention($0[0], $0[1], $0[2]) }
            let targets = randomIDs([4, 64], below: 500, seed: 11)
            expectSameBits("cross entropy", [randn([4, 64, 500], seed: 12)]) {
                crossEntropy($0[0], targets: targets).reshaped([1])
            }
        }
    }
}
