// RMSNorm, embedding lookup and rotary embedding: forward against scalar loops, backward
// through gradcheck.
import Foundation
import Testing
import Tensor

extension TensorTests {
    @Suite struct NormLookupRotaryTests {
        @Test(arguments: [1, 15, 16, 33, 768]) func rmsNormForward(_ c: Int) {
            let x = randn([3, c], seed: UInt64(c), std: 3)
            let expected = Tensor(zeros: [3, c])
            rmsNormForwardReference(out: expected.data(Float.self), inp: x.data(Float.self), rows: 3, n: c)
            expectClose(rmsNorm(x).doubles, expected.doubles, atol: 1e-6, rtol: 1e-5, "rmsnorm C=\(c)")
        }

        /// The epsilon by value, where it shows: a row of zeros gives zeros (not 0/0), a row
        /// of 1e-4 gives 1e-4 / sqrt(1e-8 + eps) ≈ 0.278 (not 1), a row of 3 gives 1.
        @Test func rmsNormEpsilonByValue() {
            let rows: [Float] = [0, 1e-4, 3]
            let x = Tensor(shape: [3, 8], scalars: rows.flatMap { [Double](repeating: Double($0), count: 8) })
            let y = rmsNorm(x).doubles
            for (r, v) in rows.enumerated() {
                let wanted = Double(v) / (Double(v) * Double(v) + 1.1920929e-07).squareRoot()
                for j in 0..<8 {
                    #expect(abs(y[r * 8 + j] - wanted) <= 1e-6 * max(1, abs(wanted)), "row \(r): \(y[r * 8 + j]), wanted \(wanted)")
                }
            }
        }

        @Test func rmsNormBackward() {
            expectGradients([randn([4, 37], seed: 1)], "rmsnorm") { rmsNorm($0[0]) }
            expectGradients([randn([2, 1], seed: 2)], "rmsnorm C=1") { rmsNorm($0[0]) }
            // Every loop of the dot product behind it: 32 at a time, one 16 after them, the tail.
            expectGradients([randn([3, 50], seed: 9)], "rmsnorm C=50") { rmsNorm($0[0]) }
            // The kernel's backward against the closed-form scalar loop, in Float.
            let x = randn([3, 21], seed: 3), dy = randn([3, 21], seed: 4)
            let y = rmsNorm(x.copy(requiresGrad: true))
            let xg = x.copy(requiresGrad: true)
            let yg = rmsNorm(xg)
            yg.backward(seed: dy)
            let ref = Tensor(zeros: [3, 21])
            rmsNormBackwardReference(dinp: ref.data(Float.self), dout: dy.data(Float.self), inp: x.data(Float.self), rows: 3, n: 21)
            expectClose(xg.grad!.doubles, ref.doubles, atol: 1e-5, rtol: 1e-4, "rmsnorm backward vs scalar loop")
            #expect(y.shape == [3, 21])
        }

        @Test func embeddingForwardAndScatterAdd() {
            let w = randn([10, 19], seed: 5)
            let ids = IndexTensor(shape: [2, 4], values: [3, 0, 3, 9, 9, 9, 1, 3])
            let y = embedding(w, ids)
            #expect(y.shape == [2, 4, 19])
            let wv = w.doubles
            expectClose(y.doubles, ids.values.flatMap { id in (0..<19).map { wv[Int(id) * 19 + $0] } }, atol: 0, "embedding")
            expectGradients([w], "embedding (repeated ids)") { embedding($0[0], ids) }
        }

        @Test func rotaryMatchesFormula() {
            let (b, t, h, hd) = (2, 5, 3, 8)
            let table = RotaryTable(headDim: hd, maxPositions: 64)
            let x = randn([b, t, h, hd], seed: 6)
            let offset = 7
            let xv = x.doubles
            func expected(_ offset: Int) -> [Double] {
                var out = [Double](repeating: 0, count: xv.count)
                for bi in 0..<b { for ti in 0..<t { for hi in 0..<h {
                    let base = ((bi * t + ti) * h + hi) * hd
                    for j in 0..<(hd / 2) {
                        let f = Double(ti + offset) * pow(10000, -2 * Double(j) / Double(hd))
                        let x1 = xv[base + j], x2 = xv[base + j + hd / 2]
                        out[base + j] = x1 * cos(f) + x2 * sin(f)
                        out[base + j + hd / 2] = -x1 * sin(f) + x2 * cos(f)
                    }
                } } }
                return out
            }
            expectClose(rotary(x, table: table, offset: offset).doubles, expected(offset), atol: 1e-5, "rotary")
            // With no offset the first position is 0.
            expectClose(rotary(x, table: table).doubles, expected(0), atol: 1e-5, "rotary from position 0")
            expectGradients([x], "rotary") { rotary($0[0], table: table, offset: offset) }
            // hd/2 = 20: a half that is neither 16 nor a multiple of it.
            let wide = RotaryTable(headDim: 40, maxPositions: 8)
            expectGradients([randn([1, 3, 2, 40], seed: 7)], "rotary hd=40") { rotary($0[0], table: wide) }
            // x rotated twice (at two offsets) and used once more: the later backward adds into
            // a gradient that already holds the others' (the accumulating path).
            expectGradients([x], "rotary, accumulated") {
                rotary($0[0], table: table, offset: offset) + rotary($0[0], table: table, offset: 2) + scale($0[0], 0.5)
            }
            expectGradients([randn([1, 3, 2, 40], seed: 8)], "rotary hd=40, accumulated") {
                rotary($0[0], table: wide) + rotary($0[0], table: wide, offset: 3)
            }
        }
    }
}
