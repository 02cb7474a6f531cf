// AdamW (SPEC §2): the update as one SIMD pass over a parameter, its gradient and its two
// moments, and the optimiser that runs it over its parameters.
import Foundation

/// Constants of one AdamW update of one parameter.
public struct AdamWStep: Sendable {
    public var lr: Float, beta1: Float, beta2: Float, epsilon: Float
    /// 1 − lr · weight decay: the decoupled decay applied to the weights.
    public var decay: Float
    /// 1 / (1 − β₁ᵗ) and 1 / (1 − β₂ᵗ): the bias corrections at step t.
    public var correction1: Float, correction2: Float
    /// Factor the gradient is read with (gradient clipping), g ← g · gradScale: the same
    /// bits as scaling the gradient in place first, without a pass over it.
    public var gradScale: Float

    public init(lr: Float, beta1: Float, beta2: Float, epsilon: Float, decay: Float, correction1: Float, correction2: Float,
                gradScale: Float = 1) {
        self.lr = lr; self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
        self.decay = decay; self.correction1 = correction1; self.correction2 = correction2; self.gradScale = gradScale
    }
}

/// For i in 0..<n, with g = gradient · gradScale:
///   m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,
///   p ← decay · p − lr · (m · c₁) / (√(v · c₂) + ε),
/// over the workers. Each lane does the scalar formula's operations in its order (no fused
/// multiply-adds), so the bits equal a scalar loop's and do not depend on the thread count.
public func adamWUpdate(
    parameter p: UnsafeMutablePointer<Float>, gradient g: UnsafePointer<Float>,
    m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, count n: Int, _ s: AdamWStep
) {
    typealias V = SIMD16<Float>
    let (b1, b2, ob1, ob2) = (V(repeating: s.beta1), V(repeating: s.beta2), V(repeating: 1 - s.beta1), V(repeating: 1 - s.beta2))
    let (lr, decay, c1, c2, eps) = (V(repeating: s.lr), V(repeating: s.decay), V(repeating: s.correction1),
                                    V(repeating: s.correction2), V(repeating: s.epsilon))
    let gs = V(repeating: s.gradScale)
    @inline(__always) func lanes(_ p: inout V, _ raw: V, _ m: inout V, _ v: inout V) {
        let g = raw * gs
        m = b1 * m + ob1 * g
        v = b2 * v + ob2 * g * g
        p = p * decay - lr * (m * c1) / (Float.vsqrt(v * c2) + eps)
    }
    Parallel.forRanges(n) { range in
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            var (pv, mv, vv) = (load(p + i), load(m + i), load(v + i))
            lanes(&pv, load(g + i), &mv, &vv)
            store(pv, p + i); store(mv, m + i); store(vv, v + i)
            i += 16
        }
        if i < range.upperBound {
            let k = range.upperBound - i
            var (pv, mv, vv) = (loadPartial(p + i, k), loadPartial(m + i, k), loadPartial(v + i, k))
            lanes(&pv, loadPartial(g + i, k), &mv, &vv)
            storePartial(pv, p + i, k); storePartial(mv, m + i, k); storePartial(vv, v + i, k)
        }
    }
}

/// AdamW (decoupled weight decay), PyTorch's update with bias correction:
///   m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²
///   p ← p·(1 - lr·wd) - lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + ε)
public final class AdamW {
    public let parameters: [Tensor]
    public let lrs: [Double]
    public let betas: (Double, Double), epsilon: Double, weightDecay: Double
    /// Updates made so far (the bias corrections use it); set when resuming.
    public var step = 0
    /// First and second moments, one pair per parameter (saved in optimiser checkpoints);
    /// empty for a parameter this process does not own.
    public let m: [Tensor], v: [Tensor]
    /// The parameters this process updates (all, unless the state is sharded over ranks).
    public let owned: [Bool]

    /// `owned` nil: every parameter; else only those marked, the others keep no state and
    /// are left as they are (another rank updates them).
    public init(parameters: [Tensor], lrs: [Double], betas: (Double, Double), epsilon: Double, weightDecay: Double,
                owned: [Bool]? = nil) {
        precondition(parameters.count == lrs.count)
        self.parameters = parameters; self.lrs = lrs
        self.betas = betas; self.epsilon = epsilon; self.weightDecay = weightDecay
        let mine = owned ?? Array(repeating: true, count: parameters.count)
        self.owned = mine
        m = zip(parameters, mine).map { p, own in Tensor(zeros: own ? p.shape : [0]) }
        v = zip(parameters, mine).map { p, own in Tensor(zeros: own ? p.shape : [0]) }
    }

    /// One update with every learning rate times `lrMultiplier`, reading each gradient
    /// times `gradScale` (the clipping factor).
    public func update(lrMultiplier: Double, gradScale: Float = 1) {
        step += 1
        let c1 = 1 - pow(betas.0, Double(step)), c2 = 1 - pow(betas.1, Double(step))
        for (i, p) in parameters.enumerated() where owned[i] {
            guard let g = p.grad else { continue }
            let lr = Float(lrs[i] * lrMultiplier)
            let constants = AdamWStep(lr: lr, beta1: Float(betas.0), beta2: Float(betas.1), epsilon: Float(epsilon),
                                      decay: 1 - lr * Float(weightDecay), correction1: Float(1 / c1), correction2: Float(1 / c2),
                                      gradScale: gradScale)
            adamWUpdate(parameter: p.data(Float.self), gradient: g.data(Float.self),
                        m: m[i].data(Float.self), v: v[i].data(Float.self), count: p.count, constants)
        }
    }
}
