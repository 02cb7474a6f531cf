// Copies that change layout: a slice along one axis, concatenation along one axis, and
// swapping two axes. Each is a loop of contiguous block copies (memcpy-speed); none is in
// the model's innermost loops.
// The ops on the tape follow: reshape (a view), slice, concatenation and swapAxes.

/// Describes an axis of a shape as (outer, size, inner): outer = product of the dims before,
/// inner = product of the dims after.
@inlinable @inline(__always)
func axisSplit(_ shape: [Int], _ axis: Int) -> (outer: Int, size: Int, inner: Int) {
    (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
}

/// For each o < outer, copies (or with `accumulate`, adds) `length · inner` contiguous
/// elements from src viewed as (outer, srcSize, inner) at [o, srcStart, 0] to dst viewed as
/// (outer, dstSize, inner) at [o, dstStart, 0]. Slicing, concatenation and their backward
/// passes are all this copy with different views.
@inlinable
public func axisBlockCopy<S: TensorScalar>(
    from src: UnsafePointer<S>, size srcSize: Int, start srcStart: Int,
    to dst: UnsafeMutablePointer<S>, size dstSize: Int, start dstStart: Int,
    outer: Int, length: Int, inner: Int, accumulate: Bool
) {
    let blk = length * inner
    Parallel.forRanges(outer, grain: Swift.max(1, 16384 / Swift.max(blk, 1)), alignment: 1) { range in
        for o in range {
            let s = src + (o * srcSize + srcStart) * inner, d = dst + (o * dstSize + dstStart) * inner
            if accumulate {
                accumulateRange3(0..<blk, s, s, s, into: d) { g, _, _ in g }
            } else {
                d.update(from: s, count: blk)
            }
        }
    }
}

/// Swaps axes of x viewed as (A, P, M, Q, Z) into out (A, Q, M, P, Z). With `backward`,
/// x and out are dout and dinp, and the swap adds (the inverse of a swap is itself).
@inlinable
public func swapAxesCopy<S: TensorScalar>(
    out: UnsafeMutablePointer<S>, inp x: UnsafePointer<S>, a: Int, p: Int, m: Int, q: Int, z: Int,
    accumulate: Bool
) {
    Parallel.forRanges(a * q, grain: 1, alignment: 1) { range in
        for aq in range {
            let ai = aq / q, qi = aq % q
            for pi in 0..<p {
                for mi in 0..<m {
                    let src = x + ((((ai * p + pi) * m + mi) * q + qi) * z)
                    let dst = out + ((((ai * q + qi) * m + mi) * p + pi) * z)
                    if accumulate {
                        for i in 0..<z { dst[i] += src[i] }
                    } else {
                        dst.update(from: src, count: z)
                    }
                }
            }
        }
    }
}

extension Tensor {
    /// The same elements under a new shape (one entry may be -1, inferred). Shares storage.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            s[i] = count / known
        }
        precondition(s.reduce(1, *) == count, "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        let y = Tensor(shape: s, dtype: dtype, storage: storage)
        let x = self
        y.record("reshape", [x]) { y in
            if x.adoptGrad(of: y) { return }
            switch x.dtype {
            case .float32: scaleBackward(dinp: x.gradData(Float.self), dout: y.gradData(Float.self), scale: 1, count: x.count)
            case .float64: scaleBackward(dinp: x.gradData(Double.self), dout: y.gradData(Double.self), scale: 1, count: x.count)
            }
        }
        return y
    }
}

/// x[..., range, ...] along `axis` (a copy).
public func slice(_ x: Tensor, axis: Int, _ range: Range<Int>) -> Tensor {
    let axis = axis < 0 ? axis + x.rank : axis
    precondition(axis >= 0 && axis < x.rank && range.lowerBound >= 0 && range.upperBound <= x.shape[axis],
                 "slice \(range) on axis \(axis) is outside shape \(x.shape)")
    switch x.dtype {
    case .float32: return sliceOp(x, axis, range, Float.self)
    case .float64: return sliceOp(x, axis, range, Double.self)
    }
}

func sliceOp<S: TensorScalar>(_ x: Tensor, _ axis: Int, _ range: Range<Int>, _: S.Type) -> Tensor {
    var shape = x.shape
    shape[axis] = range.count
    let (outer, size, inner) = axisSplit(x.shape, axis)
    let y = Tensor(uninitializedShape: shape, dtype: x.dtype)
    let len = range.count, start = range.lowerBound
    axisBlockCopy(from: x.data(S.self), size: size, start: start, to: y.data(S.self), size: len, start: 0,
                  outer: outer, length: len, inner: inner, accumulate: false)
    y.record("slice", [x]) { y in
        axisBlockCopy(from: y.gradData(S.self), size: len, start: 0, to: x.gradData(S.self), size: size,
                      start: start, outer: outer, length: len, inner: inner, accumulate: true)
    }
    return y
}

/// The tensors joined along `axis`; all other dims must agree.
public func concat(_ xs: [Tensor], axis: Int) -> Tensor {
    precondition(!xs.isEmpty, "concat of no tensors")
    let axis = axis < 0 ? axis + xs[0].rank : axis
    for x in xs {
        var a = x.shape, b = xs[0].shape
        precondition(a.count == b.count && x.dtype == xs[0].dtype, "concat: \(x.shape) \(x.dtype) vs \(xs[0].shape)")
        a[axis] = 0; b[axis] = 0
        precondition(a == b, "concat along \(axis): shapes \(x.shape) and \(xs[0].shape) differ elsewhere")
    }
    switch xs[0].dtype {
    case .float32: return concatOp(xs, axis, Float.self)
    case .float64: return concatOp(xs, axis, Double.self)
    }
}

func concatOp<S: TensorScalar>(_ xs: [Tensor], _ axis: Int, _: S.Type) -> Tensor {
    var shape = xs[0].shape
    shape[axis] = xs.reduce(0) { $0 + $1.shape[axis] }
    let (outer, size, inner) = axisSplit(shape, axis)
    let y = Tensor(uninitializedShape: shape, dtype: xs[0].dtype)
    var start = 0
    var starts: [Int] = []
    for x in xs {
        starts.append(start)
        let len = x.shape[axis]
        axisBlockCopy(from: x.data(S.self), size: len, start: 0, to: y.data(S.self), size: size, start: start,
                      outer: outer, length: len, inner: inner, accumulate: false)
        start += x.shape[axis]
    }
    y.record("concat", xs) { y in
        for (x, s) in zip(xs, starts) where x.requiresGrad {
            let len = x.shape[axis]
            axisBlockCopy(from: y.gradData(S.self), size: size, start: s, to: x.gradData(S.self), size: len,
                          start: 0, outer: outer, length: len, inner: inner, accumulate: true)
        }
    }
    return y
}

/// x with axes `a` and `b` swapped (a copy).
public func transpose(_ x: Tensor, _ a: Int, _ b: Int) -> Tensor {
    let a = a < 0 ? a + x.rank : a, b = b < 0 ? b + x.rank : b
    precondition(a >= 0 && b >= 0 && a < x.rank && b < x.rank, "transpose(\(a), \(b)) of shape \(x.shape)")
    if a == b { return x.reshaped(x.shape) }
    switch x.dtype {
    case .float32: return transposeOp(x, Swift.min(a, b), Swift.max(a, b), Float.self)
    case .float64: return transposeOp(x, Swift.min(a, b), Swift.max(a, b), Double.self)
    }
}

func transposeOp<S: TensorScalar>(_ x: Tensor, _ lo: Int, _ hi: Int, _: S.Type) -> Tensor {
    let s = x.shape
    let dims = (a: s[..<lo].reduce(1, *), p: s[lo], m: s[(lo + 1)..<hi].reduce(1, *), q: s[hi],
                z: s[(hi + 1)...].reduce(1, *))
    var shape = s
    shape.swapAt(lo, hi)
    let y = Tensor(uninitializedShape: shape, dtype: x.dtype)
    swapAxesCopy(out: y.data(S.self), inp: x.data(S.self), a: dims.a, p: dims.p, m: dims.m, q: dims.q, z: dims.z,
                 accumulate: false)
    y.record("transpose", [x]) { y in
        swapAxesCopy(out: x.gradData(S.self), inp: y.gradData(S.self), a: dims.a, p: dims.q, m: dims.m,
                     q: dims.p, z: dims.z, accumulate: true)
    }
    return y
}
