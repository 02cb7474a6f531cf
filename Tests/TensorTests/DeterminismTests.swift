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

        /// Products big enough for `gemm` to cut into blocks (≥ 2^23 multiply-adds): by rows
        /// (tall), by columns (wide), transposed operands, forward and both backward products.
        @Test func splitMatrixProducts() {
            expectSameBits("tall matmul", [randn([600, 200], seed: 20), randn([200, 100], seed: 21)]) { matmul($0[0], $0[1]) }
            expectSameBits("wide linear", [randn([40, 512], seed: 22), randn([1200, 512], seed: 23)]) { linear($0[0], $0[1]) }
            expectSameBits("decode-like", [randn([1, 1536], seed: 24), randn([6144, 1536], seed: 25)]) { linear($0[0], $0[1]) }
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
