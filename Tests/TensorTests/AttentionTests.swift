// Fused causal attention against the naive one-query-at-a-time reference: grouped KV heads,
// several row blocks, T = 1, huge scores, queries over a longer key cache; and gradcheck.
import Testing
import Tensor

extension TensorTests {
    @Suite struct AttentionTests {
        func naive(_ q: Tensor, _ k: Tensor, _ v: Tensor, keys: Int? = nil) -> [Double] {
            let shape = AttentionShape(batch: q.shape[0], queries: q.shape[1], keys: keys ?? k.shape[1],
                                       heads: q.shape[2], kvHeads: k.shape[2], headDim: q.shape[3])
            let y = Tensor(zeros: q.shape)
            attentionForwardReference(out: y.data(Float.self), q: q.data(Float.self), k: k.data(Float.self),
                                      v: v.data(Float.self), shape: shape)
            return y.doubles
        }

        // (B, T, H, KV, hd): T = 1, T across a block boundary (128), grouped heads, odd hd.
        @Test(arguments: [(1, 1, 2, 2, 8), (2, 7, 4, 2, 20), (1, 130, 2, 1, 16), (2, 300, 3, 3, 33)])
        func forwardMatchesNaive(_ s: (Int, Int, Int, Int, Int)) {
            let (b, t, h, kv, hd) = s
            let q = randn([b, t, h, hd], seed: 1), k = randn([b, t, kv, hd], seed: 2), v = randn([b, t, kv, hd], seed: 3)
            expectClose(causalAttention(q, k, v).doubles, naive(q, k, v), atol: 2e-5, rtol: 1e-4, "attention \(s)")
        }

        @Test func hugeScoresStayFinite() {
            // Scores of order ±1e4: the softmax is one-hot and must not overflow. 40 positions,
            // so the later rows' largest score is found 16 lanes at a time.
            let q = scale(randn([1, 40, 2, 16], seed: 4), 100), k = scale(randn([1, 40, 2, 16], seed: 5), 100)
            let v = randn([1, 40, 2, 16], seed: 6)
            let y = causalAttention(q, k, v)
            #expect(y.doubles.allSatisfy { $0.isFinite })
            expectClose(y.doubles, naive(q, k, v), atol: 1e-4, rtol: 1e-4, "attention, huge scores")
        }

        @Test func queriesOverLongerKeyCache() {
            // The last 3 queries over all 11 keys (as decoding with a KV cache) equal the last 3
            // rows of full attention.
            let (t, tq, h, hd) = (11, 3, 2, 8)
            let q = randn([1, t, h, hd], seed: 7), k = randn([1, t, h, hd], seed: 8), v = randn([1, t, h, hd], seed: 9)
            let full = causalAttention(q, k, v).doubles
            let qTail = slice(q, axis: 1, (t - tq)..<t)
            let y = Tensor(zeros: [1, tq, h, hd]), lse = Tensor(zeros: [1, h, tq])
            attentionForward(out: y.data(Float.self), lse: lse.data(Float.self), q: qTail.data(Float.self),
                             k: k.data(Float.self), v: v.data(Float.self),
                             shape: AttentionShape(batch: 1, queries: tq, keys: t, heads: h, kvHeads: h, headDim: hd))
            expectClose(y.doubles, Array(full.suffix(tq * h * hd)), atol: 1e-5, rtol: 1e-5, "cached keys")
            expectClose(naive(qTail, k, v, keys: t), Array(full.suffix(tq * h * hd)), atol: 1e-5, rtol: 1e-5, "naive cached")
        }

        /// Every row block gives the same attention to fp32 rounding, forward and backward: 16
        /// rows, 100 (blocks that end mid-way through a 32-row panel), the kernels' own 128 and
        /// 256, and one block over all 300 queries; in fp32 and on every packed bf16 kernel this
        /// CPU runs; the same bits on 1 and 3 threads.
        @Test(arguments: [16, 100, 256, 300], [BF16Kernel?.none] + BF16Kernel.allCases.filter { $0.packs && $0.available })
        func everyRowBlockAgrees(_ block: Int, _ bf16: BF16Kernel?) {
            let (b, t, h, kv, hd) = (1, 300, 2, 1, 16)
            let shape = AttentionShape(batch: b, queries: t, heads: h, kvHeads: kv, headDim: hd)
            let q = randn([b, t, h, hd], seed: 21), k = randn([b, t, kv, hd], seed: 22), v = randn([b, t, kv, hd], seed: 23)
            let dy = randn([b, t, h, hd], seed: 24)
            func run(_ rowBlock: Int, threads: Int) -> [[Float]] {
                let y = Tensor(zeros: q.shape), lse = Tensor(zeros: [b, h, t])
                let dq = Tensor(zeros: q.shape), dk = Tensor(zeros: k.shape), dv = Tensor(zeros: v.shape)
                withThreads(threads) {
                    attentionForward(out: y.data(Float.self), lse: lse.data(Float.self), q: q.data(Float.self),
                                     k: k.data(Float.self), v: v.data(Float.self), shape: shape, bf16: bf16,
                                     rowBlock: rowBlock)
                    attentionBackward(dq: dq.data(Float.self), dk: dk.data(Float.self), dv: dv.data(Float.self),
                                      dout: dy.data(Float.self), q: q.data(Float.self), k: k.data(Float.self),
                                      v: v.data(Float.self), out: y.data(Float.self), lse: lse.data(Float.self),
                                      shape: shape, bf16: bf16, rowBlock: rowBlock)
                }
                return [y.floats, lse.floats, dq.floats, dk.floats, dv.floats]
            }
            let got = run(block, threads: 1), standard = run(128, threads: 1)
            #expect(run(block, threads: 3) == got, "row block \(block), \(String(describing: bf16)): 1 and 3 threads differ")
            for (i, name) in ["y", "lse", "dq", "dk", "dv"].enumerated() {
                expectClose(got[i].map(Double.init), standard[i].map(Double.init), atol: 1e-5, rtol: 1e-4,
                            "row block \(block) \(name), \(String(describing: bf16))")
            }
            if bf16 == nil { expectClose(got[0].map(Double.init), naive(q, k, v), atol: 2e-5, rtol: 1e-4, "row block \(block) vs naive") }
        }

        @Test(arguments: [(2, 5, 4, 2, 6), (1, 1, 2, 1, 4), (1, 131, 2, 2, 3)])
        func backwardPassesGradcheck(_ s: (Int, Int, Int, Int, Int)) {
            let (b, t, h, kv, hd) = s
            let q = randn([b, t, h, hd], seed: 10), k = randn([b, t, kv, hd], seed: 11), v = randn([b, t, kv, hd], seed: 12)
            expectGradients([q, k, v], "attention \(s)", maxElementsPerInput: 200) { causalAttention($0[0], $0[1], $0[2]) }
        }
    }
}
