// Rotary embedding on the tape.

/// Rotates x (B, T, heads, hd) as at positions offset..<offset+T (SPEC §1.2).
public func rotary(_ x: Tensor, table: RotaryTable, offset: Int = 0) -> Tensor {
    precondition(x.rank == 4 && x.shape[3] == table.headDim,
                 "rotary expects (B, T, heads, \(table.headDim)), got \(x.shape)")
    switch x.dtype {
    case .float32: return rotaryOp(x, table, offset, Float.self)
    case .float64: return rotaryOp(x, table, offset, Double.self)
    }
}

func rotaryOp<S: TensorScalar>(_ x: Tensor, _ table: RotaryTable, _ offset: Int, _: S.Type) -> Tensor {
    let (b, t, h) = (x.shape[0], x.shape[1], x.shape[2])
    let y = Tensor(uninitializedShape: x.shape, dtype: x.dtype)
    rotaryApply(out: y.data(S.self), inp: x.data(S.self), table: table, batch: b, time: t, heads: h,
                offset: offset, inverse: false)
    y.record("rotary", [x]) { y in
        rotaryApply(out: x.gradData(S.self), inp: y.gradData(S.self), table: table, batch: b, time: t,
                    heads: h, offset: offset, inverse: true)
    }
    return y
}
