// RMSNorm on the tape.

/// Parameter-free RMSNorm over the last axis: x / sqrt(mean(x²) + eps), eps = 1.1920929e-07.
public func rmsNorm(_ x: Tensor) -> Tensor {
    switch x.dtype {
    case .float32: return rmsNormOp(x, Float.self)
    case .float64: return rmsNormOp(x, Double.self)
    }
}

func rmsNormOp<S: TensorScalar>(_ x: Tensor, _: S.Type) -> Tensor {
    let n = x.shape.last ?? 1, rows = x.count / Swift.max(n, 1)
    let y = Tensor(uninitializedShape: x.shape, dtype: x.dtype)
    let rstd = Tensor(uninitializedShape: [rows], dtype: x.dtype)
    rmsNormForward(out: y.data(S.self), rstd: rstd.data(S.self), inp: x.data(S.self), rows: rows, n: n)
    y.record("rmsnorm", [x]) { y in
        rmsNormBackward(dinp: x.gradData(S.self), dout: y.gradData(S.self), out: y.data(S.self),
                        rstd: rstd.data(S.self), rows: rows, n: n)
    }
    return y
}
