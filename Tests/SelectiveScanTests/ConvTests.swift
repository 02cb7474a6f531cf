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

        // (B, T, Di): one channel range; and 150 channels on two workers, so the workers'
        // ranges (of at least `convGrain` channels) split the blocks, the last one partial.
        @Test(arguments: [(2, 7, 19), (1, 6, 150)])
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
