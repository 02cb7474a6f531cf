// Elementwise a ∘ b with b broadcast over a's leading axes: a is (rows, n), b is (n)
// (rows = 1 when the shapes are equal). ∘ is +, - or ·. Also scaling by a constant and the
// sum and mean of all elements; kernels first, then the ops on the tape.

/// The elementwise binary operations.
public enum BinaryOp: String, Sendable {
    case add, sub, mul

    @inlinable @inline(__always)
    func apply<S: TensorScalar>(_ a: SIMD16<S>, _ b: SIMD16<S>) -> SIMD16<S> {
        switch self {
        case .add: return a + b
        case .sub: return a - b
        case .mul: return a * b
        }
    }
}

/// Visits the contiguous pieces of `range` (an index range over a (rows, n) array), each
/// lying within one row: body(start, length, columnOfStart).
@inlinable @inline(__always)
func forRowSegments(_ range: Range<Int>, rowLength n: Int, _ body: (Int, Int, Int) -> Void) {
    var i = range.lowerBound
    while i < range.upperBound {
        let col = i % n
        let len = Swift.min(n - col, range.upperBound - i)
        body(i, len, col)
        i += len
    }
}

/// out = a ∘ b. a, out: (rows, n); b: (n).
@inlinable
public func binaryForward<S: TensorScalar>(
    _ op: BinaryOp, out: UnsafeMutablePointer<S>, a: UnsafePointer<S>, b: UnsafePointer<S>,
    rows: Int, n: Int
) {
    Parallel.forRanges(rows * n) { range in
        forRowSegments(range, rowLength: n) { start, len, col in
            let pa = a + start, pb = b + col, po = out + start
            var j = 0
            while j + 16 <= len { store(op.apply(load(pa + j), load(pb + j)), po + j); j += 16 }
            if j < len {
                let m = len - j
                storePartial(op.apply(loadPartial(pa + j, m), loadPartial(pb + j, m)), po + j, m)
            }
        }
    }
}

/// Adds into da and db the gradients of out = a ∘ b given dout. da, db may be nil (no
/// gradient wanted). Shapes as `binaryForward`. db sums over rows, column ranges split
/// across threads and rows added in order, so its bits do not depend on the thread count.
@inlinable
public func binaryBackward<S: TensorScalar>(
    _ op: BinaryOp, da: UnsafeMutablePointer<S>?, db: UnsafeMutablePointer<S>?,
    dout: UnsafePointer<S>, a: UnsafePointer<S>, b: UnsafePointer<S>, rows: Int, n: Int
) {
    if let da {
        Parallel.forRanges(rows * n) { range in
            forRowSegments(range, rowLength: n) { start, len, col in
                let pd = dout + start, pa = da + start, pb = b + col
                var j = 0
                while j + 16 <= len {
                    let g = op == .mul ? load(pd + j) * load(pb + j) : load(pd + j)
                    store(load(pa + j) + g, pa + j)
                    j += 16
                }
                while j < len { pa[j] += op == .mul ? pd[j] * pb[j] : pd[j]; j += 1 }
            }
        }
    }
    if let db {
        let sign: S = op == .sub ? -1 : 1
        Parallel.forRanges(n, grain: 64) { cols in
            for r in 0..<rows {
                let pd = dout + r * n, pa = a + r * n
                var j = cols.lowerBound
                while j + 16 <= cols.upperBound {
                    let g = op == .mul ? load(pd + j) * load(pa + j) : load(pd + j) * sign
                    store(load(db + j) + g, db + j)
                    j += 16
                }
                while j < cols.upperBound { db[j] += op == .mul ? pd[j] * pa[j] : pd[j] * sign; j += 1 }
            }
        }
    }
}

/// out = s · x.
@inlinable
public func scaleForward<S: TensorScalar>(out: UnsafeMutablePointer<S>, inp: UnsafePointer<S>, scale s: S, count n: Int) {
    Parallel.forRanges(n) { range in mapRange(range, inp, out) { $0 * s } }
}

/// dinp += s · dout.
@inlinable
public func scaleBackward<S: TensorScalar>(dinp: UnsafeMutablePointer<S>, dout: UnsafePointer<S>, scale s: S, count n: Int) {
    Parallel.forRanges(n) { range in
        accumulateRange3(range, dout, dout, dout, into: dinp) { g, _, _ in g * s }
    }
}

/// The sum of x[0..<n]. Partial sums over fixed 64 Ki-element chunks (independent of the
/// thread count) are added in chunk order, so the result has the same bits on any threads.
@inlinable
public func sumForward<S: TensorScalar>(_ x: UnsafePointer<S>, count n: Int) -> S {
    let chunk = 1 << 16
    let chunks = (n + chunk - 1) / chunk
    if chunks <= 1 { return vectorSum(x, n) }
    var partial = [S](repeating: 0, count: chunks)
    partial.withUnsafeMutableBufferPointer { p in
        let base = p.baseAddress!
        Parallel.forEach(chunks) { c in
            base[c] = vectorSum(x + c * chunk, Swift.min(chunk, n - c * chunk))
        }
    }
    return partial.reduce(0, +)
}

/// dx[i] += g for i < n.
@inlinable
public func fillAddBackward<S: TensorScalar>(dinp: UnsafeMutablePointer<S>, value g: S, count n: Int) {
    Parallel.forRanges(n) { range in
        accumulateRange3(range, dinp, dinp, dinp, into: dinp) { _, _, _ in SIMD16(repeating: g) }
    }
}

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
        let dy = y.gradData(S.self)
        if op != .mul && rows == 1 && a !== b {
            // Same shapes, + or -: b's gradient is ±dy, written where b has none yet rather
            // than zero-filled and added to; a takes dy's own memory when it has no gradient
            // (y's is dropped right after this rule), else adds it. The residual stream's
            // adds are most of a step's adds.
            if b.requiresGrad {
                let (db, accumulate) = b.gradForWriting(S.self)
                let sign: S = op == .sub ? -1 : 1
                Parallel.forRanges(n) { range in
                    if accumulate {
                        accumulateRange3(range, dy, dy, dy, into: db) { g, _, _ in g * sign }
                    } else {
                        mapRange(range, dy, db) { $0 * sign }
                    }
                }
            }
            if a.requiresGrad && !a.adoptGrad(of: y) {
                binaryBackward(op, da: a.gradData(S.self), db: nil, dout: dy, a: a.data(S.self), b: b.data(S.self), rows: rows, n: n)
            }
            return
        }
        binaryBackward(op, da: a.requiresGrad ? a.gradData(S.self) : nil,
                       db: b.requiresGrad ? b.gradData(S.self) : nil,
                       dout: dy, a: a.data(S.self), b: b.data(S.self), rows: rows, n: n)
    }
    return y
}

public func + (a: Tensor, b: Tensor) -> Tensor { binary(.add, a, b) }
public func - (a: Tensor, b: Tensor) -> Tensor { binary(.sub, a, b) }
public func * (a: Tensor, b: Tensor) -> Tensor { binary(.mul, a, b) }
public func * (a: Tensor, s: Double) -> Tensor { scale(a, s) }
public func * (s: Double, a: Tensor) -> Tensor { scale(a, s) }

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
