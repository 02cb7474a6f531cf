// Autograd glue for the elementwise ops: pointwise functions, scaling, and + - · with
// broadcasting over leading axes. Each op computes its forward with a kernel and records
// a closure that calls the matching backward kernel.

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

/// s · x.
public func scale(_ x: Tensor, _ s: Double) -> Tensor {
    switch x.dtype {
    case .float32: return scaleOp(x, Float(s))
    case .float64: return scaleOp(x, s)
    }
}

func scaleOp<S: TensorScalar>(_ x: Tensor, _ s: S) -> Tensor {
    let y = Tensor(uninitializedShape: x.shape, dtype: x.dtype)
    scaleForward(out: y.data(S.self), inp: x.data(S.self), scale: s, count: x.count)
    y.record("scale", [x]) { y in
        scaleBackward(dinp: x.gradData(S.self), dout: y.gradData(S.self), scale: s, count: x.count)
    }
    return y
}

/// a ∘ b where b's shape equals a's or is a suffix of it (b broadcasts over a's leading axes).
public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.dtype == b.dtype, "\(op.rawValue): dtypes differ, \(a.dtype) and \(b.dtype)")
    precondition(b.rank <= a.rank && Array(a.shape.suffix(b.rank)) == b.shape,
                 "\(op.rawValue): shape \(b.shape) does not broadcast over \(a.shape)")
    switch a.dtype {
    case .float32: return binaryOp(op, a, b, Float.self)
    case .float64: return binaryOp(op, a, b, Double.self)
    }
}

func binaryOp<S: TensorScalar>(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, _: S.Type) -> Tensor {
    let n = Swift.max(b.count, 1), rows = a.count / n
    let y = Tensor(uninitializedShape: a.shape, dtype: a.dtype)
    binaryForward(op, out: y.data(S.self), a: a.data(S.self), b: b.data(S.self), rows: rows, n: n)
    y.record(op.rawValue, [a, b]) { y in
        binaryBackward(op, da: a.requiresGrad ? a.gradData(S.self) : nil,
                       db: b.requiresGrad ? b.gradData(S.self) : nil,
                       dout: y.gradData(S.self), a: a.data(S.self), b: b.data(S.self), rows: rows, n: n)
    }
    return y
}

public func + (a: Tensor, b: Tensor) -> Tensor { binary(.add, a, b) }
public func - (a: Tensor, b: Tensor) -> Tensor { binary(.sub, a, b) }
public func * (a: Tensor, b: Tensor) -> Tensor { binary(.mul, a, b) }
public func * (a: Tensor, s: Double) -> Tensor { scale(a, s) }
public func * (s: Double, a: Tensor) -> Tensor { scale(a, s) }
