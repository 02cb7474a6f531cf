// The tape itself: accumulation, zeroing, inference mode, reuse of a tensor by several ops,
// a small network end to end, and recycling of activation memory.
import Testing
import Tensor

extension TensorTests {
    @Suite struct AutogradTests {
        @Test func gradientsAccumulateUntilZeroed() {
            let x = randn([5], seed: 1).copy(requiresGrad: true)
            sum(square(x)).backward()
            let once = x.grad!.doubles
            expectClose(once, x.doubles.map { 2 * $0 }, atol: 1e-6, "d/dx Σx²")
            sum(square(x)).backward()
            expectClose(x.grad!.doubles, once.map { 2 * $0 }, atol: 1e-6, "accumulated twice")
            x.zeroGrad()
            #expect(x.grad!.doubles.allSatisfy { $0 == 0 })
            // Dropped, the gradient is gone until the next backward pass writes it afresh.
            x.clearGrad()
            #expect(x.grad == nil)
            sum(square(x)).backward()
            expectClose(x.grad!.doubles, once, atol: 0, "written afresh after clearGrad")
        }

        /// Random tensors: row-major draws from the generator, U(low, high) and N(mean, std²)
        /// by the generator's own unit and normal draws, in either dtype.
        @Test func randomTensorsDrawInRowMajorOrder() {
            var g = SeededGenerator(seed: 77), h = SeededGenerator(seed: 77)
            let u = Tensor.randomUniform([3, 4], low: -2, high: 6, dtype: .float64, generator: &g)
            #expect(u.shape == [3, 4] && u.dtype == .float64)
            #expect(u.doubles == (0..<12).map { _ in -2 + 8 * h.nextUnit() })
            #expect(u.doubles.allSatisfy { $0 >= -2 && $0 < 6 })
            let n = Tensor.randomNormal([5], mean: 3, std: 0.5, generator: &g)
            #expect(n.dtype == .float32)
            #expect(n.floats == (0..<5).map { _ in Float(3 + 0.5 * h.nextNormal()) })
            // Left out, the mean is 0 and the deviation 1.
            #expect(Tensor.randomNormal([4], dtype: .float64, generator: &g).doubles == (0..<4).map { _ in h.nextNormal() })
        }

        /// The generator is xoshiro256** seeded by SplitMix64, draw for draw (values from an
        /// independent Python implementation of both), so a seed gives the same weights on
        /// every machine and in every version; a unit draw is the top 53 bits, a normal one
        /// Box–Muller of 1 - unit and unit.
        @Test func theGeneratorIsXoshiro256StarStar() {
            var g = SeededGenerator(seed: 2024)
            #expect((0..<4).map { _ in g.next() } == [1029197146548041518, 14427268137155694693, 1329179038587965441, 2946237779985736811])
            #expect(g.nextUnit() == 0.773650389718931)
            #expect(Swift.abs(g.nextNormal() - -0.5902915913718773) < 1e-15)
            var zero = SeededGenerator(seed: 0)
            #expect(zero.next() == 11091344671253066420 && zero.next() == 13793997310169335082)
        }

        /// A gradient placed in memory of the caller's starts as zeros whatever the memory
        /// holds, is written there by the backward pass (products, a reshape that would
        /// otherwise hand over its own gradient), and `settleGrad` writes the zeros a stale one
        /// stands for into the memory itself.
        @Test func aPlacedGradientLivesInTheGivenMemory() {
            let w = randn([6, 5], seed: 21).copy(requiresGrad: true), x = randn([4, 5], seed: 22)
            let unused = randn([3], seed: 23).copy(requiresGrad: true)
            func loss() -> Tensor { sum(square(linear(x, w.reshaped([6, 5])))) }
            loss().backward()
            let expected = w.grad!.floats
            let memory = UnsafeMutablePointer<Float>.allocate(capacity: 33)
            defer { memory.deallocate() }
            memory.initialize(repeating: .nan, count: 33)
            w.placeGrad(at: UnsafeMutableRawPointer(memory))
            unused.placeGrad(at: UnsafeMutableRawPointer(memory + 30))
            loss().backward()
            #expect(Array(UnsafeBufferPointer(start: memory, count: 30)) == expected, "the backward pass wrote into the placed memory")
            #expect(memory[30].isNaN && memory[32].isNaN, "the unused gradient's memory is left alone until settled")
            unused.settleGrad()
            #expect(Array(UnsafeBufferPointer(start: memory + 30, count: 3)) == [0, 0, 0] && unused.grad!.floats == [0, 0, 0])
            w.zeroGrad()
            w.settleGrad()
            #expect(Array(UnsafeBufferPointer(start: memory, count: 30)).allSatisfy { $0 == 0 })
        }

        /// A tensor placed in memory of the caller's keeps its values there (copied, or taken
        /// as the memory holds them), and ops and updates read and write that memory.
        @Test func aPlacedTensorLivesInTheGivenMemory() {
            let w = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Float])
            let memory = UnsafeMutablePointer<Float>.allocate(capacity: 8)
            defer { memory.deallocate() }
            memory.initialize(repeating: 9, count: 8)
            w.placeData(at: UnsafeMutableRawPointer(memory), copyingValues: true)
            #expect(Array(UnsafeBufferPointer(start: memory, count: 4)) == [1, 2, 3, 4] && memory[4] == 9)
            memory[0] = 5
            #expect((w * w).floats == [25, 4, 9, 16], "an op reads the placed memory")
            w.data(Float.self)[3] = 7
            #expect(memory[3] == 7, "a write lands in the placed memory")
            let v = Tensor(shape: [2, 2], scalars: [0, 0, 0, 0] as [Float])
            v.placeData(at: UnsafeMutableRawPointer(memory + 4), copyingValues: false)
            #expect(v.floats == [9, 9, 9, 9], "taken as the memory holds it")
        }

        /// zeroGrad only marks a gradient stale; products then write it with beta 0 and
        /// reshapes hand their gradient over. Stale memory full of NaN must not leak into the
        /// next gradient, and a gradient that is not stale must still be added to.
        @Test func staleGradientsAreOverwrittenAndLiveOnesAddedTo() {
            let w = randn([6, 5], seed: 11).copy(requiresGrad: true), x = randn([3, 4, 5], seed: 12).copy(requiresGrad: true)
            let v = randn([3, 4, 6], seed: 13).copy(requiresGrad: true), u = randn([4, 5], seed: 14).copy(requiresGrad: true)
            let params = [w, x, v, u]
            func loss() -> Tensor {
                let h = linear(x, w)                                 // folded product, shared weight
                let t = matmul(v, x, transposeA: true)               // batched, transposed a: (3, 6, 5)
                let s = matmul(u, u, transposeB: true)               // one tensor on both sides
                let r = x.reshaped([12, 5])                          // reshape of a leaf used elsewhere too
                return sum(h * h) + sum(t) + sum(s * s) + sum(r * r)
            }
            loss().backward()
            let fresh = params.map { $0.grad!.doubles }
            for p in params {
                let g = p.grad!.data(Float.self)
                for i in 0..<p.count { g[i] = .nan }
                p.zeroGrad()
            }
            loss().backward()
            for (i, p) in params.enumerated() { expectClose(p.grad!.doubles, fresh[i], atol: 0, "stale NaN gradient \(i) overwritten") }
            loss().backward()
            for (i, p) in params.enumerated() { expectClose(p.grad!.doubles, fresh[i].map { 2 * $0 }, atol: 1e-5, rtol: 1e-6, "gradient \(i) added to") }
            // Checked against finite differences as well.
            expectGradients(params.map { $0.copy() }, "products, shared and reshaped operands") { p in
                sum(linear(p[1], p[0]) * linear(p[1], p[0])) + sum(matmul(p[2], p[1], transposeA: true))
                    + sum(matmul(p[3], p[3], transposeB: true)) + sum(p[1].reshaped([12, 5]) * p[1].reshaped([-1]).reshaped([12, 5]))
            }
        }

        /// The hook of `backward(afterEachNode:)` names each leaf once, when no node left adds to
        /// its gradient: the gradient then is the final one, though the leaves are read at
        /// different depths (w early and late, u only at the start, x through a reshape), and
        /// leaves the loss does not reach are not named.
        @Test func leavesAreNamedOnceWhenTheirGradientIsFinal() {
            let w = randn([6, 5], seed: 21).copy(requiresGrad: true), x = randn([3, 5], seed: 22).copy(requiresGrad: true)
            let u = randn([3, 6], seed: 23).copy(requiresGrad: true), unused = randn([2], seed: 24).copy(requiresGrad: true)
            func loss() -> Tensor {
                let h = linear(x, w) * u                       // (3, 6): u and w at the start
                let z = matmul(silu(h), w)                     // w again, later: (3, 5)
                return sum(z * x.reshaped([15]).reshaped([3, 5]))
            }
            _ = unused
            let names = [ObjectIdentifier(w): "w", ObjectIdentifier(x): "x", ObjectIdentifier(u): "u", ObjectIdentifier(unused): "unused"]
            var named: [String] = [], atNaming: [String: [Double]] = [:]
            var calls = 0
            loss().backward(afterEachNode: { leaves in
                calls += 1
                for leaf in leaves {
                    let name = names[ObjectIdentifier(leaf)] ?? "an intermediate tensor"
                    named.append(name)
                    atNaming[name] = leaf.grad?.doubles
                }
            })
            #expect(named.sorted() == ["u", "w", "x"], "named: \(named)")
            #expect(calls > 3, "called after each node: \(calls) calls")
            for (name, t) in [("w", w), ("x", x), ("u", u)] {
                expectClose(atNaming[name] ?? [], t.grad!.doubles, atol: 0, "\(name)'s gradient when named is its final one")
            }
            // And the same gradients as without the hook.
            let withHook = [w, x, u].map { $0.grad!.doubles }
            for t in [w, x, u] { t.zeroGrad() }
            loss().backward()
            for (i, t) in [w, x, u].enumerated() { expectClose(t.grad!.doubles, withHook[i], atol: 0, "leaf \(i) with and without the hook") }
        }

        /// `betweenOps` calls its hook after each op of its body, with the tape on or off, and
        /// not outside it; values are the same as without it.
        @Test func theHookRunsAfterEachOpOfItsBody() {
            let w = randn([4, 3], seed: 2).copy(requiresGrad: true), x = randn([2, 3], seed: 3)
            let calls = CallCount()
            let y = GradMode.betweenOps(calling: { calls.add() }) { silu(linear(x, w)) * 2 }   // linear, silu, scale
            #expect(calls.value == 3, "\(calls.value) calls")
            let z = GradMode.betweenOps(calling: { calls.add() }) { GradMode.withoutGradients { silu(linear(x, w)) } }
            #expect(calls.value == 5, "\(calls.value) calls")
            _ = silu(linear(x, w))
            #expect(calls.value == 5, "no calls outside the body")
            expectClose(y.doubles, (silu(linear(x, w)) * 2).doubles, atol: 0, "same values with the hook")
            expectClose(z.doubles, silu(linear(x, w)).doubles, atol: 0, "same values with the hook")
        }

        @Test func inferenceModeRecordsNothing() {
            let w = randn([4, 3], seed: 2).copy(requiresGrad: true)
            let y = GradMode.withoutGradients { linear(randn([2, 3], seed: 3), w) }
            #expect(!y.requiresGrad)
            #expect(GradMode.isEnabled)
            let z = linear(randn([2, 3], seed: 3), w)
            #expect(z.requiresGrad)
            expectClose(y.doubles, z.doubles, atol: 0, "same values with and without the tape")
        }

        @Test func tensorUsedTwiceGetsBothContributions() {
            // f(x) = x·x + silu(x): x feeds three places.
            expectGradients([randn([23], seed: 4)], "x·x + silu(x)") { $0[0] * $0[0] + silu($0[0]) }
        }

        @Test func smallNetworkEndToEnd() {
            // embedding -> rmsnorm -> linear -> relu² -> linear -> softcapped cross entropy
            let wte = randn([11, 8], seed: 5), w1 = randn([16, 8], seed: 6, std: 0.3), w2 = randn([11, 16], seed: 7, std: 0.3)
            let ids = randomIDs([2, 3], below: 11, seed: 8), targets = randomIDs([2, 3], below: 11, seed: 9)
            expectGradients([wte, w1, w2], "tiny network") { p in
                let h = rmsNorm(embedding(p[0], ids))
                let logits = linear(square(relu(linear(h, p[1]))), p[2])
                return crossEntropy(logits, targets: targets, softcap: 15)
            }
        }

        @Test func freedStorageIsReused() {
            // A size no other test uses: the pool hands the same block back.
            let shape = [7, 1013]
            var first: Tensor? = Tensor(zeros: shape)
            let address = first!.data(Float.self)
            first = nil
            let second = Tensor(uninitializedShape: shape)
            #expect(second.data(Float.self) == address)
            #expect(first == nil)
        }

        @Test func backwardFreesTheGraph() {
            let x = randn([4], seed: 10).copy(requiresGrad: true)
            let y = silu(x)
            let loss = sum(y)
            loss.backward()
            #expect(y.grad == nil, "intermediate gradients are dropped after backward")
            #expect(x.grad != nil)
        }
    }
}

/// A counter a `@Sendable` hook can add to.
final class CallCount: @unchecked Sendable {
    private(set) var value = 0
    func add() { value += 1 }
}
