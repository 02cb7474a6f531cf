// Matrix products against the naive triple loop, and their gradients.
import Testing
import Tensor

extension TensorTests {
    @Suite struct LinearTests {
        func reference(_ a: Tensor, _ b: Tensor, _ ta: Bool, _ tb: Bool, m: Int, n: Int, k: Int) -> [Double] {
            let out = Tensor(zeros: [m, n])
            matmulReference(transposeA: ta, transposeB: tb, m: m, n: n, k: k,
                            a: a.data(Float.self), b: b.data(Float.self), c: out.data(Float.self))
            return out.doubles
        }

        // Odd sizes: none a multiple of the SIMD width or of OpenBLAS's blocking.
        @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
        func matmulMatchesNaive(_ t: (Bool, Bool)) {
            let (m, n, k) = (7, 13, 29)
            let a = randn(t.0 ? [k, m] : [m, k], seed: 1), b = randn(t.1 ? [n, k] : [k, n], seed: 2)
            let y = matmul(a, b, transposeA: t.0, transposeB: t.1)
            #expect(y.shape == [m, n])
            expectClose(y.doubles, reference(a, b, t.0, t.1, m: m, n: n, k: k), atol: 1e-5, rtol: 1e-5, "matmul \(t)")
            expectGradients([a, b], "matmul \(t)") { matmul($0[0], $0[1], transposeA: t.0, transposeB: t.1) }
        }

        @Test func linearFoldsLeadingAxes() {
            let x = randn([2, 3, 11], seed: 3), w = randn([5, 11], seed: 4)
            let y = linear(x, w)
            #expect(y.shape == [2, 3, 5])
            expectClose(y.doubles, reference(x, w, false, true, m: 6, n: 5, k: 11), atol: 1e-5, rtol: 1e-5, "linear")
            expectGradients([x, w], "linear") { linear($0[0], $0[1]) }
        }

        @Test(arguments: [(false, false), (true, false), (false, true)])
        func batchedMatmul(_ t: (Bool, Bool)) {
            let (bt, m, n, k) = (3, 4, 6, 5)
            let a = randn(t.0 ? [bt, k, m] : [bt, m, k], seed: 5), b = randn(t.1 ? [bt, n, k] : [bt, k, n], seed: 6)
            let y = matmul(a, b, transposeA: t.0, transposeB: t.1)
            #expect(y.shape == [bt, m, n])
            var expected: [Double] = []
            for i in 0..<bt {
                let ai = slice(a, axis: 0, i..<(i + 1)).reshaped(Array(a.shape.dropFirst()))
                let bi = slice(b, axis: 0, i..<(i + 1)).reshaped(Array(b.shape.dropFirst()))
                expected += reference(ai, bi, t.0, t.1, m: m, n: n, k: k)
            }
            expectClose(y.doubles, expected, atol: 1e-5, rtol: 1e-5, "batched matmul \(t)")
            expectGradients([a, b], "batched matmul \(t)") { matmul($0[0], $0[1], transposeA: t.0, transposeB: t.1) }
        }

        /// One row (decoding) goes through sgemv, cut into blocks of outputs when large.
        @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
        func oneRowMatchesNaive(_ t: (Bool, Bool)) {
            for (n, k) in [(13, 29), (3000, 400)] {
                let a = randn(t.0 ? [k, 1] : [1, k], seed: 11), b = randn(t.1 ? [n, k] : [k, n], seed: 12)
                let y = matmul(a, b, transposeA: t.0, transposeB: t.1)
                expectClose(y.doubles, reference(a, b, t.0, t.1, m: 1, n: n, k: k), atol: 1e-4, rtol: 1e-5, "1×\(n)×\(k) \(t)")
            }
            let x = randn([1, 1, 29], seed: 13), w = randn([13, 29], seed: 14)
            expectGradients([x, w], "linear of one row") { linear($0[0], $0[1]) }
        }

        /// The column blocks of the parallel product's grid, by its rule (worked by hand): none
        /// where C is taller than wide or its rows already give 32 blocks of 128; else doubled
        /// while rows × columns fall short of 32, each block at least 128 columns wide and
        /// 2^22 multiply-adds.
        @Test(arguments: [
            (512, 768, 768, 4),      // 4 row blocks; 8 columns would be narrower than 128
            (1024, 512, 64, 1),      // taller than wide
            (64, 64, 64, 1),         // too narrow for two blocks of 128
            (128, 4096, 768, 32),    // one row block: 32 column blocks of 128
            (4096, 4096, 64, 1),     // 32 row blocks already
            (200, 4096, 8, 1),       // 6.6M multiply-adds: two blocks would hold under 2^22 each
            (256, 1024, 256, 8),     // 2 row blocks; 8 blocks of 128 columns, 16 would be narrower
        ] as [(Int, Int, Int, Int)])
        func theColumnGridFollowsItsRule(_ shape: (Int, Int, Int, Int)) {
            #expect(gemmGridColumns(m: shape.0, n: shape.1, k: shape.2) == shape.3)
        }

        /// The reference the products are checked against, by hand-computed values: plain by
        /// default, and each operand transposed when asked.
        @Test func theReferenceProductByHand() {
            let a: [Double] = [1, 2, 3, 4], b: [Double] = [5, 6, 7, 8]   // [[1, 2], [3, 4]], [[5, 6], [7, 8]]
            var c = [Double](repeating: 0, count: 4)
            func product(_ ta: Bool?, _ tb: Bool?) -> [Double] {
                a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in c.withUnsafeMutableBufferPointer { c in
                    if let ta, let tb {
                        matmulReference(transposeA: ta, transposeB: tb, m: 2, n: 2, k: 2, a: a.baseAddress!, b: b.baseAddress!, c: c.baseAddress!)
                    } else {
                        matmulReference(m: 2, n: 2, k: 2, a: a.baseAddress!, b: b.baseAddress!, c: c.baseAddress!)
                    }
                } } }
                return c
            }
            #expect(product(nil, nil) == [19, 22, 43, 50])
            #expect(product(false, false) == [19, 22, 43, 50])
            #expect(product(true, false) == [26, 30, 38, 44])
            #expect(product(false, true) == [17, 23, 39, 53])
            #expect(product(true, true) == [23, 31, 34, 46])
        }

        @Test func singleRowAndEmptyInner() {
            let a = randn([1, 1], seed: 7), b = randn([1, 1], seed: 8)
            #expect(abs(matmul(a, b).item - a.item * b.item) < 1e-6)
            let z = matmul(Tensor(zeros: [3, 0]), Tensor(zeros: [0, 4]))
            #expect(z.shape == [3, 4] && z.doubles.allSatisfy { $0 == 0 })
        }

        /// With an empty inner dimension C becomes beta·C (BLAS may skip the scaling when
        /// k = 0): accumulating (beta 1) keeps C, beta 2 doubles it, beta 0 clears it whatever
        /// it held (NaN included), in both precisions.
        @Test func anEmptyInnerProductScalesCByBeta() {
            let held: [Float] = [1, -2, 3, 4.5, -0.25, 6]
            let a: [Float] = [7], b: [Float] = [7]
            for (beta, expected) in [(Float(1), held), (2, held.map { 2 * $0 }), (0, [Float](repeating: 0, count: 6))] {
                var c = held
                if beta == 0 { c[4] = .nan }
                gemm(m: 2, n: 3, k: 0, a: a, b: b, c: &c, alpha: 1, beta: beta)
                #expect(c == expected, "beta \(beta)")
                var wide = held.map(Double.init)
                if beta == 0 { wide[4] = .nan }
                gemm(m: 3, n: 2, k: 0, a: [Double(7)], b: [Double(7)], c: &wide, alpha: 1, beta: Double(beta))
                #expect(wide == expected.map(Double.init), "beta \(beta), Double")
                for kernel in BF16Kernel.allCases where kernel.available {
                    var c = held
                    if beta == 0 { c[4] = .nan }
                    a.withUnsafeBufferPointer { a in c.withUnsafeMutableBufferPointer { c in
                        bf16Gemm(kernel: kernel, transposeA: false, m: 2, n: 3, k: 0, a: a.baseAddress!, lda: 1,
                                 b: .floats(a.baseAddress!, ld: 3, transposed: false), c: c.baseAddress!, ldc: 3, beta: beta)
                    } }
                    #expect(c == expected, "beta \(beta), bf16 \(kernel)")
                }
            }
        }
    }
}
