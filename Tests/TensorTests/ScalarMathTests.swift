// The Float32 vector exp, log1p and tanh against libm in Double, with the error bounds
// stated in Scalar.swift.
import Foundation
import Testing
import Tensor

extension TensorTests {
    @Suite struct ScalarMathTests {
        /// Evaluates f over `xs` sixteen at a time.
        func vectorized(_ xs: [Float], _ f: (SIMD16<Float>) -> SIMD16<Float>) -> [Float] {
            var out: [Float] = []
            for i in stride(from: 0, to: xs.count, by: 16) {
                var v = SIMD16<Float>(repeating: 0)
                for l in 0..<16 where i + l < xs.count { v[l] = xs[i + l] }
                let y = f(v)
                for l in 0..<16 where i + l < xs.count { out.append(y[l]) }
            }
            return out
        }

        func grid(_ lo: Float, _ hi: Float, _ n: Int) -> [Float] {
            (0..<n).map { lo + (hi - lo) * Float($0) / Float(n - 1) }
        }

        @Test func expRelativeErrorWithinTwoUlp() {
            let xs = grid(-87.3, 88.3, 200_003)
            let ys = vectorized(xs, Float.vexp)
            var worst = 0.0
            for (x, y) in zip(xs, ys) {
                let ref = Foundation.exp(Double(x))
                worst = max(worst, abs(Double(y) - ref) / ref)
            }
            // 2 ulp of a Float in [1, 2) is 2.4e-7.
            #expect(worst <= 2.4e-7, "exp worst relative error \(worst)")
        }

        @Test func expEdgeCases() {
            let xs: [Float] = [-.infinity, -1000, -88, 0, 89, .infinity, .nan]
            let ys = vectorized(xs, Float.vexp)
            #expect(ys[0] == 0 && ys[1] == 0 && ys[2] == 0)
            #expect(ys[3] == 1)
            #expect(ys[4].isFinite && ys[4] > 2e38)   // clamped at the largest finite power
            #expect(ys[6].isNaN)
        }

        /// vsqrt is the vector instruction, correctly rounded: the same bits as the scalar
        /// root for every class of input (negatives give NaN, as sqrt does).
        @Test func sqrtMatchesScalarBitForBit() {
            var g = SeededGenerator(seed: 5)
            let specials: [Float] = [0, -0, .leastNonzeroMagnitude, .leastNormalMagnitude, 1, 2, 4,
                                     .greatestFiniteMagnitude, .infinity, 1e-30, 3e30]
            let xs = specials + (0..<40_000).map { _ in Float(g.nextUnit()) * pow(10, Float(g.next() % 60) - 30) }
            let ys = vectorized(xs, Float.vsqrt)
            let mismatches = zip(xs, ys).filter { $0.squareRoot().bitPattern != $1.bitPattern }
            #expect(mismatches.isEmpty, "vsqrt differs from squareRoot at \(mismatches.prefix(3))")
            let negatives = vectorized([-1, -.infinity, .nan], Float.vsqrt)
            #expect(negatives[0].isNaN && negatives[1].isNaN && negatives[2].isNaN)
            let ds = (0..<1000).map { _ in g.nextUnit() * 1e6 }
            let dv = Double.vsqrt(SIMD16(ds[0..<16]))
            let doubleMismatches = (0..<16).filter { dv[$0].bitPattern != ds[$0].squareRoot().bitPattern }.count
            #expect(doubleMismatches == 0)
        }

        /// The AdamW pass equals the scalar formula, operation for operation, bit for bit
        /// (including a tail shorter than a vector), with a clipping factor on the gradient.
        @Test func adamWMatchesScalarLoop() {
            var g = SeededGenerator(seed: 6)
            let n = 1003
            let p0 = (0..<n).map { _ in Float(g.nextNormal()) }, grad = (0..<n).map { _ in Float(g.nextNormal() * 0.1) }
            let m0 = (0..<n).map { _ in Float(g.nextNormal() * 0.01) }, v0 = (0..<n).map { _ in Float(g.nextUnit() * 1e-3) }
            let s = AdamWStep(lr: 0.02, beta1: 0.8, beta2: 0.95, epsilon: 1e-10, decay: 0.999, correction1: 1.7, correction2: 3.1,
                              gradScale: 0.37)
            var (p, m, v) = (p0, m0, v0)
            p.withUnsafeMutableBufferPointer { pp in m.withUnsafeMutableBufferPointer { mp in v.withUnsafeMutableBufferPointer { vp in
                adamWUpdate(parameter: pp.baseAddress!, gradient: grad, m: mp.baseAddress!, v: vp.baseAddress!, count: n, s)
            } } }
            var bad = 0
            for i in 0..<n {
                let gi = grad[i] * s.gradScale   // clipping: the gradient as if scaled in place first
                let mi = s.beta1 * m0[i] + (1 - s.beta1) * gi
                let vi = s.beta2 * v0[i] + (1 - s.beta2) * gi * gi
                let pi = p0[i] * s.decay - s.lr * (mi * s.correction1) / ((vi * s.correction2).squareRoot() + s.epsilon)
                if pi.bitPattern != p[i].bitPattern || mi.bitPattern != m[i].bitPattern || vi.bitPattern != v[i].bitPattern { bad += 1 }
            }
            #expect(bad == 0, "\(bad) of \(n) elements differ from the scalar AdamW")
        }

        @Test func log1pAbsoluteError() {
            let xs = grid(0, 1, 100_001) + grid(-0.9, 0, 10_001) + [1e-8, 1e-20, 3e-5]
            let ys = vectorized(xs, Float.vlog1p)
            var worst = 0.0
            for (x, y) in zip(xs, ys) {
                let ref = Foundation.log1p(Double(x))
                worst = max(worst, abs(Double(y) - ref) / max(1, abs(ref)))
            }
            #expect(worst <= 2e-7, "log1p worst error \(worst)")
            // Small arguments keep their relative accuracy (no 1 + y rounding loss).
            #expect(abs(Double(ys[ys.count - 3]) - 1e-8) / 1e-8 < 1e-6)
        }

        @Test func tanhErrorNearZeroAndFar() {
            let xs = grid(-12, 12, 100_001) + [1e-6, -3e-4, 0.6249, 0.6251]
            let ys = vectorized(xs, Float.vtanh)
            var worstAbs = 0.0, worstRelSmall = 0.0
            for (x, y) in zip(xs, ys) {
                let ref = Foundation.tanh(Double(x))
                worstAbs = max(worstAbs, abs(Double(y) - ref))
                if abs(x) < 0.625 && x != 0 { worstRelSmall = max(worstRelSmall, abs(Double(y) - ref) / abs(ref)) }
            }
            #expect(worstAbs <= 2.4e-7, "tanh worst absolute error \(worstAbs)")
            #expect(worstRelSmall <= 4.8e-7, "tanh worst relative error near 0: \(worstRelSmall)")
        }
    }
}

extension TensorTests.ScalarMathTests {
    @Test func exp2DecayRelativeErrorWithinTwoUlp() {
        let ys = grid(-126, 0, 200_003) + [-0.5, -1e-9, 0]
        let out = vectorized(ys, Float.vexp2Decay)
        var worst = 0.0
        for (y, v) in zip(ys, out) {
            let ref = Foundation.exp2(Double(y))
            worst = max(worst, abs(Double(v) - ref) / ref)
        }
        #expect(worst <= 2.4e-7, "exp2 worst relative error \(worst)")
        #expect(vectorized([-200], Float.vexp2Decay)[0] == 0x1p-126)
        // A decay never exceeds 1 (a state must not grow by itself), and is exactly 1 at 0.
        let nearZero = (0..<5000).map { -Float($0) * 1e-10 } + (0..<5000).map { -Float($0) * 1e-4 }
        let decays = vectorized(nearZero, Float.vexp2Decay)
        #expect(decays.allSatisfy { $0 <= 1 }, "a decay above 1: \(decays.max()!)")
        #expect(decays[0] == 1)
        #expect(out.allSatisfy { $0.isNormal && $0 <= 1 })
        #expect(vectorized([.nan], Float.vexp2Decay)[0].isNaN)
    }
}
