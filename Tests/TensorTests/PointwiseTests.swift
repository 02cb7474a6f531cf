// Pointwise functions and broadcasting binary ops: forward against scalar references,
// backward through gradcheck, and a deliberately wrong backward that gradcheck must catch.
import Foundation
import Testing
import Tensor

/// silu with a backward 1% too large: gradcheck must reject it.
enum SiluWrongByOnePercent: PointwiseFunction {
    static let name = "silu_wrong"
    static func forward<S: TensorScalar>(_ x: SIMD16<S>) -> SIMD16<S> { Silu.forward(x) }
    static func backward<S: TensorScalar>(x: SIMD16<S>, y: SIMD16<S>, dy: SIMD16<S>) -> SIMD16<S> {
        Silu.backward(x: x, y: y, dy: dy) * S(1.01)
    }
    static func reference(_ x: Double) -> Double { Silu.reference(x) }
}

extension TensorTests {
    @Suite struct PointwiseTests {
        static var functions: [(String, (Tensor) -> Tensor, (Double) -> Double)] { [
            ("relu", relu, Relu.reference), ("square", square, Square.reference),
            ("silu", silu, Silu.reference), ("softplus", softplus, Softplus.reference),
            ("exp", exp, Exp.reference), ("tanh", tanh, Tanh.reference),
            ("relu_squared", reluSquared, ReluSquared.reference),
        ] }

        // 1000 is not a multiple of 16: the tail path runs too. Values span [-25, 25] so
        // softplus's threshold and tanh's two branches are crossed.
        @Test(arguments: 0..<7) func forwardMatchesReference(_ which: Int) {
            let (name, op, ref) = Self.functions[which]
            let x = randn([1000], seed: 1, std: 8)
            let y = op(x)
            let expected = x.doubles.map(ref)
            let rtol = name == "exp" ? 3e-7 : 1e-6   // the stated ulp bounds, plus input rounding
            expectClose(y.doubles, expected, atol: 1e-6, rtol: rtol, "\(name) forward")
        }

        @Test(arguments: 0..<7) func backwardPassesGradcheck(_ which: Int) {
            let (name, op, _) = Self.functions[which]
            var x = randn([37], seed: 2, std: 2)
            if name.hasPrefix("relu") {   // keep clear of the kink, where finite differences are meaningless
                x = Tensor(shape: [37], scalars: x.doubles.map { abs($0) < 1e-3 ? 0.5 : $0 })
            }
            expectGradients([x], name) { op($0[0]) }
        }

        @Test func reluSquaredIsSquareOfReluBitForBit() {
            let x = randn([1000], seed: 7, std: 3).copy(requiresGrad: true), dy = randn([1000], seed: 8)
            let fused = reluSquared(x)
            fused.backward(seed: dy)
            let (yFused, dxFused) = (fused.doubles, x.grad!.doubles)
            x.zeroGrad()
            let composed = square(relu(x))
            composed.backward(seed: dy)
            #expect(yFused == composed.doubles)
            #expect(dxFused == x.grad!.doubles)
        }

        /// At the kink, where gradcheck cannot look: relu's derivative at 0 (and -0) is 0, as
        /// PyTorch's, and relu²'s is 0 there by its formula; either side of it, 0 and dy (2x·dy).
        @Test func theKinkTakesDerivativeZero() {
            let values: [Float] = [-1, -0.0, 0, 1e-30, 2, -1e-30]
            for (name, op, slope) in [("relu", relu, { (x: Double) in x > 0 ? 1.0 : 0 }),
                                      ("relu_squared", reluSquared, { (x: Double) in x > 0 ? 2 * x : 0 })] as [(String, (Tensor) -> Tensor, (Double) -> Double)] {
                for dtype in [DType.float32, .float64] {
                    let x = Tensor(shape: [values.count], scalars: values, dtype: dtype, requiresGrad: true)
                    op(x).backward(seed: Tensor(repeating: 3, shape: [values.count], dtype: dtype))
                    let expected = values.map { 3 * slope(Double($0)) }
                    #expect(x.grad!.doubles == expected.map { dtype == .float32 ? Double(Float($0)) : $0 }, "\(name) \(dtype)")
                }
            }
        }

        @Test func gradcheckCatchesBackwardWrongByOnePercent() {
            let x = randn([37], seed: 3)
            let result = gradcheck([x]) { pointwise(SiluWrongByOnePercent.self, $0[0]) }
            #expect(!result.passed, "a 1% error in backward went unnoticed: \(result)")
            #expect(result.worstRatio > 10, "1% error should be far outside tolerance: \(result)")
            // The report names the worst element and its two values, one 1.01 times the other.
            #expect(result.checkedElements == 37 && result.worstInput == 0 && (0..<37).contains(result.worstElement), "\(result)")
            #expect(abs(result.worstAnalytic / result.worstNumeric - 1.01) < 1e-6, "\(result)")
            #expect(abs(result.maxAbsoluteError - abs(result.worstAnalytic - result.worstNumeric)) <= 1e-9 * result.maxAbsoluteError)
            #expect("\(result)".hasPrefix("gradcheck FAILED: 37 elements, max |error| ")
                    && "\(result)".contains("worst at input 0 element \(result.worstElement) (analytic "), "\(result)")
            // The correct rule passes on the same input.
            #expect(gradcheck([x]) { pointwise(Silu.self, $0[0]) }.passed)
        }

        /// The report's worst element is the one whose error is furthest outside the tolerance:
        /// with a 1% error everywhere, the element of the largest derivative (x = 2.4, where
        /// SiLU' peaks near 1.1, among values near 0 where it is near 0.5), in whichever input
        /// it is, and not the last one checked.
        @Test func gradcheckNamesTheWorstElement() {
            var values = randn([37], seed: 4).doubles.map { $0 * 0.1 }
            values[17] = 2.4
            let x = Tensor(shape: [37], scalars: values), fine = randn([37], seed: 5)
            let one = gradcheck([x]) { pointwise(SiluWrongByOnePercent.self, $0[0]) }
            #expect(one.worstInput == 0 && one.worstElement == 17, "\(one)")
            for wrongFirst in [true, false] {
                let inputs = wrongFirst ? [x, fine] : [fine, x]
                let two = gradcheck(inputs) {
                    pointwise(SiluWrongByOnePercent.self, $0[wrongFirst ? 0 : 1]) + pointwise(Silu.self, $0[wrongFirst ? 1 : 0])
                }
                #expect(two.checkedElements == 74 && two.worstInput == (wrongFirst ? 0 : 1) && two.worstElement == 17, "\(two)")
            }
        }

        @Test func broadcastForward() {
            let a = randn([3, 5, 19], seed: 4), b = randn([19], seed: 5), c = randn([3, 5, 19], seed: 6)
            let av = a.doubles, bv = b.doubles, cv = c.doubles
            expectClose((a + b).doubles, av.indices.map { av[$0] + bv[$0 % 19] }, atol: 1e-6, "add broadcast")
            expectClose((a - b).doubles, av.indices.map { av[$0] - bv[$0 % 19] }, atol: 1e-6, "sub broadcast")
            expectClose((a * b).doubles, av.indices.map { av[$0] * bv[$0 % 19] }, atol: 1e-6, "mul broadcast")
            expectClose((a * c).doubles, av.indices.map { av[$0] * cv[$0] }, atol: 1e-6, "mul same shape")
            expectClose(scale(a, -2.5).doubles, av.map { -2.5 * $0 }, atol: 1e-6, "scale")
            #expect((a * -2.5).doubles == scale(a, -2.5).doubles && (-2.5 * a).doubles == scale(a, -2.5).doubles)
        }

        @Test(arguments: [BinaryOp.add, .sub, .mul]) func broadcastBackward(_ op: BinaryOp) {
            let a = randn([4, 3, 21], seed: 7), b = randn([3, 21], seed: 8), c = randn([4, 3, 21], seed: 9)
            expectGradients([a, b], "\(op) broadcast") { binary(op, $0[0], $0[1]) }
            expectGradients([a, c], "\(op) same shape") { binary(op, $0[0], $0[1]) }
            // Both operands used again after it: when its backward runs, each already holds a
            // gradient, which it adds to rather than writes.
            expectGradients([a, c], "\(op) same shape, gradients already there") { x in
                let y = binary(op, x[0], x[1])
                return y * x[1] + x[0] * x[0]
            }
        }

        @Test func reductionsAndScale() {
            let x = randn([5, 33], seed: 10)
            let total = x.doubles.reduce(0, +)
            #expect(abs(sum(x).item - total) < 1e-4)
            #expect(abs(mean(x).item - total / 165) < 1e-6)
            expectGradients([x], "sum") { sum($0[0]) }
            expectGradients([x], "mean") { mean($0[0]) }
            expectGradients([x], "scale") { scale($0[0], 0.3) }
        }

        @Test func sumOverManyChunksMatchesDouble() {
            let x = randn([300_001], seed: 11)   // several 64 Ki chunks plus a tail
            let total = x.doubles.reduce(0, +)
            #expect(abs(sum(x).item - total) < 1e-2, "sum \(sum(x).item) vs \(total)")
        }
    }
}

extension TensorTests.PointwiseTests {
    /// The selective scan's backward takes Δ = softplus(Δraw) and σ(Δraw) from one
    /// exponential: the value must be `forward`'s bits exactly (else the recomputed states
    /// drift from the forward's), σ within 2 ulp-ish of the true logistic.
    @Test func softplusAndDerivativeShareOneExp() {
        var xs: [Float] = (0..<20_000).map { -40 + 80 * Float($0) / 20_000 }
        xs += [0, -0, 20, 20.000002, -87, -88, -104, 1e-8, -1e-8, 30, -30]
        var worst = 0.0
        for i in stride(from: 0, to: xs.count, by: 16) {
            var v = SIMD16<Float>(repeating: 0)
            for l in 0..<16 where i + l < xs.count { v[l] = xs[i + l] }
            let (sp, sg) = Softplus.forwardAndDerivative(v)
            let want = Softplus.forward(v)
            for l in 0..<16 where i + l < xs.count {
                #expect(sp[l].bitPattern == want[l].bitPattern, "softplus(\(v[l])) = \(sp[l]), forward has \(want[l])")
                let ref = 1 / (1 + Foundation.exp(-Double(v[l])))
                if ref > 1e-30 { worst = max(worst, abs(Double(sg[l]) - ref) / ref) }
            }
        }
        #expect(worst <= 3e-7, "sigmoid worst relative error \(worst)")
    }
}
