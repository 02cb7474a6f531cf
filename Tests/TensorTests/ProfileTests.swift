// OpProfile: each op's forward and backward time lands on its own (phase, op), ops inside a
// measured phase belong to the phase, and nothing is counted while profiling is off. The op
// here sleeps, so its times have known lower bounds; its name is its own, so ops of tests
// running alongside cannot change its counts.
import Foundation
import Testing
import Tensor

/// y = 2x, after sleeping `forwardSleep` seconds; its backward sleeps `backwardSleep`.
private func slowDouble(_ x: Tensor, forwardSleep: Double, backwardSleep: Double) -> Tensor {
    Thread.sleep(forTimeInterval: forwardSleep)
    let y = Tensor(zeros: x.shape)
    let px = x.data(Float.self), py = y.data(Float.self)
    for i in 0..<x.count { py[i] = 2 * px[i] }
    y.record("profile_test.slow_double", [x]) { y in
        Thread.sleep(forTimeInterval: backwardSleep)
        let dy = y.gradData(Float.self), dx = x.gradData(Float.self)
        for i in 0..<x.count { dx[i] += 2 * dy[i] }
    }
    return y
}

extension TensorTests {
    /// Serialized: both tests start and stop the one global profile.
    @Suite(.serialized) struct ProfileTests {
        @Test func opsPhasesAndOffState() throws {
            let x = randn([8], seed: 1).copy(requiresGrad: true)
            // Off: nothing is kept, and start() begins from an empty table.
            _ = slowDouble(x, forwardSleep: 0, backwardSleep: 0)
            let wallStart = Date()   // before start(): the forward's clock starts inside it
            OpProfile.start()
            let y = slowDouble(slowDouble(x, forwardSleep: 0.004, backwardSleep: 0.006), forwardSleep: 0.004, backwardSleep: 0.006)
            sum(y).backward()
            OpProfile.measure("profile_test phase", "step") {
                Thread.sleep(forTimeInterval: 0.003)
                _ = slowDouble(x, forwardSleep: 0.002, backwardSleep: 0)   // the phase's, not the forward's
            }
            _ = slowDouble(x, forwardSleep: 0.001, backwardSleep: 0)   // after the phase: the forward's again
            let wall = Date().timeIntervalSince(wallStart)
            let entries = OpProfile.stop().filter { $0.op.hasPrefix("profile_test") || $0.phase.hasPrefix("profile_test") }
            _ = slowDouble(x, forwardSleep: 0, backwardSleep: 0)   // after stop: not counted

            let forward = try #require(entries.first { $0.phase == "forward" && $0.op == "profile_test.slow_double" })
            let backward = try #require(entries.first { $0.phase == "backward" && $0.op == "profile_test.slow_double" })
            let phase = try #require(entries.first { $0.phase == "profile_test phase" && $0.op == "step" })
            #expect(entries.count == 3)
            #expect(forward.calls == 3 && forward.seconds >= 0.009)
            #expect(backward.calls == 2 && backward.seconds >= 0.012)
            #expect(phase.calls == 1 && phase.seconds >= 0.005)
            // The entries are disjoint stretches of one timeline.
            #expect(forward.seconds + backward.seconds + phase.seconds <= wall)
            #expect(!OpProfile.isEnabled)
        }

        /// Parts timed inside an op (a bf16 product's packing and blocks of tiles) land in
        /// their own phase, named by stage and shape, beside the op's entry.
        @Test func bf16ProductsAreTimedByStageAndShape() throws {
            let a = randn([40, 50], seed: 3), w = randn([24, 50], seed: 4)
            OpProfile.start()
            _ = Precision.with(.bfloat16, kernel: .portable) { linear(a, w) }
            let inside = OpProfile.stop().filter { $0.phase == OpProfile.insidePhase }
            let names = Set(inside.map(\.op))
            #expect(names.isSuperset(of: ["bf16 pack 40×50·50×24ᵀ", "bf16 blocks 40×50·50×24ᵀ"]), "\(names)")
        }

        /// Only a product that cuts its own work among the workers is timed by stage: one of
        /// few rows (the decoding kernel), one run serially inside another op's worker (whose
        /// parts would add up times that ran at once) and the rounded kernel add no parts.
        @Test func productsOfFewRowsOrRunSeriallyAreNotTimedByStage() {
            let (n, k) = (27, 53)   // a shape no other test uses: their products may run meanwhile
            let few = randn([3, k], seed: 5), many = randn([40, k], seed: 6), w = randn([n, k], seed: 7)
            var out = [Float](repeating: 0, count: 40 * n)
            OpProfile.start()
            _ = Precision.with(.bfloat16, kernel: .portable) { linear(few, w) }
            out.withUnsafeMutableBufferPointer { c in
                guard let c = c.baseAddress else { return }
                bf16Gemm(kernel: .portable, transposeA: false, m: 40, n: n, k: k, a: many.data(Float.self), lda: k,
                         b: .floats(w.data(Float.self), ld: k, transposed: true), c: c, ldc: n, serial: true)
            }
            _ = Precision.with(.bfloat16, kernel: .rounded) { linear(many, w) }
            let parts = OpProfile.stop().filter { $0.phase == OpProfile.insidePhase && $0.op.contains("×53") }
            #expect(parts.isEmpty, "\(parts.map(\.op))")
            // The product itself was computed: the serial call's outputs are the linear's.
            let whole = Precision.with(.bfloat16, kernel: .portable) { linear(many, w) }
            #expect(out == whole.floats)
        }

        /// The time between an op and the one before it is the later op's, from `mark()` on.
        @Test func markRestartsTheForwardClock() throws {
            let x = randn([4], seed: 2)
            OpProfile.start()
            Thread.sleep(forTimeInterval: 0.05)   // before the mark: nobody's
            OpProfile.mark()
            _ = slowDouble(x, forwardSleep: 0.003, backwardSleep: 0)
            let entries = OpProfile.stop()
            let forward = try #require(entries.first { $0.op == "profile_test.slow_double" })
            #expect(forward.calls == 1 && forward.seconds >= 0.003 && forward.seconds < 0.05)
        }
    }
}
