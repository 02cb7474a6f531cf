// The scalar types a Tensor can hold, and the vector math the kernels need from them.
//
// Every kernel is generic over `TensorScalar` and runs on `SIMD16<S>`. Float32 is the
// training type: its `exp`/`log`/`tanh` are polynomial approximations on whole vectors
// (errors stated below and tested in ScalarMathTests). Float64 exists so `gradcheck` can
// difference the very same kernels in double precision: its vector functions call the
// correctly rounded libm lane by lane, because there accuracy matters and speed does not.
import CBLAS
import CVectorMath
import Foundation

/// The element type of a tensor.
public enum DType: String, Sendable, CustomStringConvertible {
    case float32, float64

    public var byteSize: Int { self == .float32 ? 4 : 8 }
    public var description: String { rawValue }
}

/// A floating-point type the kernels are written for: `Float` (training) or `Double`
/// (gradient checking).
public protocol TensorScalar: BinaryFloatingPoint, SIMDScalar, Sendable, Codable {
    static var dtype: DType { get }
    /// e^x lane by lane. Float: relative error ≤ 2 ulp for x in [-87.3, 88.3],
    /// 0 below, clamped above; NaN propagates.
    static func vexp(_ x: SIMD16<Self>) -> SIMD16<Self>
    /// 2^y lane by lane for y ≤ 0, the decay factors of the selective scan (y = Δ·A·log2 e).
    /// Float: relative error ≤ 2 ulp, never above 1, exactly 1 at 0; y < -126 gives 2^-126
    /// (not 0); y > 0 is not handled. Cheaper than vexp: no ln 2 split, no upper clamp, no
    /// special cases (a NaN input gives NaN unless its payload's low 9 bits are set).
    static func vexp2Decay(_ y: SIMD16<Self>) -> SIMD16<Self>
    /// log(1 + y) lane by lane for y > -1. Float: absolute error ≤ 2e-7·max(1, |result|).
    static func vlog1p(_ y: SIMD16<Self>) -> SIMD16<Self>
    /// tanh x lane by lane. Float: relative error ≤ 4 ulp near 0, absolute ≤ 2.4e-7.
    static func vtanh(_ x: SIMD16<Self>) -> SIMD16<Self>
    /// Lane by lane: lhs < rhs ? then : otherwise. Comparisons and masks are protocol
    /// requirements because Swift 6.3 lowers SIMD masks to scalar loops in generic code
    /// (even once specialised, measured 50x slower); each concrete type's own operators
    /// compile to one compare and one blend.
    static func vwhere(_ lhs: SIMD16<Self>, lessThan rhs: SIMD16<Self>, _ then: SIMD16<Self>,
                       else otherwise: SIMD16<Self>) -> SIMD16<Self>
    /// a·b + c lane by lane, fused. A requirement for the same reason as `vwhere`: SIMD's
    /// addingProduct is a lane loop in generic code, which LLVM sometimes leaves scalar.
    static func vmuladd(_ a: SIMD16<Self>, _ b: SIMD16<Self>, _ c: SIMD16<Self>) -> SIMD16<Self>
    /// √x lane by lane, correctly rounded. A requirement because SIMD's squareRoot() is
    /// sixteen calls of the C library's sqrt (measured: AdamW spent most of its time there).
    static func vsqrt(_ x: SIMD16<Self>) -> SIMD16<Self>
    static func exp(_ x: Self) -> Self
    static func log(_ x: Self) -> Self
    /// C = alpha · op(A) · op(B) + beta · C, row-major (cblas_sgemm / cblas_dgemm).
    @inlinable
    static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Self,
        a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    /// y = alpha · op(A) · x + beta · y for a row-major rows×cols A (cblas_sgemv / dgemv).
    @inlinable
    static func gemv(
        transpose: Bool, rows: Int, cols: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int,
        x: UnsafePointer<Self>, beta: Self, y: UnsafeMutablePointer<Self>)
    /// The lower triangle of C (n×n) = alpha · op(A)·op(A)ᵀ + beta · C, op(A) n×k: A row-major
    /// n×k, or k×n when `transpose` (C = AᵀA) (cblas_ssyrk / dsyrk); the upper triangle is
    /// left alone.
    @inlinable
    static func syrkLower(
        transpose: Bool, n: Int, k: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int, beta: Self,
        c: UnsafeMutablePointer<Self>, ldc: Int)
}

extension Float: TensorScalar {
    public static var dtype: DType { .float32 }

    // Cephes expf: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^n built
    // in the exponent bits. ln2 is split in two (0.693359375 + -2.12194440e-4) so n·ln2 is
    // exact to Float precision for |n| ≤ 128.
    @inlinable @inline(__always)
    public static func vexp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        // Clamp with compares and blends: SIMD's clamped(), pointwiseMin/Max and the
        // Float->Int32 vector init lower to scalar code in Swift 6.3 (measured 100x slower).
        var xc = x.replacing(with: 88.3762626647949, where: x .> 88.3762626647949)  // e^x finite
        xc.replace(with: -87.3365447504, where: xc .< -87.3365447504)                // e^x normal
        // n = round(x·log2 e) by the 1.5·2^23 trick: adding it leaves n in the low mantissa
        // bits, so the same value gives both n as a Float and n as integer bits.
        let shifted = xc * 1.44269504088896341 + 12582912
        let n = shifted - 12582912
        var r = xc.addingProduct(n, SIMD16(repeating: -0.693359375))  // r = x - n·ln2
        r = r.addingProduct(n, SIMD16(repeating: 2.12194440e-4))
        var p = SIMD16<Float>(repeating: 1.3981999507e-3)
            .addingProduct(SIMD16<Float>(repeating: 1.9875691500e-4), r)
        p = SIMD16<Float>(repeating: 8.3334519073e-3).addingProduct(p, r)
        p = SIMD16<Float>(repeating: 4.1665795894e-2).addingProduct(p, r)
        p = SIMD16<Float>(repeating: 1.6666665459e-1).addingProduct(p, r)
        p = SIMD16<Float>(repeating: 5.0000001201e-1).addingProduct(p, r)
        let r2 = r * r
        let er = (r + 1).addingProduct(p, r2)
        let bits = (unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        var y = er * unsafeBitCast(bits, to: SIMD16<Float>.self)
        y.replace(with: 0, where: x .< -87.3365447504)
        y.replace(with: x, where: x .!= x)
        return y
    }

    // 2^y = 2^n · 2^r with n = round(y) and r = y - n exact in [-1/2, 1/2]. 2^r by a degree-5
    // polynomial with constant term exactly 1 (so no decay exceeds 1), fitted for least
    // relative error by tools/fit_exp2.py (float32 kernel: 1.64e-7). 2^n is applied by adding
    // n to p's exponent field (an integer add, not a multiply): the rounding constant leaves n
    // in the low bits of `shifted`, so shifted's bits << 23 are n << 23 (mod 2^32), and the
    // clamp keeps n ≥ -126 with p ≥ 1 there, so the result stays normal. The scan spends most
    // of its time here (twice per state update); this is 18% cheaper than Cephes' degree 6
    // and a multiply (measured in a loop of the scan's exps).
    @inlinable @inline(__always)
    public static func vexp2Decay(_ y: SIMD16<Float>) -> SIMD16<Float> {
        let yc = y.replacing(with: -126, where: y .< -126)
        let shifted = yc + 12582912          // 1.5·2^23: rounds to an integer in the low bits
        let r = yc - (shifted - 12582912)
        var p = SIMD16<Float>(repeating: 9.671511128544807e-3).addingProduct(SIMD16(repeating: 1.3264708686619997e-3), r)
        p = SIMD16<Float>(repeating: 5.550733953714371e-2).addingProduct(p, r)
        p = SIMD16<Float>(repeating: 2.4022242426872253e-1).addingProduct(p, r)
        p = SIMD16<Float>(repeating: 6.931470036506653e-1).addingProduct(p, r)
        p = SIMD16<Float>(repeating: 1).addingProduct(p, r)
        let scaled = unsafeBitCast(p, to: SIMD16<Int32>.self) &+ (unsafeBitCast(shifted, to: SIMD16<Int32>.self) &<< 23)
        return unsafeBitCast(scaled, to: SIMD16<Float>.self)
    }

    // log(1+y) = log(u)·y/(u-1) with u = 1+y rounded: the quotient undoes the rounding of u
    // (Goldberg's trick), so small y keep full relative accuracy.
    @inlinable @inline(__always)
    public static func vlog1p(_ y: SIMD16<Float>) -> SIMD16<Float> {
        let u = y + 1
        let d = u - 1
        var r = vlogPositive(u) * (y / d)
        r.replace(with: y, where: d .== 0)
        return r
    }

    // Cephes logf for normal x > 0: x = m·2^e with m in [sqrt(1/2), sqrt 2), log m by a
    // degree-9 polynomial in (m-1), log 2 split as for exp.
    @inlinable @inline(__always)
    static func vlogPositive(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let bits = unsafeBitCast(x, to: SIMD16<Int32>.self)
        var e = SIMD16<Float>((bits &>> 23) &- 126)
        var m = unsafeBitCast((bits & 0x007F_FFFF) | 0x3F00_0000, to: SIMD16<Float>.self)  // [0.5, 1)
        let small = m .< 0.707106781186547524
        e.replace(with: e - 1, where: small)
        m.replace(with: m + m, where: small)
        m = m - 1
        let z = m * m
        var p = SIMD16<Float>(repeating: 7.0376836292e-2)
        p = SIMD16(repeating: -1.1514610310e-1).addingProduct(p, m)
        p = SIMD16(repeating: 1.1676998740e-1).addingProduct(p, m)
        p = SIMD16(repeating: -1.2420140846e-1).addingProduct(p, m)
        p = SIMD16(repeating: 1.4249322787e-1).addingProduct(p, m)
        p = SIMD16(repeating: -1.6668057665e-1).addingProduct(p, m)
        p = SIMD16(repeating: 2.0000714765e-1).addingProduct(p, m)
        p = SIMD16(repeating: -2.4999993993e-1).addingProduct(p, m)
        p = SIMD16(repeating: 3.3333331174e-1).addingProduct(p, m)
        var y = p * m * z
        y = y.addingProduct(e, SIMD16(repeating: -2.12194440e-4))
        y = y.addingProduct(z, SIMD16(repeating: -0.5))
        return (m + y).addingProduct(e, SIMD16(repeating: 0.693359375))
    }

    // Cephes tanhf: an odd polynomial for |x| < 0.625, else 1 - 2/(e^{2|x|} + 1) with sign.
    @inlinable @inline(__always)
    public static func vtanh(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let ax = x.replacing(with: -x, where: x .< 0)
        let e = vexp(ax + ax)
        var big = 1 - 2 / (e + 1)
        big.replace(with: -big, where: x .< 0)
        let z = x * x
        var p = SIMD16<Float>(repeating: -5.70498872745e-3)
        p = SIMD16(repeating: 2.06390887954e-2).addingProduct(p, z)
        p = SIMD16(repeating: -5.37397155531e-2).addingProduct(p, z)
        p = SIMD16(repeating: 1.33314422036e-1).addingProduct(p, z)
        p = SIMD16(repeating: -3.33332819422e-1).addingProduct(p, z)
        let small = x.addingProduct(p * z, x)
        big.replace(with: small, where: ax .< 0.625)
        return big
    }

    @inlinable @inline(__always)
    public static func vwhere(_ lhs: SIMD16<Float>, lessThan rhs: SIMD16<Float>, _ then: SIMD16<Float>,
                              else otherwise: SIMD16<Float>) -> SIMD16<Float> {
        otherwise.replacing(with: then, where: lhs .< rhs)
    }

    @inlinable @inline(__always)
    public static func vmuladd(_ a: SIMD16<Float>, _ b: SIMD16<Float>, _ c: SIMD16<Float>) -> SIMD16<Float> {
        c.addingProduct(a, b)
    }

    @inlinable @inline(__always)
    public static func vsqrt(_ x: SIMD16<Float>) -> SIMD16<Float> { nanochat_sqrt_f16(x) }

    public static func exp(_ x: Float) -> Float { Foundation.exp(x) }
    public static func log(_ x: Float) -> Float { Foundation.log(x) }

    @inlinable @inline(__always)
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans,
                    transposeB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    @inlinable @inline(__always)
    public static func gemv(
        transpose: Bool, rows: Int, cols: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float, y: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemv(CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, Int32(rows), Int32(cols),
                    alpha, a, Int32(lda), x, 1, beta, y, 1)
    }

    @inlinable @inline(__always)
    public static func syrkLower(
        transpose: Bool, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_ssyrk(CblasRowMajor, CblasLower, transpose ? CblasTrans : CblasNoTrans, Int32(n), Int32(k), alpha, a, Int32(lda),
             beta, c, Int32(ldc))
    }
}

extension Double: TensorScalar {
    public static var dtype: DType { .float64 }

    @inlinable @inline(__always)
    static func lanewise(_ x: SIMD16<Double>, _ f: (Double) -> Double) -> SIMD16<Double> {
        var y = x
        for i in 0..<16 { y[i] = f(x[i]) }
        return y
    }

    public static func vexp(_ x: SIMD16<Double>) -> SIMD16<Double> { lanewise(x, Foundation.exp) }
    public static func vlog1p(_ y: SIMD16<Double>) -> SIMD16<Double> { lanewise(y, Foundation.log1p) }
    public static func vexp2Decay(_ y: SIMD16<Double>) -> SIMD16<Double> { lanewise(y, Foundation.exp2) }
    public static func vtanh(_ x: SIMD16<Double>) -> SIMD16<Double> { lanewise(x, Foundation.tanh) }
    @inlinable @inline(__always)
    public static func vwhere(_ lhs: SIMD16<Double>, lessThan rhs: SIMD16<Double>, _ then: SIMD16<Double>,
                              else otherwise: SIMD16<Double>) -> SIMD16<Double> {
        otherwise.replacing(with: then, where: lhs .< rhs)
    }

    @inlinable @inline(__always)
    public static func vmuladd(_ a: SIMD16<Double>, _ b: SIMD16<Double>, _ c: SIMD16<Double>) -> SIMD16<Double> {
        c.addingProduct(a, b)
    }

    @inlinable @inline(__always)
    public static func vsqrt(_ x: SIMD16<Double>) -> SIMD16<Double> { nanochat_sqrt_d16(x) }

    public static func exp(_ x: Double) -> Double { Foundation.exp(x) }
    public static func log(_ x: Double) -> Double { Foundation.log(x) }

    @inlinable
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Double,
        a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans,
                    transposeB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    @inlinable
    public static func gemv(
        transpose: Bool, rows: Int, cols: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
        x: UnsafePointer<Double>, beta: Double, y: UnsafeMutablePointer<Double>
    ) {
        cblas_dgemv(CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, Int32(rows), Int32(cols),
                    alpha, a, Int32(lda), x, 1, beta, y, 1)
    }

    @inlinable
    public static func syrkLower(
        transpose: Bool, n: Int, k: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int, beta: Double,
        c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dsyrk(CblasRowMajor, CblasLower, transpose ? CblasTrans : CblasNoTrans, Int32(n), Int32(k), alpha, a, Int32(lda),
             beta, c, Int32(ldc))
    }
}

/// |x| lane by lane.
@inlinable @inline(__always)
public func vabs<S: TensorScalar>(_ x: SIMD16<S>) -> SIMD16<S> {
    S.vwhere(x, lessThan: SIMD16(), -x, else: x)
}

/// max(a, b) lane by lane, by compare and blend (pointwiseMax lowers to scalar code).
@inlinable @inline(__always)
public func vmax<S: TensorScalar>(_ a: SIMD16<S>, _ b: SIMD16<S>) -> SIMD16<S> {
    S.vwhere(a, lessThan: b, b, else: a)
}

/// Σ lanes by a halving tree (8 + 4 + 2 + 1 adds, depth 4). SIMD's own sum() adds the lanes
/// one after another (15 dependent adds), which dominated the scan's backward.
@inlinable @inline(__always)
public func hsum<S: TensorScalar>(_ v: SIMD16<S>) -> S {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    let c = b.lowHalf + b.highHalf
    return c[0] + c[1]
}
