// bf16 products (bf16 operands, fp32 sums) on every kernel this CPU runs, against a Double
// reference on the same rounded operands; the rounding itself; the cut and the thread count
// changing no bit; packed weights; gradients through the tape.
import Testing
import Tensor

extension TensorTests {
    @Suite struct MatmulBF16Tests {
        /// The kernels this machine runs: always the portable and rounded ones, plus AMX and
        /// AVX512_BF16 where the CPU has them (so each CPU of CI tests what it would run).
        static let kernels = BF16Kernel.allCases.filter(\.available)

        /// AMX runs wherever the CPU has bf16 tiles the OS saves (and AVX-512, as the kernel
        /// needs): a permission check gone wrong would fall back to slower kernels whose
        /// products are as right, so nothing else would notice. Elsewhere it is not offered.
        @Test func amxRunsWhereTheCPUHasIt() {
            let cpu = CPUFacts.host
            guard cpu.amxTile && cpu.amxBF16 && cpu.osAMX else {
                #expect(!BF16Kernel.amx.available)
                return
            }
            if BF16Kernel.avx512bf16.available {
                #expect(BF16Kernel.amx.available, "AMX refused on an AMX CPU: \(BF16Kernel.amx.refusal ?? "")")
            }
        }

        /// The reference on bf16-rounded operands in Double, and Σ|a·b| per output: fp32
        /// accumulation of k exact products errs by at most about k·2⁻²⁴ of that sum.
        func reference(_ a: Tensor, _ b: Tensor, _ ta: Bool, _ tb: Bool, m: Int, n: Int, k: Int) -> (value: [Double], bound: [Double]) {
            let pa = a.floats.map { Double(roundedToBF16($0)) }, pb = b.floats.map { Double(roundedToBF16($0)) }
            var value = [Double](repeating: 0, count: m * n), bound = value
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0, abs = 0.0
                    for p in 0..<k {
                        let x = ta ? pa[p * m + i] : pa[i * k + p], y = tb ? pb[j * k + p] : pb[p * n + j]
                        s += x * y; abs += Swift.abs(x * y)
                    }
                    value[i * n + j] = s
                    bound[i * n + j] = Double(k + 2) * 0x1p-24 * abs + 1e-30
                }
            }
            return (value, bound)
        }

        func expectWithin(_ got: [Double], _ ref: (value: [Double], bound: [Double]), _ label: String,
                          sourceLocation: SourceLocation = #_sourceLocation) {
            var worst = 0, ratio = 0.0
            for i in got.indices {
                let r = Swift.abs(got[i] - ref.value[i]) / ref.bound[i]
                if !(r <= ratio) { ratio = r; worst = i }
            }
            let message = "\(label): worst at \(worst): got \(got[worst]), reference \(ref.value[worst]), "
                + "|diff| \(Swift.abs(got[worst] - ref.value[worst])) > bound \(ref.bound[worst])"
            #expect(ratio <= 1, Comment(rawValue: message), sourceLocation: sourceLocation)
        }

        @Test func roundingIsToNearestEven() {
            // 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷: ties go to the even (1).
            #expect(roundedToBF16(1 + 0x1p-8) == 1)
            // 1 + 3·2⁻⁸ is halfway between 1 + 2⁻⁷ and 1 + 2⁻⁶: to the even, 1 + 2⁻⁶.
            #expect(roundedToBF16(1 + 3 * 0x1p-8) == 1 + 0x1p-6)
            #expect(roundedToBF16(1 + 0x1p-8 + 0x1p-20) == 1 + 0x1p-7)
            #expect(roundedToBF16(-1.00390625) == -1)
            #expect(roundedToBF16(.greatestFiniteMagnitude) == .infinity)   // past bf16's largest finite value
            #expect(roundedToBF16(.infinity) == .infinity)
            #expect(roundedToBF16(-.infinity) == -.infinity)
            #expect(roundedToBF16(.nan).isNaN)
            #expect(roundedToBF16(Float(bitPattern: 0x7f80_0001)).isNaN)   // a NaN whose rounding would carry into inf
            #expect(roundedToBF16(0x1p-130) == 0x1p-130)              // denormals kept, as PyTorch does
            #expect(roundedToBF16(-0.0).sign == .minus)
            // Every bf16 value is its own rounding.
            for bits in stride(from: UInt32(0), to: 0x7f80_0000, by: 0x0001_0000 * 37) {
                let x = Float(bitPattern: bits)
                #expect(roundedToBF16(x) == x)
            }
        }

        // Shapes that hit every edge: a few rows (the decoding kernel); rows, columns and K off
        // every multiple of 16 and 32, rows one past one (a last panel of A holding one row);
        // K over two chunks of the standard 1024 (the second chunk adds to the first's sums,
        // as a d12 MLP's 3072-wide K does); many blocks; one output column (a matrix times a
        // vector), a single output, and a K of 1.
        static let shapes = [(5, 37, 61), (1, 300, 96), (15, 17, 33), (70, 45, 77), (40, 33, 100), (130, 300, 600),
                             (40, 70, 1100), (33, 20, 45), (20, 1, 50), (1, 1, 40), (6, 9, 1)]

        @Test(arguments: kernels)
        func productsMatchTheReference(_ kernel: BF16Kernel) {
            for (index, (m, n, k)) in Self.shapes.enumerated() {
                for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                    let seed = UInt64(10 * index)
                    let a = randn(ta ? [k, m] : [m, k], seed: seed + 1), b = randn(tb ? [n, k] : [k, n], seed: seed + 2)
                    let y = Precision.with(.bfloat16, kernel: kernel) { matmul(a, b, transposeA: ta, transposeB: tb) }
                    let ref = reference(a, b, ta, tb, m: m, n: n, k: k)
                    expectWithin(y.doubles, ref, "\(kernel) \(m)×\(n)×\(k) \(ta) \(tb)")
                    // The library's own reference sums the same Double products in the same order,
                    // and writes nothing past its m × n outputs (here one float past, set to 7).
                    var own = [Float](repeating: 0, count: m * n + 1)
                    own[m * n] = 7
                    own.withUnsafeMutableBufferPointer { c in
                        matmulBF16Reference(transposeA: ta, transposeB: tb, m: m, n: n, k: k,
                                            a: a.data(Float.self), b: b.data(Float.self), c: c.baseAddress!)
                    }
                    #expect(Array(own.dropLast()) == ref.value.map { Float($0) } && own.last == 7,
                            "matmulBF16Reference \(m)×\(n)×\(k) \(ta) \(tb)")
                }
            }
        }

        /// Small integers are bf16 values whose products and sums fp32 holds exactly, so every
        /// kernel must give the integer sums bit for bit, whatever its order; a row of A and a
        /// column of B that are all zero give outputs of exactly 0 (an accumulator that did not
        /// start at 0 shows there only: the bound above lets through anything under 1e-30).
        @Test(arguments: kernels)
        func integerOperandsGiveExactSums(_ kernel: BF16Kernel) {
            for (m, n, k) in [(3, 40, 70), (50, 40, 70)] {
                func integer(_ i: Int, _ p: Int, zero: Bool) -> Float { zero ? 0 : Float((i * 5 + p * 3) % 7 - 3) }
                // A's row 1 and B's column 2 are zero.
                let a = Tensor(shape: [m, k], scalars: (0..<(m * k)).map { integer($0 / k, $0 % k, zero: $0 / k == 1) })
                let b = Tensor(shape: [k, n], scalars: (0..<(k * n)).map { integer($0 % n + 5, $0 / n, zero: $0 % n == 2) })
                // The reference's Double sums of these integers are exact.
                let expected = reference(a, b, false, false, m: m, n: n, k: k).value.map { Float($0) }
                #expect(expected.filter { $0 == 0 }.count >= m + n - 1 && expected.contains { abs($0) > 100 })
                let y = Precision.with(.bfloat16, kernel: kernel) { matmul(a, b) }
                #expect(y.floats == expected, "\(kernel) \(m)×\(n)×\(k)")
            }
        }

        /// The bound has teeth: fp32 products of the unrounded operands miss it.
        @Test func theBoundRejectsUnroundedOperands() {
            let (m, n, k) = (40, 33, 100)
            let a = randn([m, k], seed: 1), b = randn([k, n], seed: 2)
            let ref = reference(a, b, false, false, m: m, n: n, k: k)
            let fp32 = matmul(a, b).doubles
            let missed = fp32.indices.filter { Swift.abs(fp32[$0] - ref.value[$0]) > ref.bound[$0] }.count
            #expect(missed > fp32.count / 2, "only \(missed) of \(fp32.count) fp32 outputs fall outside the bf16 bound")
        }

        /// alpha, beta (alpha 0 with beta 1 leaves C as it was), leading dimensions wider
        /// than the matrices, and a C that holds NaN where beta is 0 (it must not be read).
        @Test(arguments: kernels)
        func alphaBetaAndStrides(_ kernel: BF16Kernel) {
            for (m, n, k) in [(3, 20, 40), (50, 40, 70)] {
                let (lda, ldb, ldc) = (k + 5, n + 3, n + 7)
                let a = randn([m, lda], seed: 3), b = randn([k, ldb], seed: 4), c0 = randn([m, ldc], seed: 5)
                let compactA = Tensor(shape: [m, k], scalars: (0..<(m * k)).map { a.floats[($0 / k) * lda + $0 % k] })
                let compactB = Tensor(shape: [k, n], scalars: (0..<(k * n)).map { b.floats[($0 / n) * ldb + $0 % n] })
                let ref = reference(compactA, compactB, false, false, m: m, n: n, k: k)
                for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (1, 1), (0, 1), (2, -0.5)] {
                    let c = c0.copy()
                    if beta == 0 { for i in 0..<m { for j in 0..<n { c.data(Float.self)[i * ldc + j] = .nan } } }
                    bf16Gemm(kernel: kernel, transposeA: false, m: m, n: n, k: k, a: a.data(Float.self), lda: lda,
                             b: .floats(b.data(Float.self), ld: ldb, transposed: false), c: c.data(Float.self), ldc: ldc,
                             alpha: alpha, beta: beta)
                    var got: [Double] = [], expected: [Double] = [], bound: [Double] = []
                    for i in 0..<m {
                        for j in 0..<n {
                            got.append(Double(c.floats[i * ldc + j]))
                            let old = beta == 0 ? 0 : Double(beta) * Double(c0.floats[i * ldc + j])
                            expected.append(Double(alpha) * ref.value[i * n + j] + old)
                            bound.append(Swift.abs(Double(alpha)) * ref.bound[i * n + j] + 2e-7 * Swift.abs(old))
                        }
                        // The padding columns of C are untouched.
                        for j in n..<ldc { #expect(c.floats[i * ldc + j] == c0.floats[i * ldc + j]) }
                    }
                    expectWithin(got, (expected, bound), "\(kernel) \(m)×\(n)×\(k) alpha \(alpha) beta \(beta)")
                }
            }
        }

        /// The same bits on 1 and 3 threads, and each row's values whatever rows share its call.
        @Test(arguments: kernels)
        func cutsAndThreadsChangeNoBit(_ kernel: BF16Kernel) {
            for (m, n, k) in [(12, 70, 90), (200, 130, 600)] {
                let a = randn([m, k], seed: 6), w = randn([n, k], seed: 7)
                let whole = Precision.with(.bfloat16, kernel: kernel) { withThreads(1) { linear(a, w) } }
                let threaded = Precision.with(.bfloat16, kernel: kernel) { withThreads(3) { linear(a, w) } }
                #expect(whole.floats == threaded.floats, "\(kernel) \(m)×\(n)×\(k): 1 and 3 threads differ")
                // A tail of the rows through the same path (few rows, or panels) alone. (The
                // rounded kernel is sgemm, whose rows depend on where a call starts.)
                guard kernel.packs else { continue }
                let count = m < bf16FewRows ? 5 : 20
                let alone = Precision.with(.bfloat16, kernel: kernel) { linear(slice(a, axis: 0, (m - count)..<m), w) }
                #expect(alone.floats == Array(whole.floats[((m - count) * n)...]),
                        "\(kernel): the last \(count) rows alone differ from the same rows among \(m)")
            }
        }

        /// A weight packed once gives the bits of the same weight packed by each product
        /// (the packed kernels), or the rounded path's values to fp32 accumulation error.
        @Test(arguments: kernels)
        func packedWeightsGiveTheSameProducts(_ kernel: BF16Kernel) {
            for m in [1, 3, 40] {
                let (n, k) = (70, 90)
                let x = randn([m, k], seed: 8), w = randn([n, k], seed: 9)
                let fresh = Precision.with(.bfloat16, kernel: kernel) { linear(x, w) }
                let packedWeight = w.detached()
                packedWeight.packBF16()
                let packed = Precision.with(.bfloat16, kernel: kernel) { GradMode.withoutGradients { linear(x, packedWeight) } }
                if kernel.packs {
                    #expect(packed.floats == fresh.floats, "\(kernel) m \(m)")
                } else {
                    expectWithin(packed.doubles, reference(x, w, false, true, m: m, n: n, k: k), "\(kernel) packed m \(m)")
                }
                // In fp32 the packed copy is not used.
                #expect(linear(x, packedWeight).floats == linear(x, w).floats)
            }
        }

        /// Gradients through the tape multiply in bf16 too: dA = dY·Bᵀ and dB = Aᵀ·dY on
        /// rounded operands.
        @Test(arguments: kernels)
        func gradientsAreBF16Products(_ kernel: BF16Kernel) {
            let (m, n, k) = (40, 24, 50)
            let x = randn([m, k], seed: 10), w = randn([n, k], seed: 11), dy = randn([m, n], seed: 12)
            x.requiresGrad = true; w.requiresGrad = true
            let y = Precision.with(.bfloat16, kernel: kernel) { linear(x, w) }
            expectWithin(y.doubles, reference(x, w, false, true, m: m, n: n, k: k), "\(kernel) y, gradients recorded")
            Precision.with(.bfloat16, kernel: kernel) { sum(y * dy.detached()).backward() }
            // dX (m×k) = dY (m×n) · W (n×k); dW (n×k) = dYᵀ (n×m) · X (m×k).
            expectWithin(x.grad!.doubles, reference(dy, w, false, false, m: m, n: k, k: n), "\(kernel) dX")
            expectWithin(w.grad!.doubles, reference(dy, x, true, false, m: n, n: k, k: m), "\(kernel) dW")
        }

        /// And through a product with either operand transposed, into gradients empty and
        /// already holding one: op(A) (M×K), op(B) (K×N); d op(A) = dY·op(B)ᵀ, d op(B) = op(A)ᵀ·dY.
        @Test(arguments: kernels)
        func gradientsOfTransposedOperands(_ kernel: BF16Kernel) {
            let (m, n, k) = (19, 37, 45)
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                let a = randn(ta ? [k, m] : [m, k], seed: 20), b = randn(tb ? [n, k] : [k, n], seed: 21), dy = randn([m, n], seed: 22)
                a.requiresGrad = true; b.requiresGrad = true
                let label = "\(kernel) ta \(ta) tb \(tb)"
                let da = ta ? reference(b, dy, tb, true, m: k, n: m, k: n) : reference(dy, b, false, !tb, m: m, n: k, k: n)
                let db = tb ? reference(dy, a, true, ta, m: n, n: k, k: m) : reference(a, dy, !ta, false, m: k, n: n, k: m)
                for pass in 1...2 {   // the second adds onto the first's gradients
                    Precision.with(.bfloat16, kernel: kernel) {
                        sum(matmul(a, b, transposeA: ta, transposeB: tb) * dy.detached()).backward()
                    }
                    let times = Double(pass)
                    expectWithin(a.grad!.doubles, (da.value.map { $0 * times }, da.bound.map { $0 * times }), "\(label) dA, pass \(pass)")
                    expectWithin(b.grad!.doubles, (db.value.map { $0 * times }, db.bound.map { $0 * times }), "\(label) dB, pass \(pass)")
                }
            }
        }

        /// Attention's products in bf16: close to the fp32 kernel (bf16 operands move each score
        /// by about 2⁻⁸ relative), and the same bits on 1 and 3 threads.
        @Test(arguments: kernels)
        func attentionInBF16(_ kernel: BF16Kernel) {
            let (b, t, h, kv, hd) = (2, 40, 4, 2, 16)
            let q = randn([b, t, h, hd], seed: 13), k = randn([b, t, kv, hd], seed: 14), v = randn([b, t, kv, hd], seed: 15)
            let fp32 = causalAttention(q, k, v)
            let one = Precision.with(.bfloat16, kernel: kernel) { withThreads(1) { causalAttention(q, k, v) } }
            let three = Precision.with(.bfloat16, kernel: kernel) { withThreads(3) { causalAttention(q, k, v) } }
            #expect(one.floats == three.floats)
            expectClose(one.doubles, fp32.doubles, atol: 0.03, "\(kernel) attention vs fp32")
            #expect(one.floats != fp32.floats, "bf16 attention gave fp32's exact bits: its products were not rounded")
        }
    }
}
