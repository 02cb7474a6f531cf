// Shared helpers: seeded random tensors and a closeness check that reports the largest
// difference and where it is.
import Testing
import Tensor

/// Every suite of this target nests in this one.
@Suite struct TensorTests {}

func randn(_ shape: [Int], seed: UInt64, std: Double = 1, dtype: DType = .float32) -> Tensor {
    var g = SeededGenerator(seed: seed)
    return Tensor.randomNormal(shape, std: std, dtype: dtype, generator: &g)
}

func randomIDs(_ shape: [Int], below v: Int, seed: UInt64) -> IndexTensor {
    var g = SeededGenerator(seed: seed)
    return IndexTensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Int32(g.next() % UInt64(v)) })
}

/// Expects |actual - expected| ≤ atol + rtol·|expected| elementwise; on failure reports the
/// worst element, its index, and both values.
func expectClose(
    _ actual: [Double], _ expected: [Double], atol: Double, rtol: Double = 0, _ label: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actual.count == expected.count, "\(label): \(actual.count) values, expected \(expected.count)",
            sourceLocation: sourceLocation)
    var worst = -1, worstRatio = 0.0, maxDiff = 0.0
    for i in 0..<min(actual.count, expected.count) {
        let d = abs(actual[i] - expected[i])
        let r = d == 0 ? 0 : d / (atol + rtol * abs(expected[i]))
        maxDiff = max(maxDiff, d.isNaN ? .infinity : d)
        if r > worstRatio || r.isNaN { worstRatio = r.isNaN ? .infinity : r; worst = i }
    }
    #expect(worstRatio <= 1, """
        \(label): max |diff| \(maxDiff); worst at \(worst): got \(worst >= 0 ? actual[worst] : 0), \
        expected \(worst >= 0 ? expected[worst] : 0) (atol \(atol), rtol \(rtol))
        """, sourceLocation: sourceLocation)
}

/// Expects gradcheck to pass, printing its report on failure.
func expectGradients(
    _ inputs: [Tensor], _ label: String, maxElementsPerInput: Int? = nil,
    sourceLocation: SourceLocation = #_sourceLocation, _ f: ([Tensor]) -> Tensor
) {
    let r = gradcheck(inputs, maxElementsPerInput: maxElementsPerInput, f)
    #expect(r.checkedElements > 0, "\(label): nothing checked", sourceLocation: sourceLocation)
    #expect(r.passed, "\(label): \(r)", sourceLocation: sourceLocation)
}

/// Runs body with the kernels' thread count set to n for this test alone.
func withThreads<R>(_ n: Int, _ body: () -> R) -> R { Parallel.withThreadCount(n, body) }
