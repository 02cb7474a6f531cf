// SIMD16 loads and stores on raw pointers, and the drivers every elementwise kernel uses.
// A tail shorter than 16 goes through the same vector code on a padded copy, so an element
// gets the same bits whether it falls in the body or the tail, and whatever the thread split.

import CVectorMath

public typealias Vec<S: TensorScalar> = SIMD16<S>

/// Asks for the cache line holding `p` ahead of its use (a hint: no fault, no effect on
/// results). For strided walks the hardware prefetchers do not follow.
@inlinable @inline(__always)
public func prefetch(_ p: UnsafeRawPointer) {
    nanochat_prefetch(p)
}

@inlinable @inline(__always)
func load<S: TensorScalar>(_ p: UnsafePointer<S>) -> SIMD16<S> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<S>.self)
}

@inlinable @inline(__always)
func store<S: TensorScalar>(_ v: SIMD16<S>, _ p: UnsafeMutablePointer<S>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<S>.self)
}

/// Loads `n ≤ 16` elements, the other lanes set to `fill`.
@inlinable @inline(__always)
func loadPartial<S: TensorScalar>(_ p: UnsafePointer<S>, _ n: Int, fill: S = 0) -> SIMD16<S> {
    if n == 16 { return load(p) }
    var v = SIMD16<S>(repeating: fill)
    for i in 0..<n { v[i] = p[i] }
    return v
}

@inlinable @inline(__always)
func storePartial<S: TensorScalar>(_ v: SIMD16<S>, _ p: UnsafeMutablePointer<S>, _ n: Int) {
    if n == 16 { store(v, p); return }
    for i in 0..<n { p[i] = v[i] }
}

/// y[i] = f(x[i]) for i in range.
@inlinable @inline(__always)
func mapRange<S: TensorScalar>(
    _ range: Range<Int>, _ x: UnsafePointer<S>, _ y: UnsafeMutablePointer<S>,
    _ f: (SIMD16<S>) -> SIMD16<S>
) {
    var i = range.lowerBound
    while i + 16 <= range.upperBound {
        store(f(load(x + i)), y + i)
        i += 16
    }
    if i < range.upperBound {
        let n = range.upperBound - i
        storePartial(f(loadPartial(x + i, n)), y + i, n)
    }
}

/// out[i] = f(a[i], b[i]) for i in range (out may alias a or b).
@inlinable @inline(__always)
func mapRange2<S: TensorScalar>(
    _ range: Range<Int>, _ a: UnsafePointer<S>, _ b: UnsafePointer<S>,
    into out: UnsafeMutablePointer<S>, _ f: (SIMD16<S>, SIMD16<S>) -> SIMD16<S>
) {
    var i = range.lowerBound
    while i + 16 <= range.upperBound {
        store(f(load(a + i), load(b + i)), out + i)
        i += 16
    }
    if i < range.upperBound {
        let n = range.upperBound - i
        storePartial(f(loadPartial(a + i, n), loadPartial(b + i, n)), out + i, n)
    }
}

/// acc[i] += f(a[i], b[i], c[i]) for i in range (backward rules add into gradients).
@inlinable @inline(__always)
func accumulateRange3<S: TensorScalar>(
    _ range: Range<Int>, _ a: UnsafePointer<S>, _ b: UnsafePointer<S>, _ c: UnsafePointer<S>,
    into acc: UnsafeMutablePointer<S>, adding: Bool = true, _ f: (SIMD16<S>, SIMD16<S>, SIMD16<S>) -> SIMD16<S>
) {
    var i = range.lowerBound
    while i + 16 <= range.upperBound {
        let v = f(load(a + i), load(b + i), load(c + i))
        store(adding ? load(acc + i) + v : v, acc + i)
        i += 16
    }
    if i < range.upperBound {
        let n = range.upperBound - i
        let v = f(loadPartial(a + i, n), loadPartial(b + i, n), loadPartial(c + i, n))
        storePartial(adding ? loadPartial(acc + i, n) + v : v, acc + i, n)
    }
}

/// Sum of x[0..<n], in 4 interleaved SIMD16 accumulators (a fixed order: same bits every run).
@inlinable @inline(__always)
func vectorSum<S: TensorScalar>(_ x: UnsafePointer<S>, _ n: Int) -> S {
    sumMapped(x, n) { $0 }
}

/// Sum of f(x[i]) over i < n with a fixed accumulation order.
@inlinable @inline(__always)
func sumMapped<S: TensorScalar>(
    _ x: UnsafePointer<S>, _ n: Int, _ f: (SIMD16<S>) -> SIMD16<S>
) -> S {
    var a0 = SIMD16<S>(), a1 = SIMD16<S>(), a2 = SIMD16<S>(), a3 = SIMD16<S>()
    var i = 0
    while i + 64 <= n {
        a0 += f(load(x + i)); a1 += f(load(x + i + 16))
        a2 += f(load(x + i + 32)); a3 += f(load(x + i + 48))
        i += 64
    }
    while i + 16 <= n { a0 += f(load(x + i)); i += 16 }
    if i < n {
        var t = f(loadPartial(x + i, n - i))
        for l in (n - i)..<16 { t[l] = 0 }
        a1 += t
    }
    return hsum((a0 + a1) + (a2 + a3))
}

/// max of x[0..<n] (n ≥ 1), for the max-shift of a softmax.
@inlinable @inline(__always)
func vectorMax<S: TensorScalar>(_ x: UnsafePointer<S>, _ n: Int) -> S {
    var mv = SIMD16<S>(repeating: -S.greatestFiniteMagnitude)
    var j = 0
    while j + 16 <= n { mv = vmax(mv, load(x + j)); j += 16 }
    var m = mv.max()
    while j < n { m = Swift.max(m, x[j]); j += 1 }
    return m
}

/// Dot product of a[0..<n] and b[0..<n], fixed accumulation order.
@inlinable @inline(__always)
func vectorDot<S: TensorScalar>(_ a: UnsafePointer<S>, _ b: UnsafePointer<S>, _ n: Int) -> S {
    var a0 = SIMD16<S>(), a1 = SIMD16<S>()
    var i = 0
    while i + 32 <= n {
        a0 = S.vmuladd(load(a + i), load(b + i), a0)
        a1 = S.vmuladd(load(a + i + 16), load(b + i + 16), a1)
        i += 32
    }
    while i + 16 <= n { a0 = S.vmuladd(load(a + i), load(b + i), a0); i += 16 }
    var s = hsum(a0 + a1)
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}
