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

        /// The chunks are 65536 elements, each summed in Float: 32768 squares of 256 fill each
        /// of the 32 lanes to 2^26, where a square of 0.5 (0.25) rounds away, so the rest of
        /// the first chunk adds nothing; the next chunk starts afresh and its 32768 squares of
        /// 0.5 count whole (8192). At any thread count.
        @Test func theChunksAre65536FloatSums() {
            let x = [Float](repeating: 256, count: 32768) + [Float](repeating: 0.5, count: 65536)
            for threads in [1, 2] {
                let total = withThreads(threads) { x.withUnsafeBufferPointer { squaredNorm($0.baseAddress!, count: x.count) } }
                #expect(total == 2_147_483_648 + 8192, "\(threads) threads: \(total)")
            }
        }
    }
}
