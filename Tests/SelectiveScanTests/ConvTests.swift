// Causal depthwise conv1d: forward against the definition, gradients through gradcheck,
// and the rolling-state step against the full conv.
import Testing
import Tensor
import SelectiveScan

extension SelectiveScanTests {
    @Suite struct ConvTests {
        // (B, T, Di, K): T shorter than K, Di not a multiple of 16, K = 1.
        @Test(arguments: [(2, 9, 21, 4), (1, 2, 16, 4), (3, 5, 40, 1), (1, 33, 70, 3), (2, 5, 200, 4)])
        func forwardMatchesDefinition(_ s: (Int, Int, Int, Int)) {
            let (b, t, di, k) = s
            var g = SeededGenerator(seed: 1)
            let x = Tensor.randomNormal([b, t, di], generator: &g), w = Tensor.randomNormal([di, 1, k], generator: &g)
            let bias = Tensor.randomNormal([di], generator: &g)
            let ref = Tensor(zeros: [b, t, di])
            causalConvReference(out: ref.data(Float.self), inp: x.data(Float.self), weight: w.data(Float.self),
                                bias: bias.data(Float.self), batch: b, time: t, channels: di, kernel: k)
            expectScaledClose(causalConv1d(x, weight: w, bias: bias).doubles, ref.doubles, atol: 1e-6, rtol: 1e-6, "conv \(s)")
        }

        // (B, T, Di): one channel range; 150 channels, so the ranges of `convGrain` channels
        // split the blocks, the last one partial; and several sequences of them, whose weight
        // and bias gradients are summed per sequence and then over the sequences.
        @Test(arguments: [(2, 7, 19), (1, 6, 150), (3, 5, 150)])
        func backwardPassesGradcheck(_ s: (Int, Int, Int)) {
            let (b, t, di) = s
            var g = SeededGenerator(seed: 2)
            let x = Tensor.randomNormal([b, t, di], generator: &g), w = Tensor.randomNormal([di, 1, 4], generator: &g)
            let bias = Tensor.randomNormal([di], generator: &g)
            let report = Parallel.withThreadCount(2) {
                gradcheck([x, w, bias]) { causalConv1d($0[0], weight: $0[1], bias: $0[2]) }
            }
            #expect(report.passed, "\(report)")
        }

        /// Forward and backward give the same bits on 1, 2 and 3 workers (the items are
        /// cut by the shape, and the sequences' sums added in order).
        @Test func bitsDoNotDependOnTheWorkers() {
            var g = SeededGenerator(seed: 4)
            let x = Tensor.randomNormal([5, 33, 200], generator: &g), w = Tensor.randomNormal([200, 1, 4], generator: &g)
            let bias = Tensor.randomNormal([200], generator: &g), seed = Tensor.randomNormal([5, 33, 200], generator: &g)
            func run(_ n: Int) -> [[UInt32]] {
                Parallel.withThreadCount(n) {
                    let inputs = [x, w, bias].map { $0.copy(requiresGrad: true) }
                    let y = causalConv1d(inputs[0], weight: inputs[1], bias: inputs[2])
                    y.backward(seed: seed)
                    return ([y] + inputs.compactMap(\.grad)).map { $0.floats.map(\.bitPattern) }
                }
            }
            let one = run(1)
            #expect(one.count == 4)
            for n in [2, 3] { #expect(run(n) == one, "\(n) workers") }
        }

        @Test func stepWithRollingStateEqualsFullConv() {
            let (b, t, di, k) = (2, 8, 20, 4)
            var g = SeededGenerator(seed: 3)
            let x = Tensor.randomNormal([b, t, di], generator: &g), w = Tensor.randomNormal([di, 1, k], generator: &g)
            let bias = Tensor.randomNormal([di], generator: &g)
            let full = causalConv1d(x, weight: w, bias: bias).doubles
            let state = Tensor(zeros: [b, di, k - 1])
            var stepped = [Double](repeating: 0, count: full.count)
            for ti in 0..<t {
                let xt = slice(x, axis: 1, ti..<(ti + 1)), y = Tensor(zeros: [b, di])
                causalConvStep(out: y.data(Float.self), state: state.data(Float.self), inp: xt.data(Float.self),
                               weight: w.data(Float.self), bias: bias.data(Float.self), batch: b, channels: di, kernel: k)
                for bi in 0..<b { for d in 0..<di { stepped[(bi * t + ti) * di + d] = Double(y.data(Float.self)[bi * di + d]) } }
            }
            expectScaledClose(stepped, full, atol: 1e-6, rtol: 1e-6, "conv step")
        }
    }
}
