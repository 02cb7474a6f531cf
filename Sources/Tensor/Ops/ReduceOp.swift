// Reductions to a scalar: sum and mean.

/// Σ x over all elements, as a tensor of shape [].
public func sum(_ x: Tensor) -> Tensor { reduceAll(x, mean: false) }

/// Σ x / count over all elements, as a tensor of shape [].
public func mean(_ x: Tensor) -> Tensor { reduceAll(x, mean: true) }

func reduceAll(_ x: Tensor, mean: Bool) -> Tensor {
    switch x.dtype {
    case .float32: return reduceAllOp(x, mean: mean, Float.self)
    case .float64: return reduceAllOp(x, mean: mean, Double.self)
    }
}

func reduceAllOp<S: TensorScalar>(_ x: Tensor, mean: Bool, _: S.Type) -> Tensor {
    let y = Tensor(uninitializedShape: [], dtype: x.dtype)
    let div = mean ? S(Swift.max(x.count, 1)) : 1
    y.data(S.self)[0] = sumForward(x.data(S.self), count: x.count) / div
    y.record(mean ? "mean" : "sum", [x]) { y in
        fillAddBackward(dinp: x.gradData(S.self), value: y.gradData(S.self)[0] / div, count: x.count)
    }
    return y
}
