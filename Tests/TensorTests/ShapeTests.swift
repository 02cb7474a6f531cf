// Reshape, slice, concat and transpose: exact values and gradients.
import Testing
import Tensor

extension TensorTests {
    @Suite struct ShapeTests {
        @Test func sliceAndConcatRoundTrip() {
            let x = randn([2, 3, 10], seed: 1)
            let a = slice(x, axis: -1, 0..<4), b = slice(x, axis: -1, 4..<10)
            #expect(a.shape == [2, 3, 4] && b.shape == [2, 3, 6])
            let xv = x.doubles
            expectClose(a.doubles, (0..<6).flatMap { r in (0..<4).map { xv[r * 10 + $0] } }, atol: 0, "slice")
            expectClose(concat([a, b], axis: 2).doubles, xv, atol: 0, "concat")
            let mid = slice(x, axis: 1, 1..<3)
            expectClose(mid.doubles, (0..<2).flatMap { b in (10..<30).map { xv[b * 30 + $0] } }, atol: 0, "slice axis 1")
            expectGradients([x], "slice") { slice($0[0], axis: 2, 3..<7) }
            expectGradients([a, b], "concat") { concat([$0[0], $0[1]], axis: -1) }
            // One tensor; and three along a middle axis, in Float64 too.
            expectClose(concat([x], axis: 1).doubles, xv, atol: 0, "concat of one")
            expectGradients([a], "concat of one") { concat([$0[0]], axis: 0) }
            let d = randn([2, 3, 10], seed: 3, dtype: .float64), parts = [0..<1, 1..<2, 2..<3].map { slice(d, axis: 1, $0) }
            let joined = concat(parts, axis: 1)
            #expect(joined.dtype == .float64 && joined.shape == [2, 3, 10] && joined.doubles == d.doubles)
        }

        /// A printed tensor shows its dtype, shape and first eight values.
        @Test func aTensorPrintsItsShapeAndFirstValues() {
            let long = Tensor(shape: [2, 5], scalars: (0..<10).map { Float($0) / 4 - 1 })
            #expect("\(long)" == "Tensor(float32, [2, 5], [-1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, ...])")
            let short = Tensor(shape: [3], scalars: [1e-7, 12345.678, 2], dtype: .float64)
            #expect("\(short)" == "Tensor(float64, [3], [1e-07, 1.235e+04, 2])")
        }

        @Test func transposeSwapsAxes() {
            let x = randn([2, 3, 4, 5], seed: 2)
            let y = transpose(x, 1, 2)
            #expect(y.shape == [2, 4, 3, 5])
            let xv = x.doubles, yv = y.doubles
            var ok = true
            for a in 0..<2 { for i in 0..<3 { for j in 0..<4 { for k in 0..<5 {
                ok = ok && yv[((a * 4 + j) * 3 + i) * 5 + k] == xv[((a * 3 + i) * 4 + j) * 5 + k]
            } } } }
            #expect(ok)
            expectClose(transpose(y, 1, 2).doubles, xv, atol: 0, "transpose twice")
            // Axes counted from the end, and an axis with itself (no change).
            let back = transpose(x, -3, -2)
            #expect(back.shape == [2, 4, 3, 5] && back.doubles == yv)
            let same = transpose(x, 2, -2)
            #expect(same.shape == x.shape && same.doubles == xv)
            expectGradients([x], "transpose") { transpose($0[0], 0, 3) }
        }

        @Test func reshapeSharesStorageAndPassesGradient() {
            let x = randn([4, 6], seed: 3)
            let y = x.reshaped([2, -1, 3])
            #expect(y.shape == [2, 4, 3])
            #expect(y.doubles == x.doubles)
            expectGradients([x], "reshape") { silu($0[0].reshaped([3, 8])) }
        }
    }
}
