// Matrix products through BLAS (cblas_sgemm / cblas_dgemm), and the naive triple loop
// they are tested against.
import Dispatch

/// C (m×n) = alpha · op(A) · op(B) + beta · C, row-major, contiguous operands:
/// op(A) is m×k (A stored k×m when transposed), op(B) is k×n (B stored n×k when transposed).
@inlinable @inline(__always)
public func gemm<S: TensorScalar>(
    transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
    a: UnsafePointer<S>, b: UnsafePointer<S>, c: UnsafeMutablePointer<S>,
    alpha: S = 1, beta: S = 0
) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        // BLAS may skip the beta scaling when k = 0; do it here so C = beta·C holds.
        for i in 0..<(m * n) { c[i] = beta == 0 ? 0 : c[i] * beta }
        return
    }
    S.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
           a: a, lda: transposeA ? m : k, b: b, ldb: transposeB ? k : n,
           beta: beta, c: c, ldc: n)
}

/// The reference: C = op(A) · op(B) by the textbook triple loop, accumulated in Double.
@inlinable
public func matmulReference<S: TensorScalar>(
    transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
    a: UnsafePointer<S>, b: UnsafePointer<S>, c: UnsafeMutablePointer<S>
) {
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let av = transposeA ? a[p * m + i] : a[i * k + p]
                let bv = transposeB ? b[j * k + p] : b[p * n + j]
                s += Double(av) * Double(bv)
            }
            c[i * n + j] = S(s)
        }
    }
}

/// The best sgemm rate, in GFLOPS, of `repeats` square products of side `size` at the current
/// OpenBLAS thread count: the peak that model FLOPs utilisation (MFU) is quoted against.
public func measureGemmPeak(size: Int = 1024, repeats: Int = 5) -> Double {
    let a = [Float](repeating: 0.5, count: size * size), b = a
    var c = [Float](repeating: 0, count: size * size)
    var best = Double.infinity
    a.withUnsafeBufferPointer { ap in
        b.withUnsafeBufferPointer { bp in
            c.withUnsafeMutableBufferPointer { cp in
                for _ in 0...repeats {   // the first product warms up and counts too
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    gemm(m: size, n: size, k: size, a: ap.baseAddress!, b: bp.baseAddress!, c: cp.baseAddress!)
                    best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
                }
            }
        }
    }
    return 2 * Double(size * size * size) / best / 1e9
}
