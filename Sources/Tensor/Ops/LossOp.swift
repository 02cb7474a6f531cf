// Softcapped cross entropy on the tape.

/// Mean cross entropy of softcapped logits: logits (..., V), targets with the leading shape,
/// -1 marking targets to ignore; `softcap` 0 turns the cap off. Returns a scalar; when every
/// target is ignored it is 0 with zero gradient (PyTorch would give NaN; a training step
/// of all padding should be a no-op, not a crash).
public func crossEntropy(_ logits: Tensor, targets: IndexTensor, softcap: Double = 15) -> Tensor {
    let v = logits.shape.last ?? 0
    precondition(Array(logits.shape.dropLast()) == targets.shape,
                 "cross entropy: logits \(logits.shape) do not match targets \(targets.shape)")
    if let bad = targets.values.firstIndex(where: { $0 < -1 || Int($0) >= v }) {
        preconditionFailure("cross entropy: target \(targets.values[bad]) at position \(bad) is outside -1..<\(v)")
    }
    switch logits.dtype {
    case .float32: return crossEntropyOp(logits, targets, softcap, Float.self)
    case .float64: return crossEntropyOp(logits, targets, softcap, Double.self)
    }
}

func crossEntropyOp<S: TensorScalar>(_ logits: Tensor, _ targets: IndexTensor, _ cap: Double, _: S.Type) -> Tensor {
    let v = logits.shape.last!, n = targets.count
    let losses = Tensor(uninitializedShape: [n], dtype: logits.dtype)
    let lse = Tensor(uninitializedShape: [n], dtype: logits.dtype)
    targets.values.withUnsafeBufferPointer { tp in
        crossEntropyForward(losses: losses.data(S.self), lse: lse.data(S.self), logits: logits.data(S.self),
                            targets: tp.baseAddress!, rows: n, vocab: v, softcap: S(cap))
    }
    let valid = targets.values.reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) }
    let y = Tensor(uninitializedShape: [], dtype: logits.dtype)
    y.data(S.self)[0] = valid == 0 ? 0 : sumForward(losses.data(S.self), count: n) / S(valid)
    y.record("cross_entropy", [logits]) { y in
        guard valid > 0 else { return }
        let g = Tensor(repeating: Double(y.gradData(S.self)[0] / S(valid)), shape: [n], dtype: logits.dtype)
        targets.values.withUnsafeBufferPointer { tp in
            crossEntropyBackward(dlogits: logits.gradData(S.self), dloss: g.data(S.self), logits: logits.data(S.self),
                                 lse: lse.data(S.self), targets: tp.baseAddress!, rows: n, vocab: v, softcap: S(cap))
        }
    }
    return y
}
