// Matrix products through BLAS (cblas_sgemm / cblas_dgemm), and the naive triple loop
// they are tested against.

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
