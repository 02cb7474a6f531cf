// The selective scan on the tape (training, and inference from a given state), around the
// kernels of ScanForward and ScanBackward.
import Tensor

/// The selective scan on the tape: out (B, T, Di) = y · silu(z) (see the glossary).
/// u, deltaRaw, z: (B, T, Di); dtBias, d: (Di); aLog: (Di, N); bm, cm: (B, T, N).
/// Starts from a zero state. Saves only the chunk-boundary states for backward.
public func selectiveScan(
    u: Tensor, deltaRaw: Tensor, dtBias: Tensor, aLog: Tensor, bm: Tensor, cm: Tensor, d: Tensor, z: Tensor,
    chunk: Int = scanChunkLength, strategy: ScanStrategy = .automatic
) -> Tensor {
    let sh = scanShape(u: u, deltaRaw: deltaRaw, dtBias: dtBias, aLog: aLog, bm: bm, cm: cm, d: d, z: z, chunk: chunk)
    switch u.dtype {
    case .float32: return scanOp(u, deltaRaw, dtBias, aLog, bm, cm, d, z, sh, strategy, Float.self)
    case .float64: return scanOp(u, deltaRaw, dtBias, aLog, bm, cm, d, z, sh, strategy, Double.self)
    }
}

/// The scan without the tape, from `initialState` (B, Di, N) or zeros; returns the output
/// and the final state (B, Di, N). For prefill before decoding.
public func selectiveScanInference(
    u: Tensor, deltaRaw: Tensor, dtBias: Tensor, aLog: Tensor, bm: Tensor, cm: Tensor, d: Tensor, z: Tensor,
    initialState: Tensor? = nil
) -> (out: Tensor, state: Tensor) {
    let sh = scanShape(u: u, deltaRaw: deltaRaw, dtBias: dtBias, aLog: aLog, bm: bm, cm: cm, d: d, z: z, chunk: scanChunkLength)
    if let initialState {
        precondition(initialState.shape == [sh.batch, sh.channels, sh.state] && initialState.dtype == u.dtype,
                     "scan initial state must be (B, Di, N) = \([sh.batch, sh.channels, sh.state]), got \(initialState.shape)")
    }
    let out = Tensor(uninitializedShape: u.shape, dtype: u.dtype)
    let state = Tensor(uninitializedShape: [sh.batch, sh.channels, sh.state], dtype: u.dtype)
    func run<S: TensorScalar>(_: S.Type) {
        selectiveScanForward(out: out.data(S.self), inputs: scanInputs(u, deltaRaw, dtBias, aLog, bm, cm, d, z, S.self),
                             shape: sh, initialState: initialState.map { UnsafePointer($0.data(S.self)) },
                             finalState: state.data(S.self))
    }
    if u.dtype == .float32 { run(Float.self) } else { run(Double.self) }
    return (out, state)
}

func scanShape(u: Tensor, deltaRaw: Tensor, dtBias: Tensor, aLog: Tensor, bm: Tensor, cm: Tensor, d: Tensor, z: Tensor,
               chunk: Int) -> ScanShape {
    precondition(u.rank == 3 && aLog.rank == 2, "scan: u must be (B, T, Di) and A_log (Di, N); got \(u.shape), \(aLog.shape)")
    let (b, t, di, n) = (u.shape[0], u.shape[1], u.shape[2], aLog.shape[1])
    let expected: [(String, Tensor, [Int])] = [
        ("deltaRaw", deltaRaw, [b, t, di]), ("z", z, [b, t, di]), ("dtBias", dtBias, [di]), ("D", d, [di]),
        ("A_log", aLog, [di, n]), ("B", bm, [b, t, n]), ("C", cm, [b, t, n]),
    ]
    for (name, x, shape) in expected {
        precondition(x.shape == shape && x.dtype == u.dtype, "scan: \(name) must be \(shape) \(u.dtype), got \(x.shape) \(x.dtype)")
    }
    return ScanShape(batch: b, time: t, channels: di, state: n, chunk: chunk)
}

@inline(__always)
func scanInputs<S: TensorScalar>(_ u: Tensor, _ deltaRaw: Tensor, _ dtBias: Tensor, _ aLog: Tensor, _ bm: Tensor,
                                 _ cm: Tensor, _ d: Tensor, _ z: Tensor, _: S.Type) -> ScanInputs<S> {
    ScanInputs(u: u.data(S.self), deltaRaw: deltaRaw.data(S.self), dtBias: dtBias.data(S.self), aLog: aLog.data(S.self),
               bm: bm.data(S.self), cm: cm.data(S.self), d: d.data(S.self), z: z.data(S.self))
}

func scanOp<S: TensorScalar>(
    _ u: Tensor, _ deltaRaw: Tensor, _ dtBias: Tensor, _ aLog: Tensor, _ bm: Tensor, _ cm: Tensor, _ d: Tensor,
    _ z: Tensor, _ sh: ScanShape, _ strategy: ScanStrategy, _: S.Type
) -> Tensor {
    let inputs = [u, deltaRaw, dtBias, aLog, bm, cm, d, z]
    let recording = GradMode.isEnabled && inputs.contains { $0.requiresGrad }
    let out = Tensor(uninitializedShape: u.shape, dtype: u.dtype)
    let boundary = recording ? Tensor(uninitializedShape: [sh.boundaryCount], dtype: u.dtype) : nil
    let x = scanInputs(u, deltaRaw, dtBias, aLog, bm, cm, d, z, S.self)
    selectiveScanForward(out: out.data(S.self), inputs: x, shape: sh, boundaryStates: boundary?.data(S.self), strategy: strategy)
    guard let boundary else { return out }
    out.record("selective_scan", inputs) { out in
        let grads = ScanGradients(u: u.gradData(S.self), deltaRaw: deltaRaw.gradData(S.self), dtBias: dtBias.gradData(S.self),
                                  aLog: aLog.gradData(S.self), bm: bm.gradData(S.self), cm: cm.gradData(S.self),
                                  d: d.gradData(S.self), z: z.gradData(S.self))
        selectiveScanBackward(grads: grads, dout: out.gradData(S.self), inputs: x, shape: sh,
                              boundaryStates: boundary.data(S.self), strategy: strategy)
    }
    return out
}
