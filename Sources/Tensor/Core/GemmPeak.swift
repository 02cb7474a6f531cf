// The machine's sgemm peak: what model FLOPs utilisation (MFU) is quoted against, by `train`
// and by the benchmark.
import CBLAS
import Dispatch
import Synchronization

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

/// op(a) · op(b). a is (..., M, K) — or (..., K, M) with `transposeA` — and b is (K, N) —
/// or (N, K) with `transposeB` — or carries the same leading (batch) axes as a.
/// With a 2-D b and no transpose of a, the leading axes of a fold into M: one sgemm.
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    precondition(a.dtype == b.dtype, "matmul: dtypes differ, \(a.dtype) and \(b.dtype)")
    precondition(a.rank >= 2 && b.rank >= 2, "matmul needs rank ≥ 2, got \(a.shape) and \(b.shape)")
    switch a.dtype {
    case .float32: return matmulOp(a, b, transposeA, transposeB, Float.self)
    case .float64: return matmulOp(a, b, transposeA, transposeB, Double.self)
    }
}

/// x (..., in) · weightᵀ, weight (out, in) as PyTorch's nn.Linear without bias.
public func linear(_ x: Tensor, _ weight: Tensor) -> Tensor {
    matmul(x, weight, transposeB: true)
}

func matmulOp<S: TensorScalar>(_ a: Tensor, _ b: Tensor, _ ta: Bool, _ tb: Bool, _: S.Type) -> Tensor {
    let k = ta ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
    var m = ta ? a.shape[a.rank - 1] : a.shape[a.rank - 2]
    let kb = tb ? b.shape[b.rank - 1] : b.shape[b.rank - 2]
    let n = tb ? b.shape[b.rank - 2] : b.shape[b.rank - 1]
    precondition(k == kb, "matmul: inner sizes differ, \(a.shape)\(ta ? "ᵀ" : "") · \(b.shape)\(tb ? "ᵀ" : "")")
    let lead = Array(a.shape.dropLast(2))
    var batches = lead.reduce(1, *)
    let bBatched = b.rank > 2
    if bBatched {
        precondition(Array(b.shape.dropLast(2)) == lead, "matmul: batch axes differ, \(a.shape) and \(b.shape)")
    } else if !ta {
        m *= batches   // fold (..., M, K) into (batches·M, K)
        batches = 1
    }
    let y = Tensor(uninitializedShape: lead + [ta ? a.shape[a.rank - 1] : a.shape[a.rank - 2], n], dtype: a.dtype)
    let sa = m * k, sb = bBatched ? k * n : 0, sy = m * n
    let pa = a.data(S.self), pb = b.data(S.self), py = y.data(S.self)
    for i in 0..<batches {
        gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, a: pa + i * sa, b: pb + i * sb, c: py + i * sy)
    }
    y.record("matmul", [a, b]) { y in
        let dy = y.gradData(S.self)
        // Each gradient is written (beta 0) where it holds nothing yet, else added to
        // (beta 1). A shared b (no batch axes) sums over the batches: beta 1 after the first.
        // With a and b the same tensor both products add into one zero-filled gradient.
        let same = a === b
        let (da, accumulateA): (UnsafeMutablePointer<S>?, Bool) =
            !a.requiresGrad ? (nil, true) : same ? (a.gradData(S.self), true) : a.gradForWriting(S.self)
        let (db, accumulateB): (UnsafeMutablePointer<S>?, Bool) =
            !b.requiresGrad ? (nil, true) : same ? (b.gradData(S.self), true) : b.gradForWriting(S.self)
        let betaA: S = accumulateA ? 1 : 0
        for i in 0..<batches {
            let g = dy + i * sy
            if let da {
                if ta {   // A (K, M): dA += op(B) · dYᵀ
                    gemm(transposeA: tb, transposeB: true, m: k, n: m, k: n, a: pb + i * sb, b: g, c: da + i * sa, beta: betaA)
                } else {  // A (M, K): dA += dY · op(B)ᵀ
                    gemm(transposeA: false, transposeB: !tb, m: m, n: k, k: n, a: g, b: pb + i * sb, c: da + i * sa, beta: betaA)
                }
            }
            if let db {
                let betaB: S = accumulateB || (!bBatched && i > 0) ? 1 : 0
                if tb {   // B (N, K): dB += dYᵀ · op(A)
                    gemm(transposeA: true, transposeB: ta, m: n, n: k, k: m, a: g, b: pa + i * sa, c: db + i * sb, beta: betaB)
                } else {  // B (K, N): dB += op(A)ᵀ · dY
                    gemm(transposeA: !ta, transposeB: false, m: k, n: n, k: m, a: pa + i * sa, b: g, c: db + i * sb, beta: betaB)
                }
            }
        }
    }
    return y
}

/// `measureGemmPeak()` measured once per process and thread count (a sweep starts dozens of
/// runs; the machine's peak does not change between them).
public func gemmPeak(threads: Int) -> Double {
    if let known = measuredPeaks.withLock({ $0[threads] }) { return known }
    let peak = measureGemmPeak()
    measuredPeaks.withLock { $0[threads] = peak }
    return peak
}

private let measuredPeaks = Mutex<[Int: Double]>([:])
