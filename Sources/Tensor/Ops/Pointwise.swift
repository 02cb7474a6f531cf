// Pointwise functions, each with its derivative beside it and a scalar reference in Double.
// One driver (`pointwiseForward` / `pointwiseBackward`) runs them all over SIMD16 vectors;
// `pointwise` puts any of them on the tape.
import Foundation

/// A pointwise function y = f(x) with its backward rule.
public protocol PointwiseFunction {
    static var name: String { get }
    /// y = f(x).
    static func forward<S: TensorScalar>(_ x: SIMD16<S>) -> SIMD16<S>
    /// dL/dx = f'(x) · dy, given x, y = f(x) and dy = dL/dy.
    static func backward<S: TensorScalar>(x: SIMD16<S>, y: SIMD16<S>, dy: SIMD16<S>) -> SIMD16<S>
    /// f(x) from libm, the reference the tests compare the kernels with.
    static func reference(_ x: Double) -> Double
}

/// relu(x) = max(x, 0); the derivative at 0 is taken as 0 (as PyTorch).
public enum Relu: PointwiseFunction {
    public static let name = "relu"
    @inlinable @inline(__always) public static func forward<S: TensorScalar>(_ x: SIMD16<S>) -> SIMD16<S> {
        S.vwhere(SIMD16(), lessThan: x, x, else: SIMD16())
    }
    @inlinable @inline(__always) public static func backward<S: TensorScalar>(x: SIMD16<S>, y: SIMD16<S>, dy: SIMD16<S>) -> SIMD16<S> {
        S.vwhere(SIMD16(), lessThan: x, dy, else: SIMD16())
    }
    public static func reference(_ x: Double) -> Double { max(x, 0) }
}

/// square(x) = x².
public enum Square: PointwiseFunction {
    public static let name = "square"
    @inlinable @inline(__always) public static func forward<S: TensorScalar>(_ x: SIMD16<S>) -> SIMD16<S> { x * x }
    @inlinable @inline(__always) public static func backward<S: TensorScalar>(x: SIMD16<S>, y: SIMD16<S>, dy: SIMD16<S>) -> SIMD16<S> {
        (x + x) * dy
    }
    public static func reference(_ x: Double) -> Double { x * x }
}

/// relu(x)² in one pass (nanochat's MLP activation);  d/dx = 2·relu(x). The same bits as
/// square(relu(x)), with one activation saved instead of two.
public enum ReluSquared: PointwiseFunction {
    public static let name = "relu_squared"
    @inlinable @inline(__always) public static func forward<S: TensorScalar>(_ x: SIMD16<S>) -> SIMD16<S> {
        let r = Relu.forward(x)
        return r * r
    }
    @inlinable @inline(__always) public static func backward<S: TensorScalar>(x: SIMD16<S>, y: SIMD16<S>, dy: SIMD16<S>) -> SIMD16<S> {
        let r = Relu.forward(x)
        return (r + r) * dy
    }
    public static func reference(_ x: Double) -> Double { max(x, 0) * max(x, 0) }
}

/// silu(x) = x·σ(x), σ(x) = 1/(1+e^-x);  silu'(x) = σ(x)·(1 + x·(1-σ(x))).
public enum Silu: PointwiseFunction {
    public static let name = "silu"
    @inlinable @inline(__always) public static func forward<S: TensorScalar>(_ x: SIMD16<S>) -> SIMD16<S> {
        x / (S.vexp(-x) + 1)
    }
    @inlinable @inline(__always) public static func backward<S: TensorScalar>(x: SIMD16<S>, y: SIMD16<S>, dy: SIMD16<S>) -> SIMD16<S> {
        let s = 1 / (S.vexp(-x) + 1)
        return dy * s * (1 + x * (1 - s))
    }
    public static func reference(_ x: Double) -> Double { x / (1 + Foundation.exp(-x)) }
}

/// softplus(x) = log(1 + e^x), computed as max(x,0) + log1p(e^-|x|); x for x > 20 as
/// PyTorch's default threshold;  softplus'(x) = σ(x).
public enum Softplus: PointwiseFunction {
    public static let name = "softplus"
    @inlinable @inline(__always) public static func forward<S: TensorScalar>(_ x: SIMD16<S>) -> SIMD16<S> {
        forward(x, expNegAbs: S.vexp(-vabs(x)))
    }
    /// (softplus(x), σ(x) = softplus'(x)) from one exponential e = e^-|x|: softplus as
    /// `forward` (the same bits), σ = 1/(1+e) for x ≥ 0 and e/(1+e) below. For the selective
    /// scan's backward, which needs both per time step.
    @inlinable @inline(__always)
    public static func forwardAndDerivative<S: TensorScalar>(_ x: SIMD16<S>) -> (value: SIMD16<S>, derivative: SIMD16<S>) {
        let e = S.vexp(-vabs(x)), r = 1 / (e + 1)
        return (forward(x, expNegAbs: e), S.vwhere(x, lessThan: SIMD16(), e * r, else: r))
    }
    @inlinable @inline(__always)
    static func forward<S: TensorScalar>(_ x: SIMD16<S>, expNegAbs e: SIMD16<S>) -> SIMD16<S> {
        S.vwhere(SIMD16(repeating: 20), lessThan: x, x, else: vmax(x, SIMD16()) + S.vlog1p(e))
    }
    @inlinable @inline(__always) public static func backward<S: TensorScalar>(x: SIMD16<S>, y: SIMD16<S>, dy: SIMD16<S>) -> SIMD16<S> {
        let d = dy / (S.vexp(-x) + 1)
        return S.vwhere(SIMD16(repeating: 20), lessThan: x, dy, else: d)
    }
    public static func reference(_ x: Double) -> Double { x > 20 ? x : Foundation.log1p(Foundation.exp(x)) }
}

/// exp(x);  exp'(x) = exp(x) = y.
public enum Exp: PointwiseFunction {
    public static let name = "exp"
    @inlinable @inline(__always) public static func forward<S: TensorScalar>(_ x: SIMD16<S>) -> SIMD16<S> { S.vexp(x) }
    @inlinable @inline(__always) public static func backward<S: TensorScalar>(x: SIMD16<S>, y: SIMD16<S>, dy: SIMD16<S>) -> SIMD16<S> {
        y * dy
    }
    public static func reference(_ x: Double) -> Double { Foundation.exp(x) }
}

/// tanh(x);  tanh'(x) = 1 - y².
public enum Tanh: PointwiseFunction {
    public static let name = "tanh"
    @inlinable @inline(__always) public static func forward<S: TensorScalar>(_ x: SIMD16<S>) -> SIMD16<S> { S.vtanh(x) }
    @inlinable @inline(__always) public static func backward<S: TensorScalar>(x: SIMD16<S>, y: SIMD16<S>, dy: SIMD16<S>) -> SIMD16<S> {
        dy * (1 - y * y)
    }
    public static func reference(_ x: Double) -> Double { Foundation.tanh(x) }
}

/// y[i] = F(x[i]) for i < n, on all threads.
@inlinable @inline(__always)
public func pointwiseForward<F: PointwiseFunction, S: TensorScalar>(
    _: F.Type, out y: UnsafeMutablePointer<S>, inp x: UnsafePointer<S>, count n: Int
) {
    Parallel.forRanges(n) { range in mapRange(range, x, y, F.forward) }
}

/// dx[i] += F'(x[i]) · dy[i] for i < n (dx[i] = … when `accumulate` is false), on all threads.
@inlinable @inline(__always)
public func pointwiseBackward<F: PointwiseFunction, S: TensorScalar>(
    _: F.Type, dinp dx: UnsafeMutablePointer<S>, inp x: UnsafePointer<S>,
    out y: UnsafePointer<S>, dout dy: UnsafePointer<S>, count n: Int, accumulate: Bool = true
) {
    Parallel.forRanges(n) { range in
        accumulateRange3(range, x, y, dy, into: dx, adding: accumulate) { xv, yv, dyv in F.backward(x: xv, y: yv, dy: dyv) }
    }
}

/// Applies a pointwise function (`Relu`, `Square`, `ReluSquared`, `Silu`, `Softplus`, `Exp`, `Tanh`, or
/// your own `PointwiseFunction`). Any shape.
public func pointwise<F: PointwiseFunction>(_ f: F.Type, _ x: Tensor) -> Tensor {
    switch x.dtype {
    case .float32: return pointwiseOp(F.self, x, Float.self)
    case .float64: return pointwiseOp(F.self, x, Double.self)
    }
}

func pointwiseOp<F: PointwiseFunction, S: TensorScalar>(_: F.Type, _ x: Tensor, _: S.Type) -> Tensor {
    let y = Tensor(uninitializedShape: x.shape, dtype: x.dtype)
    pointwiseForward(F.self, out: y.data(S.self), inp: x.data(S.self), count: x.count)
    y.record(F.name, [x]) { y in
        let (dx, accumulate) = x.gradForWriting(S.self)
        pointwiseBackward(F.self, dinp: dx, inp: x.data(S.self), out: y.data(S.self),
                          dout: y.gradData(S.self), count: x.count, accumulate: accumulate)
    }
    return y
}

public func relu(_ x: Tensor) -> Tensor { pointwise(Relu.self, x) }
public func square(_ x: Tensor) -> Tensor { pointwise(Square.self, x) }
public func reluSquared(_ x: Tensor) -> Tensor { pointwise(ReluSquared.self, x) }
public func silu(_ x: Tensor) -> Tensor { pointwise(Silu.self, x) }
public func softplus(_ x: Tensor) -> Tensor { pointwise(Softplus.self, x) }
public func exp(_ x: Tensor) -> Tensor { pointwise(Exp.self, x) }
public func tanh(_ x: Tensor) -> Tensor { pointwise(Tanh.self, x) }

/// cap · tanh(x / cap): logits bounded to ±cap (nanochat's softcap), as a composition.
public func softcap(_ x: Tensor, _ cap: Double) -> Tensor { scale(tanh(scale(x, 1 / cap)), cap) }
