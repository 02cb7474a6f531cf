// Causal attention on the tape.

/// Causal self-attention: q (B, T, H, hd), k and v (B, T, KV, hd) with KV dividing H;
/// returns (B, T, H, hd). Scores are scaled by 1/sqrt(hd). Saves only the per-row
/// log-sum-exp (B, H, T) for backward.
public func causalAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> Tensor {
    precondition(q.rank == 4 && k.rank == 4 && v.shape == k.shape,
                 "attention expects q (B,T,H,hd), k = v (B,T,KV,hd); got \(q.shape), \(k.shape), \(v.shape)")
    precondition(q.shape[0] == k.shape[0] && q.shape[1] == k.shape[1] && q.shape[3] == k.shape[3],
                 "attention: q \(q.shape) and k \(k.shape) differ in B, T or hd")
    let shape = AttentionShape(batch: q.shape[0], queries: q.shape[1], heads: q.shape[2],
                               kvHeads: k.shape[2], headDim: q.shape[3])
    switch q.dtype {
    case .float32: return attentionOp(q, k, v, shape, Float.self)
    case .float64: return attentionOp(q, k, v, shape, Double.self)
    }
}

func attentionOp<S: TensorScalar>(_ q: Tensor, _ k: Tensor, _ v: Tensor, _ shape: AttentionShape, _: S.Type) -> Tensor {
    let y = Tensor(uninitializedShape: q.shape, dtype: q.dtype)
    let lse = Tensor(uninitializedShape: [shape.batch, shape.heads, shape.queries], dtype: q.dtype)
    attentionForward(out: y.data(S.self), lse: lse.data(S.self), q: q.data(S.self), k: k.data(S.self),
                     v: v.data(S.self), shape: shape)
    y.record("attention", [q, k, v]) { y in
        // The kernel adds into all three; gradients nobody wants land in scratch.
        attentionBackward(dq: q.gradData(S.self), dk: k.gradData(S.self), dv: v.gradData(S.self),
                          dout: y.gradData(S.self), q: q.data(S.self), k: k.data(S.self), v: v.data(S.self),
                          out: y.data(S.self), lse: lse.data(S.self), shape: shape)
    }
    return y
}
