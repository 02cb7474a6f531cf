// Mamba's selective scan (Gu & Dao 2023, Mamba-1 "S6"), on the CPU.
//
// Glossary (the paper's symbols; the mamba_ssm names in brackets):
//   B   batch                          T   sequence length (time)
//   Di  channels of the scan [d_inner] N   state size per channel [d_state]
//   L   chunk length of the chunked scan
//   u   input (B, T, Di)               Δ   step size, softplus(Δraw + dt_bias) (B, T, Di)
//   A   -exp(A_log), decay rates (Di, N)
//   Bm  input matrix (B, T, N)         Cm  output matrix (B, T, N)
//   D   skip connection (Di)           z   gate (B, T, Di)
//   h   state (B, Di, N)
//
//   h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t Bm_t u_t,   y_t = Cm_t · h_t + D u_t,   out_t = y_t · silu(z_t)
//
// The scan runs on SIMD16 vectors of 16 channels, looping over the N states inside, so
// there is no horizontal sum in the forward pass and any N works. Work is cut into items
// of (batch, group of 64 channels, chunks); see `ScanStrategy` for how time is split.
import Tensor

/// Sizes of one scan.
public struct ScanShape: Sendable, Equatable {
    public var batch: Int, time: Int, channels: Int, state: Int
    /// Time steps per chunk: the granularity of saved states (backward recomputes inside a
    /// chunk) and of time-parallel work.
    public var chunk: Int

    public init(batch: Int, time: Int, channels: Int, state: Int, chunk: Int = scanChunkLength) {
        precondition(batch > 0 && time > 0 && channels > 0 && state > 0 && chunk > 0,
                     "scan sizes must be positive: B=\(batch) T=\(time) Di=\(channels) N=\(state) L=\(chunk)")
        self.batch = batch; self.time = time; self.channels = channels; self.state = state; self.chunk = chunk
    }

    /// Number of chunks, ⌈T / L⌉.
    @inlinable public var chunks: Int { (time + chunk - 1) / chunk }
    /// Channel groups of `scanGroupWidth`.
    @inlinable public var groups: Int { (channels + scanGroupWidth - 1) / scanGroupWidth }
    /// Elements of the boundary-state buffer: B · (chunks + 1) · N · Di.
    @inlinable public var boundaryCount: Int { batch * (chunks + 1) * state * channels }

    /// Bytes the scan holds beyond its inputs and outputs during forward + backward (Float32):
    /// boundary states B·(⌈T/L⌉+1)·N·Di; per worker the backward's recompute scratch (states,
    /// decays and the lane-wise dBm, dCm of a chunk: 4·L·N vectors of 16; Δ, σ, dy: 3·L; the
    /// group's dh, dA and the chunk's start state: (2·64/16 + 1)·N) and a block's 4·N; the
    /// reduction partials (dA_log, D, dt_bias per batch and time item, and dBm, dCm per
    /// channel group); A transposed (N·Di); and with the time-parallel strategy the
    /// backward's three boundary-sized carry buffers.
    public func extraBytes(threads: Int, strategy: ScanStrategy = .automatic) -> Int {
        let timeParallel = strategy.timeParallel(self), timeItems = timeParallel ? chunks : 1
        let vectorsPerWorker = 4 * chunk * state + 3 * chunk + (2 * scanGroupWidth / 16 + 1 + 4) * state
        let scratch = threads * vectorsPerWorker * 16
        let partials = batch * timeItems * (channels * state + 2 * channels) + 2 * groups * batch * time * state
        let carries = timeParallel ? 3 * boundaryCount : 0
        return 4 * (boundaryCount + scratch + partials + state * channels + carries)
    }
}

/// Default chunk length: the backward's per-chunk scratch (4 · L · N vectors of 16) is
/// 256 KiB at N = 16, inside a 512 KiB-1 MiB L2. (8-32 measured no faster.)
public let scanChunkLength = 64

/// Channels per work item: 4 SIMD16 blocks, so the channel reductions of backward (dBm, dCm)
/// keep one partial per 64 channels.
public let scanGroupWidth = 64

/// How the scan splits time.
public enum ScanStrategy: Sendable {
    /// Items are (batch, channel group); each scans its chunks in order, carrying the state.
    /// One pass over the data: the fast path when there are enough channel groups.
    case carry
    /// Items are (batch, channel group, chunk): each chunk is scanned from a zero state
    /// keeping its total decay, the boundary states are carried across chunks, and every
    /// chunk is scanned again from its true start. Twice the work, but T-way parallel.
    case timeParallel
    /// `timeParallel` when B · groups < 8, else `carry`. Depends on the shape only, never
    /// on the thread count, so results are the same bits on any number of threads.
    case automatic

    @inlinable
    public func timeParallel(_ s: ScanShape) -> Bool {
        switch self {
        case .carry: return false
        case .timeParallel: return true
        case .automatic: return s.batch * s.groups < 8 && s.chunks > 1
        }
    }
}

/// The inputs of a scan, as raw pointers (row-major, shapes in the glossary).
public struct ScanInputs<S: TensorScalar>: @unchecked Sendable {
    public var u, deltaRaw, dtBias, aLog, bm, cm, d, z: UnsafePointer<S>

    public init(u: UnsafePointer<S>, deltaRaw: UnsafePointer<S>, dtBias: UnsafePointer<S>, aLog: UnsafePointer<S>,
                bm: UnsafePointer<S>, cm: UnsafePointer<S>, d: UnsafePointer<S>, z: UnsafePointer<S>) {
        self.u = u; self.deltaRaw = deltaRaw; self.dtBias = dtBias; self.aLog = aLog
        self.bm = bm; self.cm = cm; self.d = d; self.z = z
    }
}

/// Gradient buffers of a scan, each added into (+=). Shapes as the inputs.
public struct ScanGradients<S: TensorScalar>: @unchecked Sendable {
    public var u, deltaRaw, dtBias, aLog, bm, cm, d, z: UnsafeMutablePointer<S>

    public init(u: UnsafeMutablePointer<S>, deltaRaw: UnsafeMutablePointer<S>, dtBias: UnsafeMutablePointer<S>,
                aLog: UnsafeMutablePointer<S>, bm: UnsafeMutablePointer<S>, cm: UnsafeMutablePointer<S>,
                d: UnsafeMutablePointer<S>, z: UnsafeMutablePointer<S>) {
        self.u = u; self.deltaRaw = deltaRaw; self.dtBias = dtBias; self.aLog = aLog
        self.bm = bm; self.cm = cm; self.d = d; self.z = z
    }
}

/// A = -exp(A_log) transposed to (N, Di), so 16 consecutive channels of one state load as
/// one vector.
@inlinable
func decayRatesTransposed<S: TensorScalar>(_ aLog: UnsafePointer<S>, channels: Int, state: Int) -> UnsafeMutablePointer<S> {
    let at = UnsafeMutablePointer<S>.allocate(capacity: channels * state)
    for d in 0..<channels {
        for n in 0..<state { at[n * channels + d] = -S.exp(aLog[d * state + n]) }
    }
    return at
}

/// Loads channels d0 ..< d0+w (w ≤ 16) of a row; lanes past w read as 0.
@inlinable @inline(__always)
func loadChannels<S: TensorScalar>(_ p: UnsafePointer<S>, _ w: Int) -> SIMD16<S> {
    if w == 16 { return UnsafeRawPointer(p).loadUnaligned(as: SIMD16<S>.self) }
    var v = SIMD16<S>()
    for i in 0..<w { v[i] = p[i] }
    return v
}

@inlinable @inline(__always)
func storeChannels<S: TensorScalar>(_ v: SIMD16<S>, _ p: UnsafeMutablePointer<S>, _ w: Int) {
    if w == 16 { UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<S>.self); return }
    for i in 0..<w { p[i] = v[i] }
}

/// p[0..<w] += v[0..<w].
@inlinable @inline(__always)
func addChannels<S: TensorScalar>(_ v: SIMD16<S>, _ p: UnsafeMutablePointer<S>, _ w: Int) {
    storeChannels(loadChannels(p, w) + v, p, w)
}

/// σ(x) = 1 / (1 + e^-x).
@inlinable @inline(__always)
func sigmoid<S: TensorScalar>(_ x: SIMD16<S>) -> SIMD16<S> { 1 / (S.vexp(-x) + 1) }
