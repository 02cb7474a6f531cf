// The selective scan forward: a block kernel over ≤ 16 channels and a range of time, and
// the chunked parallel driver around it.
import Tensor

/// Per-block working set, N vectors each: the state h, this block's decay rates A, A·log2 e
/// (decays are computed as 2^(Δ·A·log2 e), cheaper than e^(Δ·A)), and one time step's decays.
@usableFromInline
struct BlockScratch<S: TensorScalar> {
    @usableFromInline let h, a, a2, decays: UnsafeMutablePointer<SIMD16<S>>

    @inlinable init(state n: Int) {
        h = .allocate(capacity: n)
        a = .allocate(capacity: n)
        a2 = .allocate(capacity: n)
        decays = .allocate(capacity: n)
    }

    @inlinable func free() { h.deallocate(); a.deallocate(); a2.deallocate(); decays.deallocate() }

    /// Loads A for channels d0 ..< d0+w from the transposed (N, Di) table.
    @inlinable func loadDecay(_ at: UnsafePointer<S>, channels: Int, state n: Int, d0: Int, w: Int) {
        for k in 0..<n {
            a[k] = loadChannels(at + k * channels + d0, w)
            a2[k] = a[k] * S(1.4426950408889634)   // log2 e
        }
    }
}

/// row[k] = exp(Δ·A_k) for the n states (a2 holds A·log2 e), four at a time: the exps are
/// independent, and issued side by side they keep the multiply-add units busy, where one
/// exp's chain of dependent multiply-adds would leave them waiting.
@inlinable @inline(__always)
func computeDecays<S: TensorScalar>(_ delta: SIMD16<S>, _ a2: UnsafePointer<SIMD16<S>>,
                                    into row: UnsafeMutablePointer<SIMD16<S>>, _ n: Int) {
    var k = 0
    while k + 4 <= n {
        let e0 = S.vexp2Decay(delta * a2[k]), e1 = S.vexp2Decay(delta * a2[k + 1])
        let e2 = S.vexp2Decay(delta * a2[k + 2]), e3 = S.vexp2Decay(delta * a2[k + 3])
        row[k] = e0; row[k + 1] = e1; row[k + 2] = e2; row[k + 3] = e3
        k += 4
    }
    while k < n { row[k] = S.vexp2Decay(delta * a2[k]); k += 1 }
}

/// One time step of the n states: next[k] = decays[k]·prev[k] + du·bm[k] (next may be prev),
/// returning y + Σ_k next[k]·cm[k], and handing each new state to `visit(k, state)`. y is
/// summed in two chains: one chain of n dependent multiply-adds would bound the loop by
/// their latency.
@inlinable @inline(__always)
func advanceStates<S: TensorScalar>(
    _ du: SIMD16<S>, bm: UnsafePointer<S>, cm: UnsafePointer<S>, decays: UnsafePointer<SIMD16<S>>,
    prev: UnsafePointer<SIMD16<S>>, next: UnsafeMutablePointer<SIMD16<S>>, _ n: Int, y: SIMD16<S>,
    visit: (Int, SIMD16<S>) -> Void = { _, _ in }
) -> SIMD16<S> {
    var y0 = y, y1 = SIMD16<S>()
    var k = 0
    while k + 2 <= n {
        let h0 = S.vmuladd(du, SIMD16(repeating: bm[k]), decays[k] * prev[k])
        let h1 = S.vmuladd(du, SIMD16(repeating: bm[k + 1]), decays[k + 1] * prev[k + 1])
        next[k] = h0; next[k + 1] = h1
        visit(k, h0); visit(k + 1, h1)
        y0 = S.vmuladd(h0, SIMD16(repeating: cm[k]), y0)
        y1 = S.vmuladd(h1, SIMD16(repeating: cm[k + 1]), y1)
        k += 2
    }
    if k < n {
        let h0 = S.vmuladd(du, SIMD16(repeating: bm[k]), decays[k] * prev[k])
        next[k] = h0
        visit(k, h0)
        y0 = S.vmuladd(h0, SIMD16(repeating: cm[k]), y0)
    }
    return y0 + y1
}

/// Scans channels d0 ..< d0+w of batch b over t0 ..< t1, starting from the state in
/// `scratch.h` and leaving the final state there. With `out`, writes out_t = y_t·silu(z_t);
/// `deltaSum` accumulates Σ_t Δ_t (the chunk's total decay is exp(A·ΣΔ)).
@inlinable @inline(__always)
func scanBlockForward<S: TensorScalar>(
    _ x: ScanInputs<S>, _ sh: ScanShape, _ scratch: BlockScratch<S>, b: Int, d0: Int, w: Int,
    t0: Int, t1: Int, out: UnsafeMutablePointer<S>?, deltaSum: inout SIMD16<S>
) {
    let di = sh.channels, n = sh.state
    let bias = loadChannels(x.dtBias + d0, w), skip = loadChannels(x.d + d0, w)
    let h = scratch.h, decays = scratch.decays
    for t in t0..<t1 {
        let row = (b * sh.time + t) * di + d0, srow = (b * sh.time + t) * n
        if t + scanPrefetchSteps < t1 { prefetchRow(x, row + scanPrefetchSteps * di, z: out != nil) }
        let delta = Softplus.forward(loadChannels(x.deltaRaw + row, w) + bias)
        deltaSum += delta
        let uu = loadChannels(x.u + row, w)
        let du = delta * uu
        computeDecays(delta, scratch.a2, into: decays, n)
        guard let out else {
            for k in 0..<n { h[k] = S.vmuladd(du, SIMD16(repeating: x.bm[srow + k]), decays[k] * h[k]) }
            continue
        }
        let y = advanceStates(du, bm: x.bm + srow, cm: x.cm + srow, decays: decays, prev: h, next: h, n, y: skip * uu)
        storeChannels(y * Silu.forward(loadChannels(x.z + row, w)), out + row, w)
    }
}

/// Time steps ahead that the scans ask for their input rows: a step of one 16-channel block
/// is a few hundred instructions, too many for the out-of-order core to reach the next
/// step's loads, and rows Di apart are past the hardware prefetchers' reach.
public let scanPrefetchSteps = 4

/// Prefetches the 16 channels at `at` of the (B, T, Di) inputs a forward step reads.
@inlinable @inline(__always)
func prefetchRow<S: TensorScalar>(_ x: ScanInputs<S>, _ at: Int, z: Bool) {
    prefetch(x.deltaRaw + at)
    prefetch(x.u + at)
    if z { prefetch(x.z + at) }
}

/// Index of state k, channel d0 in a (B, chunks+1, N, Di) boundary buffer.
@inlinable @inline(__always)
func boundaryIndex(_ sh: ScanShape, b: Int, c: Int, k: Int, d0: Int) -> Int {
    ((b * (sh.chunks + 1) + c) * sh.state + k) * sh.channels + d0
}

/// Calls body(b, d0, w) for each 16-channel block of item (b, group).
@inlinable @inline(__always)
func forEachBlock(_ sh: ScanShape, group g: Int, _ body: (Int, Int) -> Void) {
    let end = Swift.min(sh.channels, (g + 1) * scanGroupWidth)
    for d0 in stride(from: g * scanGroupWidth, to: end, by: 16) { body(d0, Swift.min(16, end - d0)) }
}

/// Runs body(b, g) for every (batch, channel group) item, spread over the workers.
@inlinable @inline(__always)
func forEachGroupItem(_ sh: ScanShape, _ body: (Int, Int) -> Void) {
    Parallel.forEach(sh.batch * sh.groups) { it in body(it / sh.groups, it % sh.groups) }
}

/// Runs body(b, g, c) for every (batch, channel group, chunk) item, spread over the workers.
@inlinable @inline(__always)
func forEachChunkItem(_ sh: ScanShape, _ body: (Int, Int, Int) -> Void) {
    let nc = sh.chunks
    Parallel.forEach(sh.batch * sh.groups * nc) { it in body(it / (nc * sh.groups), (it / nc) % sh.groups, it % nc) }
}

/// Reads channels d0 ..< d0+w of a (B, Di, N) state into h (N vectors), or zeros.
@inlinable @inline(__always)
func gatherState<S: TensorScalar>(_ state: UnsafePointer<S>?, _ sh: ScanShape, b: Int, d0: Int, w: Int,
                                  into h: UnsafeMutablePointer<SIMD16<S>>) {
    for k in 0..<sh.state {
        var v = SIMD16<S>()
        if let state { for l in 0..<w { v[l] = state[(b * sh.channels + d0 + l) * sh.state + k] } }
        h[k] = v
    }
}

@inlinable @inline(__always)
func scatterState<S: TensorScalar>(_ h: UnsafePointer<SIMD16<S>>, _ sh: ScanShape, b: Int, d0: Int, w: Int,
                                   into state: UnsafeMutablePointer<S>) {
    for k in 0..<sh.state { for l in 0..<w { state[(b * sh.channels + d0 + l) * sh.state + k] = h[k][l] } }
}

/// out (B, T, Di) = y · silu(z) of the selective scan.
///
/// - initialState: (B, Di, N) state before t = 0 (zeros when nil), for decoding and chunked
///   prefill. No gradient flows into it.
/// - finalState: receives the (B, Di, N) state after the last step.
/// - boundaryStates: receives the states at every chunk boundary, (B, ⌈T/L⌉+1, N, Di), which
///   `selectiveScanBackward` needs; nil when no backward will follow.
@inlinable
public func selectiveScanForward<S: TensorScalar>(
    out: UnsafeMutablePointer<S>, inputs x: ScanInputs<S>, shape sh: ScanShape,
    initialState: UnsafePointer<S>? = nil, finalState: UnsafeMutablePointer<S>? = nil,
    boundaryStates: UnsafeMutablePointer<S>? = nil, strategy: ScanStrategy = .automatic
) {
    let at = decayRatesTransposed(x.aLog, channels: sh.channels, state: sh.state)
    defer { at.deallocate() }
    let nc = sh.chunks
    if !strategy.timeParallel(sh) {
        // Chunks outer, the group's blocks inner: a chunk's rows (L · 64 channels) stay in
        // cache while its 4 blocks are scanned, instead of streaming all of T four times.
        forEachGroupItem(sh) { b, g in
            var blocks: [(d0: Int, w: Int, scratch: BlockScratch<S>)] = []
            forEachBlock(sh, group: g) { d0, w in
                let scratch = BlockScratch<S>(state: sh.state)
                scratch.loadDecay(at, channels: sh.channels, state: sh.state, d0: d0, w: w)
                gatherState(initialState, sh, b: b, d0: d0, w: w, into: scratch.h)
                blocks.append((d0, w, scratch))
            }
            defer { for blk in blocks { blk.scratch.free() } }
            var unused = SIMD16<S>()
            for c in 0..<nc {
                for (d0, w, scratch) in blocks {
                    if let boundaryStates { saveBoundary(scratch.h, boundaryStates, sh, b: b, c: c, d0: d0, w: w) }
                    scanBlockForward(x, sh, scratch, b: b, d0: d0, w: w, t0: c * sh.chunk,
                                     t1: Swift.min(sh.time, (c + 1) * sh.chunk), out: out, deltaSum: &unused)
                }
            }
            for (d0, w, scratch) in blocks {
                if let boundaryStates { saveBoundary(scratch.h, boundaryStates, sh, b: b, c: nc, d0: d0, w: w) }
                if let finalState { scatterState(scratch.h, sh, b: b, d0: d0, w: w, into: finalState) }
            }
        }
        return
    }
    // Time-parallel: 1) each chunk from zero, keeping its end state and total decay;
    // 2) carry the true boundary states across chunks; 3) rescan each chunk from its start.
    let boundary = boundaryStates ?? .allocate(capacity: sh.boundaryCount)
    let localEnd = UnsafeMutablePointer<S>.allocate(capacity: sh.boundaryCount)
    let decay = UnsafeMutablePointer<S>.allocate(capacity: sh.boundaryCount)
    defer {
        if boundaryStates == nil { boundary.deallocate() }
        localEnd.deallocate(); decay.deallocate()
    }
    forEachChunkItem(sh) { b, g, c in
        let scratch = BlockScratch<S>(state: sh.state)
        defer { scratch.free() }
        forEachBlock(sh, group: g) { d0, w in
            scratch.loadDecay(at, channels: sh.channels, state: sh.state, d0: d0, w: w)
            for k in 0..<sh.state { scratch.h[k] = SIMD16() }
            var sum = SIMD16<S>()
            scanBlockForward(x, sh, scratch, b: b, d0: d0, w: w, t0: c * sh.chunk,
                             t1: Swift.min(sh.time, (c + 1) * sh.chunk), out: nil, deltaSum: &sum)
            saveBoundary(scratch.h, localEnd, sh, b: b, c: c, d0: d0, w: w)
            for k in 0..<sh.state {
                storeChannels(S.vexp2Decay(sum * scratch.a2[k]), decay + boundaryIndex(sh, b: b, c: c, k: k, d0: d0), w)
            }
        }
    }
    forEachGroupItem(sh) { b, g in
        let scratch = BlockScratch<S>(state: sh.state)
        defer { scratch.free() }
        forEachBlock(sh, group: g) { d0, w in
            gatherState(initialState, sh, b: b, d0: d0, w: w, into: scratch.h)
            saveBoundary(scratch.h, boundary, sh, b: b, c: 0, d0: d0, w: w)
            for c in 0..<nc {
                for k in 0..<sh.state {
                    let i = boundaryIndex(sh, b: b, c: c, k: k, d0: d0)
                    scratch.h[k] = (loadChannels(decay + i, w) * scratch.h[k]) + loadChannels(localEnd + i, w)
                }
                saveBoundary(scratch.h, boundary, sh, b: b, c: c + 1, d0: d0, w: w)
            }
            if let finalState { scatterState(scratch.h, sh, b: b, d0: d0, w: w, into: finalState) }
        }
    }
    forEachChunkItem(sh) { b, g, c in
        let scratch = BlockScratch<S>(state: sh.state)
        defer { scratch.free() }
        forEachBlock(sh, group: g) { d0, w in
            scratch.loadDecay(at, channels: sh.channels, state: sh.state, d0: d0, w: w)
            for k in 0..<sh.state { scratch.h[k] = loadChannels(boundary + boundaryIndex(sh, b: b, c: c, k: k, d0: d0), w) }
            var unused = SIMD16<S>()
            scanBlockForward(x, sh, scratch, b: b, d0: d0, w: w, t0: c * sh.chunk,
                             t1: Swift.min(sh.time, (c + 1) * sh.chunk), out: out, deltaSum: &unused)
        }
    }
}

@inlinable @inline(__always)
func saveBoundary<S: TensorScalar>(_ h: UnsafePointer<SIMD16<S>>, _ buf: UnsafeMutablePointer<S>, _ sh: ScanShape,
                                   b: Int, c: Int, d0: Int, w: Int) {
    for k in 0..<sh.state { storeChannels(h[k], buf + boundaryIndex(sh, b: b, c: c, k: k, d0: d0), w) }
}
