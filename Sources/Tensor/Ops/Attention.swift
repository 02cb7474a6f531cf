// Causal self-attention with grouped KV heads, fused per (batch, head):
//   y_i = Σ_{j ≤ i} softmax_j(scale · q_i·k_j) v_j,   query head h reads kv head h / (H/KV).
//
// Queries are processed in blocks of `attentionRowBlock(for:)` rows: a block's scores against the
// keys it can see are one sgemm, the masked softmax is a SIMD pass, and the weighted sum is a
// second sgemm. Only the row log-sum-exp (B, H, Tq) is kept for backward, which recomputes
// the probabilities block by block (as FlashAttention does), so no (B, H, T, T) tensor exists.
//
// Keys may be longer than queries (decoding with a KV cache): with Tk keys and Tq queries,
// query i sits at absolute position Tk - Tq + i and sees keys 0 ... Tk - Tq + i.
import Foundation

/// Rows of queries per score block, by the kernel of the products: large enough for the
/// products to run near their peak, small enough that the wasted upper triangle of each
/// block stays a small share at T = 512..2048. 128 for sgemm and the vector kernels; 256 for
/// AMX, whose products are cheap next to packing the keys and values again for every block
/// (on a 16-core Xeon at d12's shape, `bench kernels --tables attention`: forward 1.3x and
/// backward 1.1x faster than with 128). The block decides which keys a product sums over
/// (the masked ones add exact zeros) and how a key's gradient is split into shares, so the
/// bits depend on it, never on the thread count.
public func attentionRowBlock(for bf16: BF16Kernel?) -> Int {
    bf16 == .amx ? 256 : 128
}

/// Shapes and strides of one attention call.
public struct AttentionShape: Sendable {
    public var batch: Int, queries: Int, keys: Int, heads: Int, kvHeads: Int, headDim: Int
    /// Elements between consecutive batches of k and v (a KV cache may hold more rows than
    /// `keys`); defaults to keys · kvHeads · headDim.
    public var kvBatchStride: Int
    public var scale: Double

    public init(batch: Int, queries: Int, keys: Int? = nil, heads: Int, kvHeads: Int, headDim: Int,
                kvBatchStride: Int? = nil, scale: Double? = nil) {
        precondition(kvHeads > 0 && heads % kvHeads == 0, "n_kv_head \(kvHeads) must divide n_head \(heads)")
        self.batch = batch; self.queries = queries; self.keys = keys ?? queries
        self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
        precondition(self.keys >= queries, "attention needs at least as many keys as queries")
        self.kvBatchStride = kvBatchStride ?? (keys ?? queries) * kvHeads * headDim
        self.scale = scale ?? 1 / Double(headDim).squareRoot()
    }

    @inlinable var qRow: Int { heads * headDim }
    @inlinable var kvRow: Int { kvHeads * headDim }
    /// Absolute position of query 0: keys - queries.
    @inlinable var shift: Int { keys - queries }
}

/// In place over row[0..<total]: softmax of row[0..<visible], zeros after. Returns the
/// log-sum-exp of the visible part.
@inlinable @inline(__always)
func maskedSoftmaxRow<S: TensorScalar>(_ row: UnsafeMutablePointer<S>, visible: Int, total: Int) -> S {
    let m = vectorMax(row, visible)
    var sv = SIMD16<S>()
    var j = 0
    let mvec = SIMD16<S>(repeating: m)
    while j + 16 <= visible {
        let e = S.vexp(load(row + j) - mvec)
        store(e, row + j); sv += e; j += 16
    }
    if j < visible {
        let n = visible - j
        var e = S.vexp(loadPartial(row + j, n) - mvec)
        for l in n..<16 { e[l] = 0 }
        storePartial(e, row + j, n); sv += e
    }
    let sum = hsum(sv)
    let inv = 1 / sum
    mapRange(0..<visible, row, row) { $0 * inv }
    (row + visible).update(repeating: 0, count: total - visible)
    return m + S.log(sum)
}

/// The bf16 kernel for attention's products (QKᵀ, PV and their backward) under the current
/// `Precision`, or nil for fp32: Float tensors in bf16 precision, with at least
/// `bf16FewRows` queries (training and prefill). A decoding step keeps fp32 products over
/// its fp32 cache: packing every cached key for each new token would cost more than the
/// product it feeds.
public func attentionBF16Kernel<S: TensorScalar>(_: S.Type, queries: Int) -> BF16Kernel? {
    S.dtype == .float32 && Precision.matmul == .bfloat16 && queries >= bf16FewRows ? Precision.kernel : nil
}

/// One product inside attention, on the calling worker: sgemm, or with `bf16` the bf16
/// product of the operands rounded as they are packed.
@inlinable @inline(__always)
func attentionGemm<S: TensorScalar>(
    _ bf16: BF16Kernel?, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: S,
    a: UnsafePointer<S>, lda: Int, b: UnsafePointer<S>, ldb: Int, beta: S, c: UnsafeMutablePointer<S>, ldc: Int
) {
    if let bf16, S.dtype == .float32 {
        bf16Gemm(kernel: bf16, transposeA: transposeA, m: m, n: n, k: k,
                 a: UnsafeRawPointer(a).assumingMemoryBound(to: Float.self), lda: lda,
                 b: .floats(UnsafeRawPointer(b).assumingMemoryBound(to: Float.self), ld: ldb, transposed: transposeB),
                 c: UnsafeMutableRawPointer(c).assumingMemoryBound(to: Float.self), ldc: ldc,
                 alpha: Float(alpha), beta: Float(beta), serial: true)
    } else {
        S.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
               b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
}

/// y (B, Tq, H, hd) = causal attention of q (B, Tq, H, hd) over k, v (B, Tk, KV, hd);
/// lse (B, H, Tq) receives each row's log-sum-exp of the scaled scores, for backward.
/// `bf16`: the kernel for its products (`attentionBF16Kernel`), nil for fp32; `rowBlock`:
/// queries per block, if not the kernel's own (`attentionRowBlock(for:)`); backward must
/// be given the same.
///
/// Work items are (batch, head, block of queries): a block's rows are computed whole by one
/// worker, so the cut changes no bit. Later blocks see more keys; they are taken first.
@inlinable
public func attentionForward<S: TensorScalar>(
    out y: UnsafeMutablePointer<S>, lse: UnsafeMutablePointer<S>,
    q: UnsafePointer<S>, k: UnsafePointer<S>, v: UnsafePointer<S>, shape: AttentionShape, bf16: BF16Kernel? = nil,
    rowBlock: Int? = nil
) {
    let sh = shape, hd = sh.headDim, group = sh.heads / sh.kvHeads
    let block = Swift.max(1, Swift.min(rowBlock ?? attentionRowBlock(for: bf16), sh.queries))
    let blocks = (sh.queries + block - 1) / block, pairs = sh.batch * sh.heads
    Parallel.forEach(pairs * blocks) { index in
        let item = index % pairs, r0 = (blocks - 1 - index / pairs) * block
        let b = item / sh.heads, h = item % sh.heads, g = h / group
        let qb = q + b * sh.queries * sh.qRow + h * hd, yb = y + b * sh.queries * sh.qRow + h * hd
        let kb = k + b * sh.kvBatchStride + g * hd, vb = v + b * sh.kvBatchStride + g * hd
        let rows = Swift.min(block, sh.queries - r0), cols = sh.shift + r0 + rows
        withScratch(S.self, count: rows * cols) { scores in
            attentionGemm(bf16, transposeA: false, transposeB: true, m: rows, n: cols, k: hd, alpha: S(sh.scale),
                          a: qb + r0 * sh.qRow, lda: sh.qRow, b: kb, ldb: sh.kvRow, beta: 0, c: scores, ldc: cols)
            for i in 0..<rows {
                lse[item * sh.queries + r0 + i] = maskedSoftmaxRow(scores + i * cols, visible: sh.shift + r0 + i + 1, total: cols)
            }
            attentionGemm(bf16, transposeA: false, transposeB: false, m: rows, n: hd, k: cols, alpha: 1,
                          a: scores, lda: cols, b: vb, ldb: sh.kvRow, beta: 0, c: yb + r0 * sh.qRow, ldc: sh.qRow)
        }
    }
}

/// Adds into dq, dk, dv the gradients of `attentionForward` given dy. y and lse are the
/// forward's outputs.
///
/// Work items are (batch, kv head, block of queries), heaviest (latest) blocks first. An item
/// owns the dq rows of its block for the query heads that read its kv head; its shares of dk
/// and dv (the keys its block sees, summed over those heads) go to a buffer of its own, and
/// a second pass adds each key's shares into dk and dv block by block in order. No two workers
/// write the same value and every sum has a fixed order: the bits do not depend on the
/// thread count.
@inlinable
public func attentionBackward<S: TensorScalar>(
    dq: UnsafeMutablePointer<S>, dk: UnsafeMutablePointer<S>, dv: UnsafeMutablePointer<S>,
    dout dy: UnsafePointer<S>, q: UnsafePointer<S>, k: UnsafePointer<S>, v: UnsafePointer<S>,
    out y: UnsafePointer<S>, lse: UnsafePointer<S>, shape: AttentionShape, bf16: BF16Kernel? = nil,
    rowBlock: Int? = nil
) {
    let sh = shape, hd = sh.headDim, group = sh.heads / sh.kvHeads
    let block = Swift.max(1, Swift.min(rowBlock ?? attentionRowBlock(for: bf16), sh.queries))
    let scale = S(sh.scale)
    let blocks = (sh.queries + block - 1) / block, pairs = sh.batch * sh.kvHeads
    // Block r's shares cover keys 0 ..< cols(r); they sit at offset(r) within a (batch, kv
    // head)'s part of the buffers, each row hd wide.
    @inline(__always) func cols(_ r: Int) -> Int { sh.shift + Swift.min(sh.queries, (r + 1) * block) }
    var offsets = [Int](repeating: 0, count: blocks + 1)
    for r in 0..<blocks { offsets[r + 1] = offsets[r] + cols(r) * hd }
    let perPair = offsets[blocks]
    withScratch(S.self, count: 2 * pairs * perPair) { shares in
        let shareK = shares, shareV = shares + pairs * perPair
        offsets.withUnsafeBufferPointer { offsets in
            Parallel.forEach(pairs * blocks) { index in
                let item = index % pairs, r = blocks - 1 - index / pairs, r0 = r * block
                let b = item / sh.kvHeads, g = item % sh.kvHeads
                let kb = k + b * sh.kvBatchStride + g * hd, vb = v + b * sh.kvBatchStride + g * hd
                let rows = Swift.min(block, sh.queries - r0), cols = sh.shift + r0 + rows
                let myK = shareK + item * perPair + offsets[r], myV = shareV + item * perPair + offsets[r]
                withScratch(S.self, count: 2 * rows * cols) { scratch in
                    let p = scratch, dp = scratch + rows * cols
                    for h in (g * group)..<((g + 1) * group) {
                        let off = b * sh.queries * sh.qRow + h * hd
                        let qb = q + off, yb = y + off, dyb = dy + off, dqb = dq + off
                        let lseb = lse + (b * sh.heads + h) * sh.queries
                        // P = exp(scale · Q Kᵀ - lse), masked.
                        attentionGemm(bf16, transposeA: false, transposeB: true, m: rows, n: cols, k: hd, alpha: scale,
                                      a: qb + r0 * sh.qRow, lda: sh.qRow, b: kb, ldb: sh.kvRow, beta: 0, c: p, ldc: cols)
                        // dP = dY Vᵀ.
                        attentionGemm(bf16, transposeA: false, transposeB: true, m: rows, n: cols, k: hd, alpha: 1,
                                      a: dyb + r0 * sh.qRow, lda: sh.qRow, b: vb, ldb: sh.kvRow, beta: 0, c: dp, ldc: cols)
                        for i in 0..<rows {
                            let visible = sh.shift + r0 + i + 1
                            let pr = p + i * cols, dpr = dp + i * cols
                            let l = SIMD16<S>(repeating: lseb[r0 + i])
                            mapRange(0..<visible, pr, pr) { S.vexp($0 - l) }
                            (pr + visible).update(repeating: 0, count: cols - visible)
                            // dS = P ⊙ (dP - D) · scale with D = dY·Y (= Σ_j P dP).
                            let d = SIMD16<S>(repeating: vectorDot(dyb + (r0 + i) * sh.qRow, yb + (r0 + i) * sh.qRow, hd))
                            mapRange2(0..<visible, pr, dpr, into: dpr) { pv, dpv in pv * (dpv - d) * scale }
                            (dpr + visible).update(repeating: 0, count: cols - visible)
                        }
                        // dQ += dS K; this block's shares: dV = Σ_h Pᵀ dY, dK = Σ_h dSᵀ Q.
                        let first: S = h == g * group ? 0 : 1
                        attentionGemm(bf16, transposeA: false, transposeB: false, m: rows, n: hd, k: cols, alpha: 1,
                                      a: dp, lda: cols, b: kb, ldb: sh.kvRow, beta: 1, c: dqb + r0 * sh.qRow, ldc: sh.qRow)
                        attentionGemm(bf16, transposeA: true, transposeB: false, m: cols, n: hd, k: rows, alpha: 1,
                                      a: p, lda: cols, b: dyb + r0 * sh.qRow, ldb: sh.qRow, beta: first, c: myV, ldc: hd)
                        attentionGemm(bf16, transposeA: true, transposeB: false, m: cols, n: hd, k: rows, alpha: 1,
                                      a: dp, lda: cols, b: qb + r0 * sh.qRow, ldb: sh.qRow, beta: first, c: myK, ldc: hd)
                    }
                }
            }
            // dk, dv += each block's shares, blocks in order, over (batch, kv head, keys in 64s).
            let keyChunks = (sh.keys + 63) / 64
            Parallel.forEach(pairs * keyChunks) { index in
                let item = index / keyChunks, j0 = (index % keyChunks) * 64, j1 = Swift.min(sh.keys, j0 + 64)
                let b = item / sh.kvHeads, g = item % sh.kvHeads
                let dkb = dk + b * sh.kvBatchStride + g * hd, dvb = dv + b * sh.kvBatchStride + g * hd
                for r in 0..<blocks where cols(r) > j0 {
                    let upper = Swift.min(j1, cols(r))
                    let sk = shareK + item * perPair + offsets[r], sv = shareV + item * perPair + offsets[r]
                    for j in j0..<upper {
                        addRange(dkb + j * sh.kvRow, sk + j * hd, hd)
                        addRange(dvb + j * sh.kvRow, sv + j * hd, hd)
                    }
                }
            }
        }
    }
}

/// dst[0..<n] += src[0..<n].
@inlinable @inline(__always)
func addRange<S: TensorScalar>(_ dst: UnsafeMutablePointer<S>, _ src: UnsafePointer<S>, _ n: Int) {
    var j = 0
    while j + 16 <= n { store(load(dst + j) + load(src + j), dst + j); j += 16 }
    while j < n { dst[j] += src[j]; j += 1 }
}

/// The reference: attention by plain loops in Double, one query at a time, with a full
/// softmax over the visible keys. Same layouts as `attentionForward`.
@inlinable
public func attentionForwardReference<S: TensorScalar>(
    out y: UnsafeMutablePointer<S>, q: UnsafePointer<S>, k: UnsafePointer<S>, v: UnsafePointer<S>,
    shape sh: AttentionShape
) {
    let hd = sh.headDim, group = sh.heads / sh.kvHeads
    var w = [Double](repeating: 0, count: sh.keys)
    for b in 0..<sh.batch {
        for h in 0..<sh.heads {
            let g = h / group
            for i in 0..<sh.queries {
                let qi = q + (b * sh.queries + i) * sh.qRow + h * hd
                let visible = sh.shift + i + 1
                var m = -Double.infinity
                for j in 0..<visible {
                    let kj = k + b * sh.kvBatchStride + j * sh.kvRow + g * hd
                    var s = 0.0
                    for c in 0..<hd { s += Double(qi[c]) * Double(kj[c]) }
                    w[j] = s * sh.scale
                    m = max(m, w[j])
                }
                var total = 0.0
                for j in 0..<visible { w[j] = Foundation.exp(w[j] - m); total += w[j] }
                let yi = y + (b * sh.queries + i) * sh.qRow + h * hd
                for c in 0..<hd {
                    var acc = 0.0
                    for j in 0..<visible { acc += w[j] * Double(v[b * sh.kvBatchStride + j * sh.kvRow + g * hd + c]) }
                    yi[c] = S(acc / total)
                }
            }
        }
    }
}

/// Causal self-attention: q (B, T, H, hd), k and v (B, T, KV, hd) with KV dividing H;
/// returns (B, T, H, hd). Scores are scaled by 1/sqrt(hd). Saves only the per-row
/// log-sum-exp (B, H, T) for backward.
public func causalAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> Tensor {
    precondition(q.rank == 4 && k.rank == 4 && v.shape == k.shape,
                 "attention expects q (B,T,H,hd), k = v (B,T,KV,hd); got \(q.shape), \(k.shape), \(v.shape)")
    precondition(q.shape[0] == k.shape[0] && q.shape[1] == k.shape[1] && q.shape[3] == k.shape[3],
                 "attention: q \(q.shape) and k \(k.shape) differ in B, T or hd")
    let shape = AttentionShape(batch: q.shape[0], queries: q.shape[1], heads: q.shape[2],
                               kvHeads: k.shape[2], headDim: q.shape[3])
    switch q.dtype {
    case .float32: return attentionOp(q, k, v, shape, Float.self)
    case .float64: return attentionOp(q, k, v, shape, Double.self)
    }
}

func attentionOp<S: TensorScalar>(_ q: Tensor, _ k: Tensor, _ v: Tensor, _ shape: AttentionShape, _: S.Type) -> Tensor {
    let y = Tensor(uninitializedShape: q.shape, dtype: q.dtype)
    let lse = Tensor(uninitializedShape: [shape.batch, shape.heads, shape.queries], dtype: q.dtype)
    let bf16 = attentionBF16Kernel(S.self, queries: shape.queries)
    attentionForward(out: y.data(S.self), lse: lse.data(S.self), q: q.data(S.self), k: k.data(S.self),
                     v: v.data(S.self), shape: shape, bf16: bf16)
    y.record("attention", [q, k, v]) { y in
        // The kernel adds into all three; gradients nobody wants land in scratch.
        attentionBackward(dq: q.gradData(S.self), dk: k.gradData(S.self), dv: v.gradData(S.self),
                          dout: y.gradData(S.self), q: q.data(S.self), k: k.data(S.self), v: v.data(S.self),
                          out: y.data(S.self), lse: lse.data(S.self), shape: shape, bf16: bf16)
    }
    return y
}
