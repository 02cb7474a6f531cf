// The selective scan forward: a block kernel over ≤ 16 channels and a range of time, and
// the chunked parallel driver around it.
import Tensor

/// Per-block working set, N vectors each: the state h, this block's decay rates A, and
/// A·log2 e (decays are computed as 2^(Δ·A·log2 e), cheaper than e^(Δ·A)).
@usableFromInline
struct BlockScratch<S: TensorScalar> {
    @usableFromInline let h, a, a2: UnsafeMutablePointer<SIMD16<S>>

    @inlinable init(state n: Int) {
        h = .allocate(capacity: n)
        a = .allocate(capacity: n)
        a2 = .allocate(capacity: n)
    }

    @inlinable func free() { h.deallocate(); a.deallocate(); a2.deallocate() }

    /// Loads A for channels d0 ..< d0+w from the transposed (N, Di) table.
    @inlinable func loadDecay(_ at: UnsafePointer<S>, channels: Int, state n: Int, d0: Int, w: Int) {
        for k in 0..<n {
            a[k] = loadChannels(at + k * channels + d0, w)
            a2[k] = a[k] * S(1.4426950408889634)   // log2 e
        }
    }
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
    let h = scratch.h, a2 = scratch.a2
    for t in t0..<t1 {
        let row = (b * sh.time + t) * di + d0, srow = (b * sh.time + t) * n
        let delta = Softplus.forward(loadChannels(x.deltaRaw + row, w) + bias)
        deltaSum += delta
        let uu = loadChannels(x.u + row, w)
        let du = delta * uu
        var y = skip * uu
        for k in 0..<n {
            let hk = S.vmuladd(du, SIMD16(repeating: x.bm[srow + k]), S.vexp2Decay(delta * a2[k]) * h[k])
            h[k] = hk
            if out != nil { y = S.vmuladd(hk, SIMD16(repeating: x.cm[srow + k]), y) }
        }
        if let out { storeChannels(y * Silu.forward(loadChannels(x.z + row, w)), out + row, w) }
    }
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
