// Parameter-free RMSNorm over the last axis: y = x / sqrt(mean(x²) + eps).
// Below: the kernels, their scalar references, then the op on the tape.

/// eps of torch's F.rms_norm default: Float32 machine epsilon (SPEC §1.2), for both dtypes.
public let rmsNormEpsilon = 1.1920929e-07

/// y = x · rstd per row, rstd = 1/sqrt(mean(x²) + eps). x, y: (rows, n); rstd: (rows),
/// saved for the backward pass.
@inlinable
public func rmsNormForward<S: TensorScalar>(
    out y: UnsafeMutablePointer<S>, rstd: UnsafeMutablePointer<S>, inp x: UnsafePointer<S>,
    rows: Int, n: Int
) {
    let eps = S(rmsNormEpsilon)
    Parallel.forRanges(rows, grain: Swift.max(1, 4096 / Swift.max(n, 1)), alignment: 1) { range in
        for r in range {
            let px = x + r * n, py = y + r * n
            let ms = sumMapped(px, n) { $0 * $0 } / S(n)
            let s = 1 / (ms + eps).squareRoot()
            rstd[r] = s
            mapRange(0..<n, px, py) { $0 * s }
        }
    }
}

/// dx += rstd · (dy - y · mean(dy · y)) per row, the derivative of y = x · rstd(x)
/// (dx = ... when `accumulate` is false: dx may then hold anything). Shapes as
/// `rmsNormForward`; y is the forward output.
@inlinable
public func rmsNormBackward<S: TensorScalar>(
    dinp dx: UnsafeMutablePointer<S>, dout dy: UnsafePointer<S>, out y: UnsafePointer<S>,
    rstd: UnsafePointer<S>, rows: Int, n: Int, accumulate: Bool = true
) {
    Parallel.forRanges(rows, grain: Swift.max(1, 4096 / Swift.max(n, 1)), alignment: 1) { range in
        for r in range {
            let pdy = dy + r * n, py = y + r * n, pdx = dx + r * n
            let m = vectorDot(pdy, py, n) / S(n)
            let s = rstd[r]
            if accumulate {
                accumulateRange3(0..<n, pdy, py, py, into: pdx) { g, yv, _ in s * (g - yv * m) }
            } else {
                mapRange2(0..<n, pdy, py, into: pdx) { g, yv in s * (g - yv * m) }
            }
        }
    }
}

/// The scalar loops `rmsNormForward` is tested against and benchmarked next to.
@inlinable
public func rmsNormForwardReference<S: TensorScalar>(
    out y: UnsafeMutablePointer<S>, inp x: UnsafePointer<S>, rows: Int, n: Int
) {
    for r in 0..<rows {
        var ss: S = 0
        for j in 0..<n { ss += x[r * n + j] * x[r * n + j] }
        let s = 1 / (ss / S(n) + S(rmsNormEpsilon)).squareRoot()
        for j in 0..<n { y[r * n + j] = x[r * n + j] * s }
    }
}

@inlinable
public func rmsNormBackwardReference<S: TensorScalar>(
    dinp dx: UnsafeMutablePointer<S>, dout dy: UnsafePointer<S>, inp x: UnsafePointer<S>,
    rows: Int, n: Int
) {
    for r in 0..<rows {
        var ss: S = 0, dot: S = 0
        for j in 0..<n { ss += x[r * n + j] * x[r * n + j] }
        let s = 1 / (ss / S(n) + S(rmsNormEpsilon)).squareRoot()
        for j in 0..<n { dot += dy[r * n + j] * x[r * n + j] * s }
        for j in 0..<n { dx[r * n + j] += s * (dy[r * n + j] - x[r * n + j] * s * dot / S(n)) }
    }
}

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
        let (dx, accumulate) = x.gradForWriting(S.self)
        rmsNormBackward(dinp: dx, dout: y.gradData(S.self), out: y.data(S.self),
                        rstd: rstd.data(S.self), rows: rows, n: n, accumulate: accumulate)
    }
    return y
}
