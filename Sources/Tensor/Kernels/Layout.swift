// Copies that change layout: a slice along one axis, concatenation along one axis, and
// swapping two axes. Each is a loop of contiguous block copies (memcpy-speed); none is in
// the model's innermost loops.

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
