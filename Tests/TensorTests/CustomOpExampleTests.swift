// The README's "write an op and check its gradient" examples, kept compiling and passing.
import Testing
import Tensor

/// softsign(x) = x / (1 + |x|);  softsign'(x) = 1 / (1 + |x|)².
enum Softsign: PointwiseFunction {
    static let name = "softsign"
    static func forward<S: TensorScalar>(_ x: SIMD16<S>) -> SIMD16<S> { x / (1 + vabs(x)) }
    static func backward<S: TensorScalar>(x: SIMD16<S>, y: SIMD16<S>, dy: SIMD16<S>) -> SIMD16<S> {
        let d = 1 + vabs(x)
        return dy / (d * d)
    }
    static func reference(_ x: Double) -> Double { x / (1 + abs(x)) }
}

/// Cumulative sum over the last axis: y[..., j] = Σ_{i ≤ j} x[..., i]. A general op: the
/// forward writes the output, `record` attaches the backward, which adds into the input's
/// gradient (here a reverse cumulative sum).
func cumulativeSum(_ x: Tensor) -> Tensor {
    precondition(x.dtype == .float64 || x.dtype == .float32)
    let n = x.shape.last!, rows = x.count / n
    let y = Tensor(zeros: x.shape, dtype: x.dtype)
    func run<S: TensorScalar>(_: S.Type) {
        let px = x.data(S.self), py = y.data(S.self)
        for r in 0..<rows {
            var acc: S = 0
            for j in 0..<n { acc += px[r * n + j]; py[r * n + j] = acc }
        }
        y.record("cumsum", [x]) { y in
            let dy = y.gradData(S.self), dx = x.gradData(S.self)
            for r in 0..<rows {
                var acc: S = 0
                for j in (0..<n).reversed() { acc += dy[r * n + j]; dx[r * n + j] += acc }
            }
        }
    }
    if x.dtype == .float32 { run(Float.self) } else { run(Double.self) }
    return y
}

extension TensorTests {
    @Suite struct CustomOpExampleTests {
        @Test func pointwiseOpOfYourOwn() {
            let x = randn([100], seed: 1)
            expectClose(pointwise(Softsign.self, x).doubles, x.doubles.map(Softsign.reference), atol: 1e-6, "softsign")
            let report = gradcheck([randn([40], seed: 2)]) { pointwise(Softsign.self, $0[0]) }
            #expect(report.passed, "\(report)")
        }

        @Test func generalOpOfYourOwn() {
            let report = gradcheck([randn([3, 17], seed: 3)]) { cumulativeSum($0[0]) }
            #expect(report.passed, "\(report)")
            #expect(report.checkedElements == 51)
        }
    }
}

extension TensorTests {
    @Suite struct ReadmeExampleTests {
        @Test func quickTour() {
            var g = SeededGenerator(seed: 0)
            let wte = Tensor.randomNormal([10, 8], generator: &g)
            let head = Tensor.randomNormal([10, 8], std: 0.3, generator: &g)
            wte.requiresGrad = true
            head.requiresGrad = true
            let ids = IndexTensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
            let targets = IndexTensor(shape: [2, 3], values: [2, 3, 4, 5, 6, -1])
            let h = rmsNorm(embedding(wte, ids))
            let logits = linear(h, head)
            let loss = crossEntropy(logits, targets: targets, softcap: 15)
            loss.backward()
            #expect(logits.shape == [2, 3, 10])
            #expect(wte.grad != nil && head.grad != nil)
            #expect(head.grad!.doubles.contains { $0 != 0 })
            head.zeroGrad()
            #expect(head.grad!.doubles.allSatisfy { $0 == 0 })
            let y = GradMode.withoutGradients { linear(h, head) }
            #expect(!y.requiresGrad)
        }
    }
}
