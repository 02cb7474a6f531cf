// Gradient checking: compare the tape's gradients with central finite differences, in Double.
//
// Inputs are copied to Float64 and the very same kernels run in double precision (they are
// generic over the scalar type; Float64's exp/log/tanh are libm's). The output is projected
// on a fixed random direction R, L = Σ f(x)·R, so every output element is checked at once.
// With step h = 1e-6 the central difference has truncation error ~h^2·|f'''| ≈ 1e-12 and
// rounding error ~2e-16·|L|/h ≈ 2e-10·|L|. The default tolerance, 1e-9·(1 + 10·|L|) +
// 1e-5·|g|, leaves fifty times room for both, while a backward wrong by 1% is off by
// 1e-2·|g|: caught for every gradient larger than about 1e-7·(1 + 10·|L|).
import Foundation

/// What `gradcheck` found: the worst element over all inputs.
public struct GradcheckResult: CustomStringConvertible, Sendable {
    /// Largest |analytic - numeric| over all checked elements.
    public var maxAbsoluteError = 0.0
    /// Largest |analytic - numeric| / (absoluteTolerance + relativeTolerance·|numeric|);
    /// the check passes when this is ≤ 1.
    public var worstRatio = 0.0
    /// Where the worst ratio occurred: input index, flat element index, both values.
    public var worstInput = -1, worstElement = -1
    public var worstAnalytic = 0.0, worstNumeric = 0.0
    public var checkedElements = 0

    public var passed: Bool { worstRatio <= 1 }

    public var description: String {
        String(format: "gradcheck %@: %d elements, max |error| %.3e, worst at input %d element %d " +
               "(analytic %.9e, numeric %.9e, %.2f× tolerance)",
               passed ? "passed" : "FAILED", checkedElements, maxAbsoluteError, worstInput, worstElement,
               worstAnalytic, worstNumeric, worstRatio)
    }
}

/// Checks the gradients of `function` with respect to every input against central finite
/// differences in Float64.
///
/// - Parameters:
///   - inputs: the tensors to differentiate (copied to Float64; the originals are untouched).
///   - step: the finite-difference step h.
///   - absoluteTolerance, relativeTolerance: an element passes when
///     |analytic - numeric| ≤ absoluteTolerance + relativeTolerance·|numeric|. The default
///     absolute tolerance, nil, is 1e-9·(1 + 10·|L|), scaled to the projected output L.
///   - maxElementsPerInput: check at most this many elements of each input, chosen at random
///     (all when nil), for large inputs such as whole-model weights.
///   - seed: seeds the projection direction and the element sample.
///   - function: builds the output from the inputs with tape ops. Any output shape.
public func gradcheck(
    _ inputs: [Tensor], step: Double = 1e-6, absoluteTolerance: Double? = nil,
    relativeTolerance: Double = 1e-5, maxElementsPerInput: Int? = nil, seed: UInt64 = 0,
    _ function: ([Tensor]) -> Tensor
) -> GradcheckResult {
    let xs = inputs.map { $0.copy(dtype: .float64, requiresGrad: true) }
    var rng = SeededGenerator(seed: seed)

    // Analytic: backpropagate the direction R.
    let out = function(xs)
    precondition(out.dtype == .float64, "gradcheck: the function must keep its inputs' dtype")
    let direction = Tensor.randomNormal(out.shape, dtype: .float64, generator: &rng)
    let r = direction.data(Double.self)
    var projectedOut = 0.0
    for i in 0..<out.count { projectedOut += out.data(Double.self)[i] * r[i] }
    let atol = absoluteTolerance ?? 1e-9 * (1 + 10 * abs(projectedOut))
    out.backward(seed: direction)
    let analytic = xs.map { $0.grad?.doubles ?? [Double](repeating: 0, count: $0.count) }

    func projected() -> Double {
        GradMode.withoutGradients {
            let y = function(xs)
            let p = y.data(Double.self)
            var s = 0.0
            for i in 0..<y.count { s += p[i] * r[i] }
            return s
        }
    }

    var result = GradcheckResult()
    for (i, x) in xs.enumerated() {
        let p = x.data(Double.self)
        var elements = Array(0..<x.count)
        if let cap = maxElementsPerInput, cap < x.count {
            elements.shuffle(using: &rng)
            elements = Array(elements.prefix(cap)).sorted()
        }
        for j in elements {
            let saved = p[j]
            p[j] = saved + step
            let up = projected()
            p[j] = saved - step
            let down = projected()
            p[j] = saved
            let numeric = (up - down) / (2 * step)
            let a = analytic[i][j]
            let err = abs(a - numeric)
            let ratio = err / (atol + relativeTolerance * abs(numeric))
            result.checkedElements += 1
            result.maxAbsoluteError = max(result.maxAbsoluteError, err)
            if ratio > result.worstRatio || result.worstInput < 0 {
                result.worstRatio = ratio
                result.worstInput = i; result.worstElement = j
                result.worstAnalytic = a; result.worstNumeric = numeric
            }
        }
    }
    return result
}
