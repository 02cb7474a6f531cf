// Softcapped cross entropy, fused: for each row of logits l (V values) with target t,
//   z = cap · tanh(l / cap)         (cap = 0: z = l, no softcap)
//   loss = logsumexp(z) - z[t]      (t = -1: ignored, loss 0, no gradient)
// The softcapped logits are never stored: backward recomputes them from l and the saved
// per-row logsumexp, so memory stays at the (n, V) logits the caller already holds.
// Below: the kernels, their reference, then the op on the tape.
import Foundation

/// The index that marks a target to ignore (as PyTorch's ignore_index=-1 in nanochat).
public let ignoreIndex: Int32 = -1

@inlinable @inline(__always)
func softcapped<S: TensorScalar>(_ l: SIMD16<S>, _ cap: S) -> SIMD16<S> {
    cap == 0 ? l : S.vtanh(l * (1 / cap)) * cap
}

/// losses (n), lse (n) from logits (n, V) and targets (n). Targets must be -1 or in 0..<V.
@inlinable
public func crossEntropyForward<S: TensorScalar>(
    losses: UnsafeMutablePointer<S>, lse: UnsafeMutablePointer<S>, logits: UnsafePointer<S>,
    targets: UnsafePointer<Int32>, rows n: Int, vocab v: Int, softcap cap: S
) {
    Parallel.forRanges(n, grain: Swift.max(1, 16384 / Swift.max(v, 1)), alignment: 1) { range in
        withScratch(S.self, count: v) { z in
            for r in range {
                mapRange(0..<v, logits + r * v, z) { softcapped($0, cap) }
                let l = maskedSoftmaxLSE(z, v)
                lse[r] = l
                let t = Int(targets[r])
                losses[r] = t < 0 ? 0 : l - z[t]
            }
        }
    }
}

/// logsumexp of z[0..<n] (max-shifted, so logits of ±1e4 stay finite).
@inlinable @inline(__always)
func maskedSoftmaxLSE<S: TensorScalar>(_ z: UnsafePointer<S>, _ n: Int) -> S {
    let m = vectorMax(z, n)
    let mvec = SIMD16<S>(repeating: m)
    let s = sumMapped(z, n) { S.vexp($0 - mvec) }  // padded tail lanes are dropped
    return m + S.log(s)
}

/// dlogits (n, V) += dloss[r] · d(loss_r)/d(logits_r) for every row not ignored.
@inlinable
public func crossEntropyBackward<S: TensorScalar>(
    dlogits: UnsafeMutablePointer<S>, dloss: UnsafePointer<S>, logits: UnsafePointer<S>,
    lse: UnsafePointer<S>, targets: UnsafePointer<Int32>, rows n: Int, vocab v: Int, softcap cap: S
) {
    Parallel.forRanges(n, grain: Swift.max(1, 16384 / Swift.max(v, 1)), alignment: 1) { range in
        for r in range {
            let t = Int(targets[r])
            if t < 0 { continue }
            let g = SIMD16<S>(repeating: dloss[r]), l = SIMD16<S>(repeating: lse[r])
            let row = logits + r * v, drow = dlogits + r * v
            let gt = dloss[r]
            // d/dl = (softmax(z) - onehot) · dz/dl,  dz/dl = 1 - (z/cap)².
            accumulateRange3(0..<v, row, row, row, into: drow) { lv, _, _ in
                let z = softcapped(lv, cap)
                let p = S.vexp(z - l)
                if cap == 0 { return g * p }
                let u = z * (1 / cap)
                return g * p * (1 - u * u)
            }
            // The one-hot term, at the target only.
            let zt = softcapped(SIMD16<S>(repeating: row[t]), cap)[0]
            let u = cap == 0 ? 0 : zt / cap
            drow[t] -= gt * (1 - u * u)
        }
    }
}

/// The reference: per-row losses by plain loops in Double.
@inlinable
public func crossEntropyReference<S: TensorScalar>(
    losses: UnsafeMutablePointer<S>, logits: UnsafePointer<S>, targets: UnsafePointer<Int32>,
    rows n: Int, vocab v: Int, softcap cap: Double
) {
    for r in 0..<n {
        let t = Int(targets[r])
        if t < 0 { losses[r] = 0; continue }
        var z = [Double](repeating: 0, count: v)
        for j in 0..<v {
            let l = Double(logits[r * v + j])
            z[j] = cap == 0 ? l : cap * Foundation.tanh(l / cap)
        }
        let m = z.max()!
        let s = z.reduce(0) { $0 + Foundation.exp($1 - m) }
        losses[r] = S(m + Foundation.log(s) - z[t])
    }
}

/// Mean cross entropy of softcapped logits: logits (..., V), targets with the leading shape,
/// -1 marking targets to ignore; `softcap` 0 turns the cap off. Returns a scalar; when every
/// target is ignored it is 0 with zero gradient (PyTorch would give NaN; a training step
/// of all padding should be a no-op, not a crash).
public func crossEntropy(_ logits: Tensor, targets: IndexTensor, softcap: Double = 15) -> Tensor {
    checkTargets(logits, targets)
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

/// Cross entropy of each position of softcapped logits (..., V) against targets, off the
/// tape, as Float32 (0 where the target is -1): the per-token losses evaluation weighs by
/// bytes. The same forward kernel as `crossEntropy`.
public func crossEntropyPerPosition(_ logits: Tensor, targets: IndexTensor, softcap: Double = 15) -> [Float] {
    checkTargets(logits, targets)
    let z = logits.dtype == .float32 ? logits : logits.copy(dtype: .float32)
    let n = targets.count, v = logits.shape.last!
    var losses = [Float](repeating: 0, count: n), lse = losses
    targets.values.withUnsafeBufferPointer { t in
        losses.withUnsafeMutableBufferPointer { lp in
            lse.withUnsafeMutableBufferPointer { sp in
                crossEntropyForward(losses: lp.baseAddress!, lse: sp.baseAddress!, logits: z.data(Float.self),
                                    targets: t.baseAddress!, rows: n, vocab: v, softcap: Float(softcap))
            }
        }
    }
    return losses
}

/// Targets must have the logits' leading shape and lie in -1..<V.
func checkTargets(_ logits: Tensor, _ targets: IndexTensor) {
    let v = logits.shape.last ?? 0
    precondition(Array(logits.shape.dropLast()) == targets.shape,
                 "cross entropy: logits \(logits.shape) do not match targets \(targets.shape)")
    if let bad = targets.values.firstIndex(where: { $0 < -1 || Int($0) >= v }) {
        preconditionFailure("cross entropy: target \(targets.values[bad]) at position \(bad) is outside -1..<\(v)")
    }
}
