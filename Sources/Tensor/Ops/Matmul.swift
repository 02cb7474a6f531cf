// Matrix products through BLAS (cblas_sgemm / cblas_dgemm), and the naive triple loop
// they are tested against; then the ops on the tape: matmul (optionally transposed,
// batched) and linear.
import CBLAS
import Dispatch

/// C (m×n) = alpha · op(A) · op(B) + beta · C, row-major, contiguous operands:
/// op(A) is m×k (A stored k×m when transposed), op(B) is k×n (B stored n×k when transposed).
///
/// OpenBLAS always runs on one thread (see `Parallel`); a large product is cut here into
/// serial sgemm calls on the same operands with their full leading dimensions, spread over
/// the workers, so that the bits never depend on the thread count:
/// - With at least `gemmRowSplitMinRows` rows or twice `gemmRowSplitMinBlockRows` columns, a
///   grid: blocks of columns chosen from the shape only (`gemmGridColumns`: only where rows
///   alone would leave workers idle), and in each one or two blocks of rows per worker, cut at
///   multiples of `GemmRowSplit.granularity` rows. OpenBLAS computes a row of C the same way
///   wherever a call starts at such a multiple (checked on this machine's BLAS at first use),
///   so any number of row blocks gives the bits of one call. A tall product (a d12 layer's
///   y = x·Wᵀ) is cut by rows alone, each block packing all of op(B) once and nothing else
///   repeated: the closest we get to OpenBLAS's own threading (`bench model --depths 12
///   --seqs 512 --batch 1`, "our gemm ÷ raw": 95-98% at a d12 step's products).
/// - Otherwise, or where the BLAS shows no such granularity: 1, 2, 4 or 8 blocks of rows (of
///   columns when C is wider than tall), chosen from the shape only (about 2^22 multiply-adds
///   or more each, boundaries on multiples of 64), so the same calls run on any number of
///   threads.
/// Either way no OpenBLAS thread is left spinning on the cores while our other kernels run.
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
    @inline(__always) func rows(_ lo: Int, _ len: Int) {
        S.gemm(transposeA: transposeA, transposeB: transposeB, m: len, n: n, k: k, alpha: alpha,
               a: transposeA ? a + lo : a + lo * k, lda: lda, b: b, ldb: ldb, beta: beta, c: c + lo * n, ldc: n)
    }
    if m >= gemmRowSplitMinRows || (m <= n && n >= 2 * gemmRowSplitMinBlockRows), let g = GemmRowSplit.granularity(S.self) {
        // A grid: C column blocks chosen from the shape alone (OpenBLAS computes columns
        // differently wherever a call starts them, so their cuts must not move with the
        // thread count), then R blocks of rows in each, from the workers, cut at multiples of
        // g (any row cut gives the bits of one call). Columns are cut only where rows alone
        // cannot give 32 workers a block of `gemmRowSplitMinBlockRows` rows and C is at least
        // as wide as tall (`gemmGridColumns`): a weight
        // gradient (768 × 768 over 8192 tokens) gets 4 × 4 blocks on 16 workers where rows
        // alone gave 6, a Mamba x_proj's (80 × 1536) 8 column blocks.
        let columns = gemmGridColumns(m: m, n: n, k: k)
        let workers = Parallel.threadCount
        // One row block per worker and column block; two when each still has
        // `gemmRowSplitBusyBlockRows` rows, so a worker slowed by another process on its core
        // hands its second block to the others.
        let perWorker = m / (2 * workers) >= gemmRowSplitBusyBlockRows ? 2 : 1
        let pieces = Swift.max(1, Swift.min(workers * perWorker, (m * n * k) >> 22))
        let maxRows = m >= gemmRowSplitMinRows ? Swift.max(1, m / gemmRowSplitMinBlockRows) : 1
        let rows = Swift.min(maxRows, (pieces + columns - 1) / columns)
        // Row block i starts at the multiple of g nearest to i·m / rows; column block j at
        // the multiple of 64 nearest to j·n / columns.
        @inline(__always) func start(_ i: Int, _ blocks: Int, _ extent: Int, _ g: Int) -> Int {
            i == blocks ? extent : (i * extent / blocks + g / 2) / g * g
        }
        Parallel.forEach(rows * columns) { i in
            let lo = start(i / columns, rows, m, g), hi = start(i / columns + 1, rows, m, g)
            let clo = start(i % columns, columns, n, 64), chi = start(i % columns + 1, columns, n, 64)
            guard lo < hi, clo < chi else { return }
            S.gemm(transposeA: transposeA, transposeB: transposeB, m: hi - lo, n: chi - clo, k: k, alpha: alpha,
                   a: transposeA ? a + lo : a + lo * k, lda: lda, b: transposeB ? b + clo * k : b + clo, ldb: ldb,
                   beta: beta, c: c + lo * n + clo, ldc: n)
        }
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
            rows(lo, len)
        } else {
            S.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: len, k: k, alpha: alpha,
                   a: a, lda: lda, b: transposeB ? b + lo * k : b + lo, ldb: ldb, beta: beta, c: c + lo, ldc: n)
        }
    }
}

/// The column blocks of `gemm`'s grid, from the shape alone: none where rows can give 32
/// workers a block of `gemmRowSplitMinBlockRows` rows each, or where C is taller than wide
/// (each column block repacks its rows of op(A), m × k, and each row block its columns of
/// op(B), k × n: with m > n rows are the cheaper cut, as for the head's dx = dy·W, whose op(A)
/// is the logits' gradient); else a power of two (so that the common worker counts divide
/// the grid), doubled while rows × columns fall short of 32, each block at least
/// `gemmRowSplitMinBlockRows` wide and 2^22 multiply-adds.
@inlinable
public func gemmGridColumns(m: Int, n: Int, k: Int) -> Int {
    let rowBlocks = m >= gemmRowSplitMinRows ? m / gemmRowSplitMinBlockRows : 1
    guard m <= n else { return 1 }
    var columns = 1
    while rowBlocks * columns < 32 && 2 * columns <= n / gemmRowSplitMinBlockRows && 2 * columns <= (m * n * k) >> 22 {
        columns *= 2
    }
    return columns
}

/// Products with fewer rows than this take the shape-only blocks: cut into row blocks, each
/// of which repacks all of op(B), they would copy more than they compute in parallel.
public let gemmRowSplitMinRows = 256
/// The fewest rows per block when rows are split per worker: a block of r rows packs all of
/// op(B) once, about 1/r copies per multiply-add, so short blocks would spend more on packing.
public let gemmRowSplitMinBlockRows = 128
/// The fewest rows per block for a second block per worker: at 256 rows the extra packing of
/// op(B) is at most 1/256 of a copy per multiply-add.
public let gemmRowSplitBusyBlockRows = 256

/// Where OpenBLAS may cut the rows of C without changing any bit. Its kernels compute C in
/// tiles of a few rows (12 for sgemm with the Zen kernels here, 4 for dgemm), each row by the
/// code for its place in the tile; a call that starts a tile at the same row as another computes that row the
/// same way. Which multiple works depends on the kernel OpenBLAS picked for this CPU, so it is
/// found by trial, once per process and scalar type: the smallest g for which products cut at
/// odd multiples of g (all four transposes; beta 0 and beta 1) equal one call bit for bit.
public enum GemmRowSplit {
    @usableFromInline static let float = findGranularity(Float.self)
    @usableFromInline static let double = findGranularity(Double.self)

    /// The row granularity for `S`, or nil if no candidate up to 192 rows holds here.
    @inlinable
    public static func granularity<S: TensorScalar>(_: S.Type) -> Int? {
        S.dtype == .float32 ? float : double
    }

    /// The candidates: tile heights of 4 to 32 rows and their common multiples.
    static let candidates = [4, 8, 12, 16, 24, 32, 48, 96, 192]

    static func findGranularity<S: TensorScalar>(_: S.Type) -> Int? {
        let n = 40, k = 700        // k long enough that C is summed over more than one k panel
        var random = SeededGenerator(seed: 12)
        var a: [S] = [], b: [S] = [], c0: [S] = []
        for g in candidates {
            let m = Swift.max(600, 10 * g) + 7   // rows over several of OpenBLAS's row panels
            let cuts = [0, g * (2 * (m / (10 * g)) + 1), g * (2 * (m / (4 * g)) + 1), m]
            if a.count != m * k {
                a = (0..<(m * k)).map { _ in S(random.nextUnit() - 0.5) }
                b = (0..<(k * n)).map { _ in S(random.nextUnit() - 0.5) }
                c0 = (0..<(m * n)).map { _ in S(random.nextUnit() - 0.5) }
            }
            var holds = true
            for (ta, tb, alpha, beta) in [(false, false, 1, 0), (false, true, 1, 0), (true, false, 1, 0),
                                          (true, true, 1, 0), (false, true, 0.5, 1)] as [(Bool, Bool, S, S)] {
                var whole = c0, split = c0
                a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in
                    let (a, b, lda, ldb) = (a.baseAddress!, b.baseAddress!, ta ? m : k, tb ? k : n)
                    whole.withUnsafeMutableBufferPointer {
                        S.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: alpha,
                               a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: $0.baseAddress!, ldc: n)
                    }
                    split.withUnsafeMutableBufferPointer { c in
                        for (lo, hi) in zip(cuts, cuts.dropFirst()) {
                            S.gemm(transposeA: ta, transposeB: tb, m: hi - lo, n: n, k: k, alpha: alpha,
                                   a: ta ? a + lo : a + lo * k, lda: lda, b: b, ldb: ldb, beta: beta,
                                   c: c.baseAddress! + lo * n, ldc: n)
                        }
                    }
                } }
                if !whole.withUnsafeBytes({ w in split.withUnsafeBytes { w.elementsEqual($0) } }) { holds = false; break }
            }
            if holds { return g }
        }
        return nil
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

/// C (n×n) = alpha · op(A)·op(A)ᵀ + beta · C, op(A) n×k: a row-major n×k A, or with
/// `transpose` a k×n A and C = AᵀA. C is symmetric (on input when beta ≠ 0; on output both
/// triangles are written): the Gram matrix in about half the multiply-adds of `gemm`, which
/// computes both triangles.
///
/// A large lower triangle is cut into two bands of rows of equal area (the second starts at
/// row n/√2): the first is one syrk, the second one product with the rows above it and one
/// syrk of its own diagonal block, the two on two workers. (Four thinner bands ran slower on
/// 2 cores: thin syrk and product blocks lose more than the balance gains.) The bands depend
/// on the shape only, so the bits do not depend on the thread count. The upper triangle is
/// then copied from the lower. In Muon's Newton–Schulz at d12's shapes this makes the whole
/// orthogonalisation 1.15-1.3x faster than with `gemm` (same run, 2 threads).
public func gram<S: TensorScalar>(
    transpose: Bool = false, n: Int, k: Int, a: UnsafePointer<S>, c: UnsafeMutablePointer<S>, alpha: S = 1, beta: S = 0
) {
    guard n > 0 else { return }
    let bands = n >= 64 && n * n * k / 2 >= 1 << 22 ? 2 : 1
    @inline(__always) func start(_ i: Int) -> Int {
        i >= bands ? n : Int((Double(n) * (Double(i) / Double(bands)).squareRoot()).rounded())
    }
    Parallel.forEach(bands) { i in
        let lo = start(i), hi = start(i + 1)
        guard lo < hi else { return }
        // Rows lo..<hi of op(A): rows of A, or columns of the transposed A.
        let band = transpose ? a + lo : a + lo * k, lda = transpose ? n : k
        if lo > 0 {
            S.gemm(transposeA: transpose, transposeB: !transpose, m: hi - lo, n: lo, k: k, alpha: alpha, a: band, lda: lda,
                   b: a, ldb: lda, beta: beta, c: c + lo * n, ldc: n)
        }
        S.syrkLower(transpose: transpose, n: hi - lo, k: k, alpha: alpha, a: band, lda: lda, beta: beta,
                    c: c + lo * n + lo, ldc: n)
    }
    // Upper triangle from the lower, in tiles so both sides stay in cache.
    let tile = 32, tiles = (n + tile - 1) / tile
    Parallel.forRanges(tiles, grain: 1, alignment: 1) { range in
        for ti in range {
            let i0 = ti * tile, i1 = Swift.min(n, i0 + tile)
            for j0 in stride(from: i0, to: n, by: tile) {
                let j1 = Swift.min(n, j0 + tile)
                for i in i0..<i1 {
                    for j in Swift.max(j0, i + 1)..<j1 { c[i * n + j] = c[j * n + i] }
                }
            }
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

/// C = op(A) · op(B) + beta · C for contiguous operands: `gemm` in fp32, or with `bf16` the
/// bf16 product on that kernel (B packed already when `packedB` is given).
@inline(__always)
func product<S: TensorScalar>(
    _ bf16: BF16Kernel?, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    a: UnsafePointer<S>, b: UnsafePointer<S>, c: UnsafeMutablePointer<S>, beta: S = 0,
    packedB: PackedBF16Weight? = nil
) {
    guard let bf16, S.dtype == .float32 else {
        gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, b: b, c: c, beta: beta)
        return
    }
    let fa = UnsafeRawPointer(a).assumingMemoryBound(to: Float.self)
    let fb = UnsafeRawPointer(b).assumingMemoryBound(to: Float.self)
    let fc = UnsafeMutableRawPointer(c).assumingMemoryBound(to: Float.self)
    bf16Gemm(kernel: bf16, transposeA: transposeA, m: m, n: n, k: k, a: fa, lda: transposeA ? m : k,
             b: packedB.map { .packed($0) } ?? .floats(fb, ld: transposeB ? k : n, transposed: transposeB),
             c: fc, ldc: n, beta: Float(beta))
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
    let shape = lead + [ta ? a.shape[a.rank - 1] : a.shape[a.rank - 2], n]
    if S.dtype == .float32, batches == 1, a !== b, GradMode.isEnabled, a.requiresGrad || b.requiresGrad,
       Precision.matmul == .bfloat16, Precision.kernel == .rounded {
        return roundedMatmulOp(a, b, ta, tb, m: m, n: n, k: k, shape: shape)
    }
    let y = Tensor(uninitializedShape: shape, dtype: a.dtype)
    let sa = m * k, sb = bBatched ? k * n : 0, sy = m * n
    let pa = a.data(S.self), pb = b.data(S.self), py = y.data(S.self)
    // The precision is read once, here: backward multiplies as the forward did.
    let bf16 = S.dtype == .float32 && Precision.matmul == .bfloat16 ? Precision.kernel : nil
    // A weight packed for inference serves a forward that records no gradient for it.
    let packed = bf16 != nil && tb && !bBatched && !(GradMode.isEnabled && b.requiresGrad) ? b.packedBF16 : nil
    for i in 0..<batches {
        product(bf16, transposeA: ta, transposeB: tb, m: m, n: n, k: k, a: pa + i * sa, b: pb + i * sb, c: py + i * sy,
                packedB: packed)
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
                    product(bf16, transposeA: tb, transposeB: true, m: k, n: m, k: n, a: pb + i * sb, b: g, c: da + i * sa, beta: betaA)
                } else {  // A (M, K): dA += dY · op(B)ᵀ
                    product(bf16, transposeA: false, transposeB: !tb, m: m, n: k, k: n, a: g, b: pb + i * sb, c: da + i * sa, beta: betaA)
                }
            }
            if let db {
                let betaB: S = accumulateB || (!bBatched && i > 0) ? 1 : 0
                if tb {   // B (N, K): dB += dYᵀ · op(A)
                    product(bf16, transposeA: true, transposeB: ta, m: n, n: k, k: m, a: g, b: pa + i * sa, c: db + i * sb, beta: betaB)
                } else {  // B (K, N): dB += op(A)ᵀ · dY
                    product(bf16, transposeA: !ta, transposeB: false, m: k, n: n, k: m, a: pa + i * sa, b: g, c: db + i * sb, beta: betaB)
                }
            }
        }
    }
    return y
}
