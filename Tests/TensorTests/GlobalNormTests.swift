// The clipping kernel: Σ x² against a Double loop, the same bits at any thread count, and
// NaN seen.
import Testing
import Tensor

extension TensorTests {
    @Suite struct GlobalNormTests {
        @Test func squaredNormMatchesDoubleAndIgnoresThreads() {
            let x = randn([300_001], seed: 31).floats
            let reference = x.reduce(0.0) { $0 + Double($1) * Double($1) }
            let one = withThreads(1) { x.withUnsafeBufferPointer { squaredNorm($0.baseAddress!, count: x.count) } }
            let three = withThreads(3) { x.withUnsafeBufferPointer { squaredNorm($0.baseAddress!, count: x.count) } }
            // Float sums of 65536 squares each: relative error a few 1e-6 at most.
            #expect(abs(one - reference) / reference < 1e-5, "\(one) vs \(reference)")
            #expect(one.bitPattern == three.bitPattern)
            var y = x
            y[123_456] = .nan
            #expect(y.withUnsafeBufferPointer { squaredNorm($0.baseAddress!, count: y.count) }.isNaN)
        }
    }
}
