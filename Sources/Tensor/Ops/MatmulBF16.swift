// Matrix products with bf16 operands and fp32 accumulation (`Precision`): the driver that
// packs the operands (CBF16.h's layouts), cuts the product into blocks for the workers and
// calls the kernel, and bf16 weights packed once for inference.
//
// Every output element is a sum over K of exact products accumulated in fp32 by one
// kernel, in an order that depends on the kernel and K alone: how rows and columns are cut
// into blocks, and how many threads take them, changes no bit.
import CBF16
import Foundation

/// Products of fewer rows take the few-rows kernel (decoding): one pass over packed B per
/// group of rows, no packing of A into panels.
public let bf16FewRows = 16

/// How the packed path cuts a product: blocks of `rowPanels` A panels (32 rows each) by
/// `columnPairs` B panel pairs (32 columns each), K in chunks of `kChunk` (a multiple of 32).
/// None of these changes a bit of the result, only its speed; `bench kernels` compares them.
public struct BF16Blocking: Sendable, Equatable {
    public var rowPanels: Int
    public var columnPairs: Int
    public var kChunk: Int

    public init(rowPanels: Int, columnPairs: Int, kChunk: Int) {
        precondition(rowPanels >= 1 && columnPairs >= 1 && kChunk >= 32 && kChunk % 32 == 0,
                     "bf16 blocking needs ≥ 1 panel, ≥ 1 pair and a K chunk that is a multiple of 32")
        self.rowPanels = rowPanels; self.columnPairs = columnPairs; self.kChunk = kChunk
    }

    /// 128 rows by 256 columns, K in chunks of 1024: the accumulator block (128 KiB) and an
    /// A panel's chunk (64 KiB) stay in L2 beside 256 columns of B's chunk (512 KiB). The
    /// fastest of six blockings at d12's products with AMX on a 16-core Xeon (`bench
    /// kernels --bf16-blocking`, docs/tensor.md).
    public static let standard = BF16Blocking(rowPanels: 4, columnPairs: 8, kChunk: 1024)

    nonisolated(unsafe) private static var chosen = standard
    private static let lock = NSLock()

    /// The blocking products use (for measurements: `bench kernels --bf16-blocking`).
    public static var current: BF16Blocking {
        get { lock.lock(); defer { lock.unlock() }; return chosen }
        set { lock.lock(); chosen = newValue; lock.unlock() }
    }
}

/// The B operand of a bf16 product: fp32 values (rounded as they are packed), or a weight
/// already packed (`PackedBF16Weight`).
public enum BF16Operand {
    case floats(UnsafePointer<Float>, ld: Int, transposed: Bool)
    case packed(PackedBF16Weight)

    /// Whether op(B) is the stored matrix transposed (a packed weight is Wᵀ).
    var isTransposed: Bool {
        switch self {
        case .floats(_, _, let transposed): transposed
        case .packed: true
        }
    }
}

/// A weight W (out × in) rounded to bf16 once and packed as the B operand of x · Wᵀ, for
/// inference: decoding reads half the bytes of fp32 per token, and no product packs it
/// again. `Tensor.packBF16()` attaches one; training never does (its weights change).
public final class PackedBF16Weight: @unchecked Sendable {
    /// op(B) = Wᵀ is k × n: k = in, n = out.
    public let k: Int, n: Int
    let k32: Int, panels: Int
    let data: UnsafeMutablePointer<UInt16>

    init(weight w: Tensor) {
        precondition(w.rank == 2 && w.dtype == .float32, "a packed bf16 weight is a 2-D Float32 tensor, got \(w.shape) \(w.dtype)")
        n = w.shape[0]; k = w.shape[1]
        k32 = (k + 31) / 32 * 32
        panels = (n + 31) / 32 * 2
        data = .allocate(capacity: panels * 16 * k32)
        let (src, k, n, dst) = (w.data(Float.self), k, n, data)
        Parallel.forRanges(panels, grain: 1, alignment: 1) { r in
            nc_bf16_pack_b(src, k, true, Int32(k), Int32(n), Int32(r.lowerBound), Int32(r.upperBound), dst)
        }
    }

    deinit { data.deallocate() }

    /// Bytes held.
    public var byteCount: Int { panels * 16 * k32 * 2 }
}

extension Tensor {
    /// Attaches this weight (out × in) rounded to bf16 and packed, for products `linear(x, w)`
    /// in bf16 without gradients (inference). The fp32 values stay and are what training,
    /// checkpoints and fp32 products read; do not change them while the packed copy is
    /// attached (`unpackBF16()` drops it).
    public func packBF16() {
        if packedBF16 == nil { packedBF16 = PackedBF16Weight(weight: self) }
    }

    /// Drops the packed bf16 copy.
    public func unpackBF16() { packedBF16 = nil }

    /// Bytes the packed bf16 copy holds (0 without one): the weight's rows and columns each
    /// rounded up to a multiple of 32, two bytes a value.
    public var packedBF16Bytes: Int { packedBF16?.byteCount ?? 0 }
}

/// C (m×n, leading dimension ldc) = alpha · op(A) · op(B) + beta · C with op(A) and op(B)
/// rounded to bf16 and the sums in fp32. A is stored m×k (k×m when transposed) with leading
/// dimension lda; B as `b` says. `serial`: on this thread alone (inside another op's worker).
public func bf16Gemm(
    kernel: BF16Kernel, transposeA: Bool, m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, lda: Int, b: BF16Operand, c: UnsafeMutablePointer<Float>, ldc: Int,
    alpha: Float = 1, beta: Float = 0, serial: Bool = false
) {
    guard m > 0, n > 0 else { return }
    guard k > 0 else {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    func each(_ count: Int, _ body: (Range<Int>) -> Void) {
        if serial { body(0..<count) } else { Parallel.forRanges(count, grain: 1, alignment: 1, body) }
    }
    let k32 = (k + 31) / 32 * 32

    if case .floats(let pb, let ldb, let tb) = b, !kernel.packs {
        // Round both operands (compact copies), then fp32 sgemm: the same exact products.
        let aRows = transposeA ? k : m, aCols = transposeA ? m : k
        let bRows = tb ? n : k, bCols = tb ? k : n
        // From the pool: a train step repeats its shapes, so no product maps fresh pages.
        let bufferA = Buffer(byteCount: aRows * aCols * 4), bufferB = Buffer(byteCount: bRows * bCols * 4)
        defer { withExtendedLifetime((bufferA, bufferB)) {} }
        let ra = bufferA.pointer(Float.self), rb = bufferB.pointer(Float.self)
        each(aRows) { r in for i in r { nc_bf16_round_f32(a + i * lda, ra + i * aCols, aCols) } }
        each(bRows) { r in for i in r { nc_bf16_round_f32(pb + i * ldb, rb + i * bCols, bCols) } }
        fp32Product(transposeA: transposeA, transposeB: tb, m: m, n: n, k: k, a: ra, b: rb, c: c, ldc: ldc,
                    alpha: alpha, beta: beta, serial: serial)
        return
    }

    // Packed B: the weight's own, or packed here.
    let panels = (n + 31) / 32 * 2
    // Under `--profile`, each stage of a product of many rows is timed by its shape.
    let profiled = OpProfile.isEnabled && !serial && m >= bf16FewRows && kernel != .rounded
    func stage(_ name: String, _ body: () -> Void) {
        guard profiled else { return body() }
        OpProfile.part("bf16 \(name) \(m)×\(k)\(transposeA ? "ᵀ" : "")·\(k)×\(n)\(b.isTransposed ? "ᵀ" : "")", body)
    }
    var packedB: UnsafeMutablePointer<UInt16>
    var ownedB: Buffer? = nil
    // B's packing as units of work for the workers (none for a weight packed already).
    var packB: (units: Int, run: (Range<Int>) -> Void) = (0, { _ in })
    switch b {
    case .packed(let w):
        precondition(w.k == k && w.n == n, "packed weight is \(w.n)×\(w.k), the product needs \(n)×\(k)")
        packedB = w.data
    case .floats(let pb, let ldb, let tb):
        let buffer = Buffer(byteCount: panels * 16 * k32 * 2)
        ownedB = buffer
        packedB = buffer.raw.assumingMemoryBound(to: UInt16.self)
        let dst = packedB
        if tb {   // a weight's rows are op(B)'s columns: panel by panel
            packB = (panels, { r in
                nc_bf16_pack_b(pb, ldb, true, Int32(k), Int32(n), Int32(r.lowerBound), Int32(r.upperBound), dst)
            })
        } else {  // B's rows are op(B)'s: pairs of them at a time, read whole
            packB = (k32 / 2, { r in
                nc_bf16_pack_b_pairs(pb, ldb, Int32(k), Int32(n), Int32(r.lowerBound), Int32(r.upperBound), dst)
            })
        }
    }
    defer { withExtendedLifetime(ownedB) {} }

    if m < bf16FewRows || (kernel == .rounded) {
        if packB.units > 0 { each(packB.units, packB.run) }
        if m >= bf16FewRows {
            // A packed weight on a CPU without bf16 products: back to fp32 (its rounded values,
            // exactly) and sgemm, faster here than the portable loops for many rows.
            let bufferW = Buffer(byteCount: k * n * 4), bufferA = Buffer(byteCount: m * k * 4)
            defer { withExtendedLifetime((bufferW, bufferA)) {} }
            let wb = bufferW.pointer(Float.self), ra = bufferA.pointer(Float.self)
            let src = packedB
            each(panels) { r in nc_bf16_unpack_b(src, Int32(k), Int32(n), Int32(r.lowerBound), Int32(r.upperBound), wb) }
            let aRows = transposeA ? k : m, aCols = transposeA ? m : k
            each(aRows) { r in for i in r { nc_bf16_round_f32(a + i * lda, ra + i * aCols, aCols) } }
            fp32Product(transposeA: transposeA, transposeB: false, m: m, n: n, k: k, a: ra, b: wb, c: c, ldc: ldc,
                        alpha: alpha, beta: beta, serial: serial)
            return
        }
        // Few rows: A as rows of K32 bf16, each output a sum over K in order.
        let scratch = Buffer(byteCount: m * k32 * 2 + m * n * 4)
        defer { withExtendedLifetime(scratch) {} }
        let out = scratch.pointer(Float.self)
        let rows = (scratch.raw + m * n * 4).assumingMemoryBound(to: UInt16.self)
        nc_bf16_pack_rows(a, lda, transposeA, Int32(m), Int32(k), 0, Int32(m), rows)
        // Blocks of 16-column panels, about four per worker and at least 2^15 multiply-adds
        // each: decoding is bound by reading the weights, so every core should stream a part
        // (a column's value does not depend on the cut).
        let usedPanels = (n + 15) / 16
        let fewest = Swift.max(1, (1 << 15) / Swift.max(1, m * k * 16))
        let perBlock = Swift.max(fewest, (usedPanels + 4 * (serial ? 1 : Parallel.threadCount) - 1) / (4 * (serial ? 1 : Parallel.threadCount)))
        let blocks = (usedPanels + perBlock - 1) / perBlock
        let src = packedB
        each(blocks) { r in
            for blk in r {
                let q0 = blk * perBlock, q1 = Swift.min(usedPanels, q0 + perBlock)
                nc_bf16_rows(kernel.packedKernel, rows, k32, 0, Int32(m), src, Int32(q0), Int32(q1), Int32(k32),
                             Int32(n), out, n)
            }
        }
        nc_bf16_store(out, n, Int32(m), Int32(n), alpha, beta, c, ldc)
        return
    }

    // Packed A, then blocks of rows × columns for the workers.
    let aPanels = (m + 31) / 32
    let bufferA = Buffer(byteCount: aPanels * 32 * k32 * 2)
    let packedA = bufferA.raw.assumingMemoryBound(to: UInt16.self)
    let packA: (units: Int, run: (Range<Int>) -> Void)
    if transposeA {   // A's rows are op(A)'s columns: blocks of 32 of them at a time, read whole
        packA = (k32 / 32, { r in
            nc_bf16_pack_a_kblocks(a, lda, Int32(m), Int32(k), Int32(r.lowerBound), Int32(r.upperBound), packedA)
        })
    } else {
        packA = (aPanels, { r in
            nc_bf16_pack_a(a, lda, false, Int32(m), Int32(k), Int32(r.lowerBound), Int32(r.upperBound), packedA)
        })
    }
    // One hand-out each: their units cost too differently (a panel of A against a row pair
    // of B) to share one even cut.
    stage("pack") {
        if packB.units > 0 { each(packB.units, packB.run) }
        each(packA.units, packA.run)
    }
    var blocking = BF16Blocking.current
    let pairs = panels / 2
    // Enough blocks for every worker to take a few: narrower blocks where the product is
    // small (the cut changes no bit).
    let workers = serial ? 1 : Parallel.threadCount
    func blockCount(_ b: BF16Blocking) -> Int {
        ((aPanels + b.rowPanels - 1) / b.rowPanels) * ((pairs + b.columnPairs - 1) / b.columnPairs)
    }
    while blockCount(blocking) < 3 * workers && (blocking.columnPairs > 1 || blocking.rowPanels > 1) {
        if blocking.columnPairs >= blocking.rowPanels * 2 && blocking.columnPairs > 1 { blocking.columnPairs /= 2 }
        else if blocking.rowPanels > 1 { blocking.rowPanels /= 2 } else { blocking.columnPairs /= 2 }
    }
    let rowBlocks = (aPanels + blocking.rowPanels - 1) / blocking.rowPanels
    let colBlocks = (pairs + blocking.columnPairs - 1) / blocking.columnPairs
    let accCount = blocking.rowPanels * 32 * blocking.columnPairs * 32
    let kc = Swift.min(blocking.kChunk, k32)
    let pb = packedB, code = kernel.packedKernel
    stage("blocks") { each(rowBlocks * colBlocks) { range in
        withScratch(Float.self, count: accCount) { acc in
            for t in range {
                let rb = t / colBlocks, cb = t % colBlocks
                let p0 = rb * blocking.rowPanels, p1 = Swift.min(aPanels, p0 + blocking.rowPanels)
                let q0 = cb * blocking.columnPairs, q1 = Swift.min(pairs, q0 + blocking.columnPairs)
                let ld = (q1 - q0) * 32
                nc_bf16_block(code, packedA + p0 * 32 * k32, Int32(p1 - p0), pb + 2 * q0 * 16 * k32, Int32(q1 - q0),
                              Int32(k32), Int32(kc), acc, ld)
                let row0 = p0 * 32, col0 = q0 * 32
                nc_bf16_store(acc, ld, Int32(Swift.min(m, p1 * 32) - row0), Int32(Swift.min(n, q1 * 32) - col0),
                              alpha, beta, c + row0 * ldc + col0, ldc)
            }
        }
    } }
    withExtendedLifetime(bufferA) {}
}

/// fp32 product of contiguous operands into C with leading dimension ldc: the threaded
/// `gemm` (or one sgemm call when serial).
private func fp32Product(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
    c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float, serial: Bool
) {
    if serial || ldc != n {
        let run = { Float.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                               a: a, lda: transposeA ? m : k, b: b, ldb: transposeB ? k : n, beta: beta, c: c, ldc: ldc) }
        if serial { run() } else { Parallel.serially(run) }
        return
    }
    gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, b: b, c: c, alpha: alpha, beta: beta)
}

/// The matmul op on the `rounded` kernel, for one product of Float tensors (a 2-D b, or
/// a's leading axes folded) with gradients recorded. The same products as `bf16Gemm`'s
/// rounded path with fewer passes over memory, where there is no bf16 instruction to pay for
/// them: b is rounded once for the forward and kept for dA; the output's gradient is
/// rounded in place, once for both products (nothing else reads it: it is dropped as soon as
/// this rule has run); a is rounded again for dB rather than kept.
func roundedMatmulOp(_ a: Tensor, _ b: Tensor, _ ta: Bool, _ tb: Bool, m: Int, n: Int, k: Int, shape: [Int]) -> Tensor {
    let y = Tensor(uninitializedShape: shape)
    let ra = roundedCopy(a), rb = roundedCopy(b)
    let (pa, pb) = (ra.pointer(Float.self), rb.pointer(Float.self))
    gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, a: pa, b: pb, c: y.data(Float.self))
    withExtendedLifetime(ra) {}
    y.record("matmul", [a, b]) { y in
        let dy = y.gradData(Float.self)
        Parallel.forRanges(m * n, grain: 1 << 14) { r in nc_bf16_round_f32(dy + r.lowerBound, dy + r.lowerBound, r.count) }
        if a.requiresGrad {
            let (da, accumulate) = a.gradForWriting(Float.self)
            let pb = rb.pointer(Float.self), beta: Float = accumulate ? 1 : 0
            if ta {   // A (K, M): dA = op(B) · dYᵀ
                gemm(transposeA: tb, transposeB: true, m: k, n: m, k: n, a: pb, b: dy, c: da, beta: beta)
            } else {  // A (M, K): dA = dY · op(B)ᵀ
                gemm(transposeA: false, transposeB: !tb, m: m, n: k, k: n, a: dy, b: pb, c: da, beta: beta)
            }
        }
        if b.requiresGrad {
            let rx = roundedCopy(a)
            let (db, accumulate) = b.gradForWriting(Float.self)
            let px = rx.pointer(Float.self), beta: Float = accumulate ? 1 : 0
            if tb {   // B (N, K): dB = dYᵀ · op(A)
                gemm(transposeA: true, transposeB: ta, m: n, n: k, k: m, a: dy, b: px, c: db, beta: beta)
            } else {  // B (K, N): dB = op(A)ᵀ · dY
                gemm(transposeA: !ta, transposeB: false, m: k, n: n, k: m, a: px, b: dy, c: db, beta: beta)
            }
            withExtendedLifetime(rx) {}
        }
    }
    return y
}

/// A Float tensor's values rounded to bf16, in pooled memory of the same layout.
private func roundedCopy(_ t: Tensor) -> Buffer {
    let out = Buffer(byteCount: t.count * 4), src = t.data(Float.self), dst = out.pointer(Float.self)
    Parallel.forRanges(t.count, grain: 1 << 14) { r in nc_bf16_round_f32(src + r.lowerBound, dst + r.lowerBound, r.count) }
    return out
}

/// The reference: C = op(A) · op(B) with both rounded to bf16, products and sums in Double.
public func matmulBF16Reference(
    transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>
) {
    func r(_ x: Float) -> Double { Double(roundedToBF16(x)) }
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                s += r(transposeA ? a[p * m + i] : a[i * k + p]) * r(transposeB ? b[j * k + p] : b[p * n + j])
            }
            c[i * n + j] = Float(s)
        }
    }
}

/// x rounded to bf16 (nearest even), as the products round their operands.
public func roundedToBF16(_ x: Float) -> Float {
    var x = x, y: Float = 0
    nc_bf16_round_f32(&x, &y, 1)
    return y
}
