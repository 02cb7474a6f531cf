// Matrix products through BLAS (cblas_sgemm / cblas_dgemm), and the naive triple loop
// they are tested against.
import CBLAS
import Dispatch

/// C (m×n) = alpha · op(A) · op(B) + beta · C, row-major, contiguous operands:
/// op(A) is m×k (A stored k×m when transposed), op(B) is k×n (B stored n×k when transposed).
///
/// OpenBLAS always runs on one thread (see `Parallel`); a large product is cut here into
/// blocks of rows of C (of columns when C is wider than tall), each a serial sgemm on the
/// same operands with their full leading dimensions, and the blocks are spread over the
/// workers. The blocks depend on the shape only (1, 2, 4 or 8 of them, about 2^22
/// multiply-adds or more each, boundaries on multiples of 64), never on the thread count:
/// OpenBLAS picks its kernels by the size of each call, so the same calls give the same
/// bits with any number of threads. And no OpenBLAS thread is left spinning on the cores
/// while our other kernels run.
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
    let lda = transposeA ? m : k, ldb = transposeB ? k : n
    if m == 1 {
        // One row (decoding): a matrix-vector product. sgemm would pack all of B for it.
        gemv(transposeB: transposeB, n: n, k: k, a: a, b: b, c: c, alpha: alpha, beta: beta)
        return
    }
    let byRows = m >= n, extent = byRows ? m : n
    var blocks = 1
    while blocks < 8 && m * n * k / (2 * blocks) >= 1 << 22 && extent / (2 * blocks) >= 64 { blocks *= 2 }
    let size = (extent + blocks - 1) / blocks
    let step = (size + 63) / 64 * 64
    let count = (extent + step - 1) / step
    Parallel.forEach(count) { i in
        let lo = i * step, len = Swift.min(step, extent - lo)
        if byRows {
            S.gemm(transposeA: transposeA, transposeB: transposeB, m: len, n: n, k: k, alpha: alpha,
                   a: transposeA ? a + lo : a + lo * k, lda: lda, b: b, ldb: ldb, beta: beta, c: c + lo * n, ldc: n)
        } else {
            S.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: len, k: k, alpha: alpha,
                   a: a, lda: lda, b: transposeB ? b + lo * k : b + lo, ldb: ldb, beta: beta, c: c + lo, ldc: n)
        }
    }
}

/// c (1×n) = alpha · a (1×k) · op(B) + beta · c, as sgemv: B stored n×k (transposed) is read
/// row by row, B stored k×n column-wise by sgemv's transposed form. Cut into blocks of
/// outputs by shape only (1 to 8 of at least 2^18 multiply-adds, on multiples of 64), spread
/// over the workers, so the bits do not depend on the thread count.
@inlinable @inline(__always)
func gemv<S: TensorScalar>(
    transposeB: Bool, n: Int, k: Int, a: UnsafePointer<S>, b: UnsafePointer<S>, c: UnsafeMutablePointer<S>,
    alpha: S, beta: S
) {
    var blocks = 1
    while blocks < 8 && n * k / (2 * blocks) >= 1 << 18 && n / (2 * blocks) >= 64 { blocks *= 2 }
    let step = ((n + blocks - 1) / blocks + 63) / 64 * 64
    Parallel.forEach((n + step - 1) / step) { i in
        let lo = i * step, len = Swift.min(step, n - lo)
        // With beta 0, c may hold garbage (a gradient written, not added, see gradForWriting);
        // not every BLAS ignores a NaN there, so clear it first.
        if beta == 0 { (c + lo).update(repeating: 0, count: len) }
        if transposeB {
            S.gemv(transpose: false, rows: len, cols: k, alpha: alpha, a: b + lo * k, lda: k, x: a, beta: beta, y: c + lo)
        } else {
            S.gemv(transpose: true, rows: k, cols: len, alpha: alpha, a: b + lo, lda: n, x: a, beta: beta, y: c + lo)
        }
    }
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

/// The best rate, in GFLOPS, of `repeats` square sgemm products of side `size` by OpenBLAS
/// with its own threads (as many as ours): the peak that model FLOPs utilisation (MFU) is
/// quoted against. Best, not median: on a shared machine the best run is the closest to the
/// hardware. OpenBLAS goes back to one thread afterwards.
public func measureGemmPeak(size: Int = 2048, repeats: Int = 5) -> Double {
    let a = [Float](repeating: 0.5, count: size * size), b = a
    var c = [Float](repeating: 0, count: size * size)
    var best = Double.infinity
    openblas_set_num_threads(Int32(Parallel.threadCount))
    defer { openblas_set_num_threads(1) }
    a.withUnsafeBufferPointer { ap in
        b.withUnsafeBufferPointer { bp in
            c.withUnsafeMutableBufferPointer { cp in
                for _ in 0...repeats {   // the first product warms up and counts too
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    Float.gemm(transposeA: false, transposeB: false, m: size, n: size, k: size, alpha: 1,
                               a: ap.baseAddress!, lda: size, b: bp.baseAddress!, ldb: size, beta: 0, c: cp.baseAddress!, ldc: size)
                    best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
                }
            }
        }
    }
    return 2 * Double(size * size * size) / best / 1e9
}
