// The selective scan backward: the reverse scan, chunk by chunk. Inside a chunk the forward
// is recomputed from the saved boundary state (states, decays, Δ, dy kept for the chunk
// only; dz and dCm computed on the way), then walked backwards carrying dh = ∂loss/∂h:
//   g_t   = dh + dy_t Cm_t                     (dh: the part of ∂/∂h_t from later steps)
//   dCm_t += Σ_d dy_t h_t      dBm_t += Σ_d g_t Δ_t u_t      dA += g_t Δ_t a_t h_{t-1}
//   dΔ_t  = Σ_n g_t (A a_t h_{t-1} + Bm_t u_t)                 du_t += Σ_n g_t Δ_t Bm_t
//   dh    = g_t a_t,   a_t = exp(Δ_t A)
// Reductions over channels (dBm, dCm) keep one partial per 64-channel group, and reductions
// over time and batch (dA_log, D, dt_bias) one partial per (batch, time item); partials are
// added in a fixed order, so the result does not depend on the thread count.
import Tensor

/// The working set of one item: recompute buffers for one block and chunk, the carried
/// dh and the dA sums of each block of the group, and lane-wise dBm, dCm sums over the
/// group's blocks (one horizontal sum per group instead of per block).
@usableFromInline
struct ChunkScratch<S: TensorScalar> {
    @usableFromInline let hs, decays: UnsafeMutablePointer<SIMD16<S>>      // (L, N)
    @usableFromInline let deltas, sigmas, dys: UnsafeMutablePointer<SIMD16<S>>   // (L)
    @usableFromInline let hStart: UnsafeMutablePointer<SIMD16<S>>         // (N)
    @usableFromInline let dh, dA: UnsafeMutablePointer<SIMD16<S>>          // (blocks per group, N)
    @usableFromInline let laneB, laneC: UnsafeMutablePointer<SIMD16<S>>    // (L, N)

    @inlinable init(_ sh: ScanShape) {
        let ln = sh.chunk * sh.state, gn = scanGroupWidth / 16 * sh.state
        hs = .allocate(capacity: ln); decays = .allocate(capacity: ln)
        deltas = .allocate(capacity: sh.chunk); sigmas = .allocate(capacity: sh.chunk); dys = .allocate(capacity: sh.chunk)
        hStart = .allocate(capacity: sh.state)
        dh = .allocate(capacity: gn); dA = .allocate(capacity: gn)
        dh.initialize(repeating: SIMD16(), count: gn); dA.initialize(repeating: SIMD16(), count: gn)
        laneB = .allocate(capacity: ln); laneC = .allocate(capacity: ln)
        laneB.initialize(repeating: SIMD16(), count: ln); laneC.initialize(repeating: SIMD16(), count: ln)
    }

    @inlinable func free() {
        for p in [hs, decays, deltas, sigmas, dys, hStart, dh, dA, laneB, laneC] { p.deallocate() }
    }
}

/// Where the reductions land: partials to be summed in order after all items finish.
@usableFromInline
struct ScanPartials<S: TensorScalar>: @unchecked Sendable {
    @usableFromInline let timeItems: Int
    @usableFromInline let bm, cm: UnsafeMutablePointer<S>          // (groups, B, T, N)
    @usableFromInline let aLog: UnsafeMutablePointer<S>            // (B · timeItems, N, Di)
    @usableFromInline let d, bias: UnsafeMutablePointer<S>         // (B · timeItems, Di)

    /// All five, in one block of pooled memory (the same sizes every train step).
    @usableFromInline let storage: Buffer

    @inlinable init(_ sh: ScanShape, timeItems: Int) {
        self.timeItems = timeItems
        let bc = sh.groups * sh.batch * sh.time * sh.state, items = sh.batch * timeItems
        let total = 2 * bc + items * sh.state * sh.channels + 2 * items * sh.channels
        storage = Buffer(byteCount: Swift.max(total, 1) * MemoryLayout<S>.stride)
        let base = storage.raw.assumingMemoryBound(to: S.self)
        base.initialize(repeating: 0, count: total)
        bm = base; cm = bm + bc
        aLog = cm + bc
        d = aLog + items * sh.state * sh.channels; bias = d + items * sh.channels
    }

    @inlinable func free() { withExtendedLifetime(storage) {} }
}

/// Backward of channels d0 ..< d0+w (block `bi` of its group) of batch b over chunk c.
/// `s.hStart` holds the state before the chunk; the block's row of `s.dh` the gradient
/// carried in from after it, updated to the carry into the previous chunk. Per-element
/// gradients go straight into `grad`, dA into the block's row of `s.dA`, dBm and dCm
/// lane-wise into `s.laneB`, `s.laneC`, and D, dt_bias into partial row `item`.
@inlinable @inline(__always)
func scanBlockBackward<S: TensorScalar>(
    _ x: ScanInputs<S>, _ grad: ScanGradients<S>, _ p: ScanPartials<S>, dout: UnsafePointer<S>,
    _ sh: ScanShape, _ s: ChunkScratch<S>, _ blk: BlockScratch<S>,
    b: Int, bi: Int, d0: Int, w: Int, c: Int, item: Int
) {
    let di = sh.channels, n = sh.state
    let t0 = c * sh.chunk, t1 = Swift.min(sh.time, t0 + sh.chunk)
    let bias = loadChannels(x.dtBias + d0, w), skip = loadChannels(x.d + d0, w)
    let dh = s.dh + bi * n, dA = s.dA + bi * n
    // Recompute the chunk's forward, and with it everything that does not need ∂/∂h: dy_t
    // (into s.dys), dz and the lane-wise dCm_t = Σ_d dy_t h_t. These memory-bound updates
    // ride along with the exps, which keep the multiply-add units busy, and leave the walk
    // back fewer loads and stores.
    var prev = s.hStart   // the state before step j: hStart, then row j-1 of hs
    for t in t0..<t1 {
        let j = t - t0, row = (b * sh.time + t) * di + d0, srow = (b * sh.time + t) * n
        if t + scanPrefetchSteps < t1 {
            let ahead = row + scanPrefetchSteps * di
            prefetchRow(x, ahead, z: true)
            prefetch(dout + ahead)
            prefetch(grad.z + ahead)
        }
        let (delta, sigma) = Softplus.forwardAndDerivative(loadChannels(x.deltaRaw + row, w) + bias)
        s.deltas[j] = delta
        s.sigmas[j] = sigma
        let uu = loadChannels(x.u + row, w), du = delta * uu
        let zz = loadChannels(x.z + row, w), sz = sigmoid(zz), go = loadChannels(dout + row, w)
        let dy = go * zz * sz
        s.dys[j] = dy
        let hrow = s.hs + j * n, arow = s.decays + j * n, lc = s.laneC + j * n
        computeDecays(delta, blk.a2, into: arow, n)
        let y = advanceStates(du, bm: x.bm + srow, cm: x.cm + srow, decays: arow, prev: prev, next: hrow, n,
                              y: skip * uu) { k, h in lc[k] = S.vmuladd(dy, h, lc[k]) }
        addChannels(go * y * sz * (1 + zz * (1 - sz)), grad.z + row, w)
        prev = hrow
    }
    // Walk back.
    var dD = SIMD16<S>(), dBias = SIMD16<S>()
    for t in stride(from: t1 - 1, through: t0, by: -1) {
        let j = t - t0, row = (b * sh.time + t) * di + d0, srow = (b * sh.time + t) * n
        if t - scanPrefetchSteps >= t0 {
            let ahead = row - scanPrefetchSteps * di
            prefetch(x.u + ahead)
            prefetch(grad.deltaRaw + ahead)
            prefetch(grad.u + ahead)
        }
        let uu = loadChannels(x.u + row, w), delta = s.deltas[j], dy = s.dys[j]
        dD = S.vmuladd(dy, uu, dD)
        // With q_k = g_k·a_k·h_{t-1,k} and sB = Σ_k g_k·Bm_k:  dΔ = Σ_k A_k q_k + u·sB and
        // du = dy·D + Δ·sB, so the loop over states carries two sums instead of two per-state
        // products in each.
        var sB = SIMD16<S>(), sAq = SIMD16<S>()
        let arow = s.decays + j * n, hprev = j > 0 ? s.hs + (j - 1) * n : s.hStart
        let lb = s.laneB + j * n
        let du0 = delta * uu
        for k in 0..<n {
            let g = S.vmuladd(dy, SIMD16(repeating: x.cm[srow + k]), dh[k])
            let q = g * (arow[k] * hprev[k])
            dA[k] = S.vmuladd(q, delta, dA[k])
            sAq = S.vmuladd(q, blk.a[k], sAq)
            sB = S.vmuladd(g, SIMD16(repeating: x.bm[srow + k]), sB)
            lb[k] = S.vmuladd(g, du0, lb[k])
            dh[k] = g * arow[k]
        }
        let ddelta = S.vmuladd(uu, sB, sAq), du = S.vmuladd(delta, sB, dy * skip)
        let ddr = ddelta * s.sigmas[j]
        addChannels(ddr, grad.deltaRaw + row, w)
        dBias += ddr
        addChannels(du, grad.u + row, w)
    }
    addChannels(dD, p.d + item * di + d0, w)
    addChannels(dBias, p.bias + item * di + d0, w)
}

/// Runs chunk c's backward for every block of group g (the blocks' dh rows carry across
/// calls), then moves the lane-wise dBm, dCm sums into the group's partial rows.
@inlinable @inline(__always)
func groupChunkBackward<S: TensorScalar>(
    _ x: ScanInputs<S>, _ grad: ScanGradients<S>, _ p: ScanPartials<S>, dout: UnsafePointer<S>,
    _ sh: ScanShape, _ s: ChunkScratch<S>, _ blk: BlockScratch<S>, at: UnsafePointer<S>,
    boundary: UnsafePointer<S>, b: Int, g: Int, c: Int, item: Int
) {
    var bi = 0
    forEachBlock(sh, group: g) { d0, w in
        blk.loadDecay(at, channels: sh.channels, state: sh.state, d0: d0, w: w)
        for k in 0..<sh.state { s.hStart[k] = loadChannels(boundary + boundaryIndex(sh, b: b, c: c, k: k, d0: d0), w) }
        scanBlockBackward(x, grad, p, dout: dout, sh, s, blk, b: b, bi: bi, d0: d0, w: w, c: c, item: item)
        bi += 1
    }
    let n = sh.state, t0 = c * sh.chunk, t1 = Swift.min(sh.time, t0 + sh.chunk)
    let base = ((g * sh.batch + b) * sh.time) * n
    for t in t0..<t1 {
        let j = t - t0
        for k in 0..<n {
            p.bm[base + t * n + k] += hsum(s.laneB[j * n + k])
            p.cm[base + t * n + k] += hsum(s.laneC[j * n + k])
            s.laneB[j * n + k] = SIMD16()
            s.laneC[j * n + k] = SIMD16()
        }
    }
}

/// Adds each block's dA sums of group g into partial row `item`.
@inlinable @inline(__always)
func flushDecayGradients<S: TensorScalar>(_ s: ChunkScratch<S>, _ p: ScanPartials<S>, _ sh: ScanShape, g: Int, item: Int) {
    var bi = 0
    forEachBlock(sh, group: g) { d0, w in
        for k in 0..<sh.state {
            addChannels(s.dA[bi * sh.state + k], p.aLog + (item * sh.state + k) * sh.channels + d0, w)
            s.dA[bi * sh.state + k] = SIMD16()
        }
        bi += 1
    }
}

/// Adds into `grads` the gradients of `selectiveScanForward` (with a zero initial state)
/// given dout (B, T, Di). `boundaryStates` are the forward's saved chunk-boundary states;
/// `strategy` must match the forward's.
@inlinable
public func selectiveScanBackward<S: TensorScalar>(
    grads: ScanGradients<S>, dout: UnsafePointer<S>, inputs x: ScanInputs<S>, shape sh: ScanShape,
    boundaryStates: UnsafePointer<S>, strategy: ScanStrategy = .automatic
) {
    let at = decayRatesTransposed(x.aLog, channels: sh.channels, state: sh.state)
    defer { at.deallocate() }
    let nc = sh.chunks, timeParallel = strategy.timeParallel(sh)
    let parts = ScanPartials<S>(sh, timeItems: timeParallel ? nc : 1)
    defer { parts.free() }

    if !timeParallel {
        forEachGroupItem(sh) { b, g in
            let s = ChunkScratch<S>(sh), blk = BlockScratch<S>(state: sh.state)
            defer { s.free(); blk.free() }
            for c in stride(from: nc - 1, through: 0, by: -1) {
                groupChunkBackward(x, grads, parts, dout: dout, sh, s, blk, at: at, boundary: boundaryStates,
                                   b: b, g: g, c: c, item: b)
            }
            flushDecayGradients(s, parts, sh, g: g, item: b)
        }
    } else {
        // 1) per chunk, the carry it sends back from a zero carry-in, and its total decay;
        // 2) the true carry-in of every chunk; 3) each chunk's backward from its carry-in.
        let local = UnsafeMutablePointer<S>.allocate(capacity: sh.boundaryCount)
        let decay = UnsafeMutablePointer<S>.allocate(capacity: sh.boundaryCount)
        let carryIn = UnsafeMutablePointer<S>.allocate(capacity: sh.boundaryCount)
        defer { local.deallocate(); decay.deallocate(); carryIn.deallocate() }
        forEachChunkItem(sh) { b, g, c in
            let blk = BlockScratch<S>(state: sh.state)
            defer { blk.free() }
            forEachBlock(sh, group: g) { d0, w in
                blk.loadDecay(at, channels: sh.channels, state: sh.state, d0: d0, w: w)
                reverseCarryOnly(x, dout: dout, sh, blk, b: b, d0: d0, w: w, c: c, local: local, decay: decay)
            }
        }
        forEachGroupItem(sh) { b, g in
            forEachBlock(sh, group: g) { d0, w in
                for k in 0..<sh.state {
                    var carry = SIMD16<S>()
                    for c in stride(from: nc - 1, through: 0, by: -1) {
                        let i = boundaryIndex(sh, b: b, c: c, k: k, d0: d0)
                        storeChannels(carry, carryIn + i, w)
                        carry = loadChannels(local + i, w) + loadChannels(decay + i, w) * carry
                    }
                }
            }
        }
        forEachChunkItem(sh) { b, g, c in
            let s = ChunkScratch<S>(sh), blk = BlockScratch<S>(state: sh.state)
            defer { s.free(); blk.free() }
            var bi = 0
            forEachBlock(sh, group: g) { d0, w in
                for k in 0..<sh.state {
                    s.dh[bi * sh.state + k] = loadChannels(carryIn + boundaryIndex(sh, b: b, c: c, k: k, d0: d0), w)
                }
                bi += 1
            }
            let item = b * nc + c
            groupChunkBackward(x, grads, parts, dout: dout, sh, s, blk, at: at, boundary: boundaryStates,
                               b: b, g: g, c: c, item: item)
            flushDecayGradients(s, parts, sh, g: g, item: item)
        }
    }
    reduceScanPartials(grads, parts, x, sh)
}

/// Time-parallel phase 1 for one block and chunk: the dh recursion alone from a zero carry,
/// giving the carry the chunk sends to the one before (into `local`) and exp(A·ΣΔ) (into
/// `decay`), both at the chunk's boundary index.
@inlinable @inline(__always)
func reverseCarryOnly<S: TensorScalar>(
    _ x: ScanInputs<S>, dout: UnsafePointer<S>, _ sh: ScanShape, _ blk: BlockScratch<S>,
    b: Int, d0: Int, w: Int, c: Int, local: UnsafeMutablePointer<S>, decay: UnsafeMutablePointer<S>
) {
    let di = sh.channels, n = sh.state
    let t0 = c * sh.chunk, t1 = Swift.min(sh.time, t0 + sh.chunk)
    let bias = loadChannels(x.dtBias + d0, w)
    for k in 0..<n { blk.h[k] = SIMD16() }   // h holds the running dh here
    var sum = SIMD16<S>()
    for t in stride(from: t1 - 1, through: t0, by: -1) {
        let row = (b * sh.time + t) * di + d0, srow = (b * sh.time + t) * n
        let delta = Softplus.forward(loadChannels(x.deltaRaw + row, w) + bias)
        sum += delta
        let zz = loadChannels(x.z + row, w)
        let dy = loadChannels(dout + row, w) * Silu.forward(zz)
        computeDecays(delta, blk.a2, into: blk.decays, n)
        for k in 0..<n { blk.h[k] = S.vmuladd(dy, SIMD16(repeating: x.cm[srow + k]), blk.h[k]) * blk.decays[k] }
    }
    for k in 0..<n {
        let i = boundaryIndex(sh, b: b, c: c, k: k, d0: d0)
        storeChannels(blk.h[k], local + i, w)
        storeChannels(S.vexp2Decay(sum * blk.a2[k]), decay + i, w)
    }
}

/// Adds the partials into the gradients in a fixed order.
@inlinable
func reduceScanPartials<S: TensorScalar>(_ g: ScanGradients<S>, _ p: ScanPartials<S>, _ x: ScanInputs<S>, _ sh: ScanShape) {
    let rows = sh.batch * sh.time, n = sh.state, di = sh.channels
    Parallel.forRanges(rows, grain: 64, alignment: 1) { range in
        for r in range {
            for grp in 0..<sh.groups {
                let base = (grp * rows + r) * n
                for k in 0..<n {
                    g.bm[r * n + k] += p.bm[base + k]
                    g.cm[r * n + k] += p.cm[base + k]
                }
            }
        }
    }
    let items = sh.batch * p.timeItems
    for d in 0..<di {
        var dD: S = 0, dBias: S = 0
        for it in 0..<items { dD += p.d[it * di + d]; dBias += p.bias[it * di + d] }
        g.d[d] += dD
        g.dtBias[d] += dBias
        for k in 0..<n {
            var s: S = 0
            for it in 0..<items { s += p.aLog[(it * n + k) * di + d] }
            g.aLog[d * n + k] += s * -S.exp(x.aLog[d * n + k])   // dA/dA_log = A = -exp(A_log)
        }
    }
}
