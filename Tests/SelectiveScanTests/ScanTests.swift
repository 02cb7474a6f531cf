// The chunked parallel scan against the sequential reference: outputs, final states and
// every gradient, for odd sizes and both time strategies; thread-count determinism;
// gradcheck in Double; decoding step by step.
import Testing
import Tensor
import SelectiveScan

extension SelectiveScanTests {
    @Suite struct ScanTests {
        // (B, T, Di, N, chunk): T = 1; T not a multiple of the chunk; B = 1; Di not a
        // multiple of 16 and above a 64-channel group; N = 1; N = 64.
        static let shapes: [(Int, Int, Int, Int, Int)] = [
            (1, 1, 16, 16, 64), (2, 37, 20, 16, 8), (1, 130, 70, 16, 64), (3, 50, 5, 1, 16), (1, 40, 33, 64, 16),
        ]

        @Test(arguments: shapes, [ScanStrategy.carry, .timeParallel])
        func forwardAndFinalStateMatchReference(_ s: (Int, Int, Int, Int, Int), _ strategy: ScanStrategy) {
            let p = ScanProblem(batch: s.0, time: s.1, channels: s.2, state: s.3, chunk: s.4, seed: 1)
            let sh = p.shape
            let out = Tensor(zeros: p.u.shape), ref = Tensor(zeros: p.u.shape)
            let state = Tensor(zeros: [sh.batch, sh.channels, sh.state]), refState = Tensor(zeros: state.shape)
            selectiveScanForward(out: out.data(Float.self), inputs: p.inputs(), shape: sh,
                                 finalState: state.data(Float.self), strategy: strategy)
            selectiveScanReference(out: ref.data(Float.self), inputs: p.inputs(), shape: sh, finalState: refState.data(Float.self))
            expectScaledClose(out.doubles, ref.doubles, atol: 1e-6, rtol: 2e-5, "out \(s) \(strategy)")
            expectScaledClose(state.doubles, refState.doubles, atol: 1e-6, rtol: 2e-5, "final state \(s) \(strategy)")
        }

        @Test(arguments: shapes, [ScanStrategy.carry, .timeParallel])
        func gradientsMatchReference(_ s: (Int, Int, Int, Int, Int), _ strategy: ScanStrategy) {
            let p = ScanProblem(batch: s.0, time: s.1, channels: s.2, state: s.3, chunk: s.4, seed: 2)
            let sh = p.shape
            var g = SeededGenerator(seed: 3)
            let dout = Tensor.randomNormal(p.u.shape, generator: &g)
            let out = Tensor(zeros: p.u.shape), boundary = Tensor(zeros: [sh.boundaryCount])
            selectiveScanForward(out: out.data(Float.self), inputs: p.inputs(), shape: sh,
                                 boundaryStates: boundary.data(Float.self), strategy: strategy)
            let (fast, fastGrads) = p.gradientBuffers(), (ref, refGrads) = p.gradientBuffers()
            selectiveScanBackward(grads: fastGrads, dout: dout.data(Float.self), inputs: p.inputs(), shape: sh,
                                  boundaryStates: boundary.data(Float.self), strategy: strategy)
            selectiveScanBackwardReference(grads: refGrads, dout: dout.data(Float.self), inputs: p.inputs(), shape: sh)
            for i in 0..<8 {
                expectScaledClose(fast[i].doubles, ref[i].doubles, atol: 1e-6, rtol: 1e-4,
                                  "d\(ScanProblem.names[i]) \(s) \(strategy)")
            }
        }

        @Test(arguments: [ScanStrategy.carry, .timeParallel])
        func oneAndTwoThreadsGiveIdenticalBits(_ strategy: ScanStrategy) {
            let p = ScanProblem(batch: 2, time: 150, channels: 140, state: 16, chunk: 32, seed: 4)
            var g = SeededGenerator(seed: 5)
            let dout = Tensor.randomNormal(p.u.shape, generator: &g)
            func run(_ threads: Int) -> [[UInt32]] { Parallel.withThreadCount(threads) { runHere() } }
            func runHere() -> [[UInt32]] {
                let out = Tensor(zeros: p.u.shape), boundary = Tensor(zeros: [p.shape.boundaryCount])
                selectiveScanForward(out: out.data(Float.self), inputs: p.inputs(), shape: p.shape,
                                     boundaryStates: boundary.data(Float.self), strategy: strategy)
                let (grads, gp) = p.gradientBuffers()
                selectiveScanBackward(grads: gp, dout: dout.data(Float.self), inputs: p.inputs(), shape: p.shape,
                                      boundaryStates: boundary.data(Float.self), strategy: strategy)
                return ([out] + grads).map { $0.floats.map(\.bitPattern) }
            }
            let one = run(1), two = run(2)
            for i in 0..<one.count {
                #expect(one[i] == two[i], "tensor \(i) (\(strategy)) differs between 1 and 2 threads")
            }
        }

        @Test(arguments: [ScanStrategy.carry, .timeParallel])
        func gradcheckInDouble(_ strategy: ScanStrategy) {
            let p = ScanProblem(batch: 2, time: 11, channels: 18, state: 3, chunk: 4, seed: 6)
            let report = gradcheck(p.tensors, maxElementsPerInput: 60) { x in
                selectiveScan(u: x[0], deltaRaw: x[1], dtBias: x[2], aLog: x[3], bm: x[4], cm: x[5], d: x[6], z: x[7],
                              chunk: 4, strategy: strategy)
            }
            #expect(report.passed, "\(report)")
        }

        /// The extra memory `bench scan` reports is the sum its doc comment gives, in Float32
        /// bytes: boundary states B·(⌈T/L⌉+1)·N·Di; per worker 16-wide vectors for the
        /// recompute (4·L·N + 3·L), the group's dh, dA and start state ((2·64/16 + 1)·N) and a
        /// block's 4·N; the partials per batch and time item (Di·N + 2·Di) and dBm, dCm per
        /// channel group (2·groups·B·T·N); A transposed (N·Di); with the time-parallel strategy
        /// three more boundary-sized buffers.
        @Test func extraMemoryIsItsFormula() {
            let (b, t, di, n, l, threads) = (2, 150, 192, 16, 64, 3)
            let sh = ScanShape(batch: b, time: t, channels: di, state: n, chunk: l)
            let chunks = 3, groups = 3, boundary = b * (chunks + 1) * n * di
            let perWorker = (4 * l * n + 3 * l + (2 * 64 / 16 + 1) * n + 4 * n) * 16
            func expected(timeItems: Int, carries: Int) -> Int {
                4 * (boundary + threads * perWorker + b * timeItems * (di * n + 2 * di) + 2 * groups * b * t * n + n * di + carries)
            }
            #expect(sh.extraBytes(threads: threads, strategy: .carry) == expected(timeItems: 1, carries: 0))
            #expect(sh.extraBytes(threads: threads, strategy: .timeParallel) == expected(timeItems: chunks, carries: 3 * boundary))
        }

        /// State sizes of one full 16-wide vector, of two and a part (the step's vectors past
        /// the first and its tail), and of a tail alone.
        @Test(arguments: [16, 40, 5])
        func stepByStepDecodingEqualsFullScan(_ n: Int) {
            let p = ScanProblem(batch: 2, time: 9, channels: 21, state: n, seed: 7)
            let sh = p.shape
            let full = Tensor(zeros: p.u.shape), fullState = Tensor(zeros: [sh.batch, sh.channels, sh.state])
            selectiveScanForward(out: full.data(Float.self), inputs: p.inputs(), shape: sh, finalState: fullState.data(Float.self))
            let state = Tensor(zeros: fullState.shape)
            var stepped = [Double](repeating: 0, count: full.count)
            for t in 0..<sh.time {
                let pick = { (x: Tensor) in slice(x, axis: 1, t..<(t + 1)) }
                let (u, dr, bm, cm, z) = (pick(p.u), pick(p.deltaRaw), pick(p.bm), pick(p.cm), pick(p.z))
                let out = Tensor(zeros: [sh.batch, sh.channels])
                selectiveScanStep(out: out.data(Float.self), state: state.data(Float.self),
                                  inputs: ScanInputs(u: u.data(Float.self), deltaRaw: dr.data(Float.self),
                                                     dtBias: p.dtBias.data(Float.self), aLog: p.aLog.data(Float.self),
                                                     bm: bm.data(Float.self), cm: cm.data(Float.self),
                                                     d: p.d.data(Float.self), z: z.data(Float.self)),
                                  batch: sh.batch, channels: sh.channels, state: sh.state)
                for b in 0..<sh.batch { for d in 0..<sh.channels {
                    stepped[(b * sh.time + t) * sh.channels + d] = Double(out.data(Float.self)[b * sh.channels + d])
                } }
            }
            expectScaledClose(stepped, full.doubles, atol: 1e-6, rtol: 1e-5, "step-by-step out, N \(n)")
            expectScaledClose(state.doubles, fullState.doubles, atol: 1e-6, rtol: 1e-5, "step-by-step state, N \(n)")
        }

        @Test func prefillInTwoPartsEqualsOnePass() {
            // Scanning T = 100 at once equals scanning 0..<60, then 60..<100 from its state;
            // two sequences, each read from its own part of the state.
            let p = ScanProblem(batch: 2, time: 100, channels: 40, state: 16, seed: 8)
            let whole = selectiveScanInference(u: p.u, deltaRaw: p.deltaRaw, dtBias: p.dtBias, aLog: p.aLog,
                                               bm: p.bm, cm: p.cm, d: p.d, z: p.z)
            func part(_ r: Range<Int>, _ state: Tensor?) -> (out: Tensor, state: Tensor) {
                let s = { (x: Tensor) in slice(x, axis: 1, r) }
                return selectiveScanInference(u: s(p.u), deltaRaw: s(p.deltaRaw), dtBias: p.dtBias, aLog: p.aLog,
                                              bm: s(p.bm), cm: s(p.cm), d: p.d, z: s(p.z), initialState: state)
            }
            let first = part(0..<60, nil), second = part(60..<100, first.state)
            expectScaledClose(concat([first.out, second.out], axis: 1).doubles, whole.out.doubles,
                              atol: 1e-6, rtol: 1e-5, "two-part prefill")
            expectScaledClose(second.state.doubles, whole.state.doubles, atol: 1e-6, rtol: 1e-5, "two-part state")
        }
    }
}
