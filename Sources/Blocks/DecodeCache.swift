// Caches for decoding: keys and values for Transformer layers, conv and SSM states for Mamba
// layers. Prefill a prompt, then feed one token at a time.
import SelectiveScan
import Tensor

/// Keys and values of one Transformer layer: (B, capacity, KV, hd) each. The capacity
/// doubles when a step needs more positions, so memory follows the tokens produced.
final class KVCache {
    private(set) var k, v: Tensor
    private(set) var capacity: Int

    init(batch: Int, capacity: Int, kvHeads: Int, headDim: Int, dtype: DType) {
        let c = Swift.max(1, capacity)
        k = Tensor(zeros: [batch, c, kvHeads, headDim], dtype: dtype)
        v = Tensor(zeros: [batch, c, kvHeads, headDim], dtype: dtype)
        self.capacity = c
    }

    /// Grows to at least `positions` (at least doubling), keeping the `filled` positions.
    func reserve(_ positions: Int, filled: Int) {
        guard positions > capacity else { return }
        let newCapacity = Swift.max(positions, 2 * capacity)
        let (b, kv, hd) = (k.shape[0], k.shape[2], k.shape[3])
        let grown = [k, v].map { old -> Tensor in
            let t = Tensor(zeros: [b, newCapacity, kv, hd], dtype: old.dtype)
            let row = kv * hd * old.dtype.byteSize
            for bi in 0..<b {
                (t.storageBytes + bi * newCapacity * row).copyMemory(from: old.storageBytes + bi * capacity * row, byteCount: filled * row)
            }
            return t
        }
        (k, v, capacity) = (grown[0], grown[1], newCapacity)
    }

    /// Stores the T new keys and values at positions offset ..< offset+T, then attends the
    /// new queries (B, T, H, hd) over all offset+T keys. Inference only (no tape).
    func attend(q: Tensor, k newK: Tensor, v newV: Tensor, offset: Int) -> Tensor {
        let (b, t, h, hd) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3]), kv = newK.shape[2]
        reserve(offset + t, filled: offset)
        let y = Tensor(uninitializedShape: q.shape, dtype: q.dtype)
        func run<S: TensorScalar>(_: S.Type) {
            let row = kv * hd
            for bi in 0..<b {
                (k.data(S.self) + (bi * capacity + offset) * row).update(from: newK.data(S.self) + bi * t * row, count: t * row)
                (v.data(S.self) + (bi * capacity + offset) * row).update(from: newV.data(S.self) + bi * t * row, count: t * row)
            }
            let lse = UnsafeMutablePointer<S>.allocate(capacity: b * h * t)
            defer { lse.deallocate() }
            attentionForward(out: y.data(S.self), lse: lse, q: q.data(S.self), k: k.data(S.self), v: v.data(S.self),
                             shape: AttentionShape(batch: b, queries: t, keys: offset + t, heads: h, kvHeads: kv,
                                                   headDim: hd, kvBatchStride: capacity * row),
                             bf16: attentionBF16Kernel(S.self, queries: t))
        }
        if q.dtype == .float32 { run(Float.self) } else { run(Double.self) }
        return y
    }
}

/// Conv state (B, Di, K-1), oldest input first, and SSM state (B, Di, N) of one Mamba layer.
final class MambaCache {
    let conv, ssm: Tensor
    /// Whether a prefill has filled the states (steps need it; a prefill needs it empty).
    private(set) var primed = false

    init(batch: Int, config: ModelConfig, dtype: DType) {
        conv = Tensor(zeros: [batch, config.mambaInner, config.mambaDConv - 1], dtype: dtype)
        ssm = Tensor(zeros: [batch, config.mambaInner, config.mambaDState], dtype: dtype)
    }

    private init(conv: Tensor, ssm: Tensor) {
        self.conv = conv
        self.ssm = ssm
        primed = true
    }

    /// The primed caches' states stacked into one cache of all their rows (a copy; the cache
    /// itself when there is one), so a decode step runs once over every row.
    static func stacked(_ caches: [MambaCache]) -> MambaCache {
        precondition(caches.allSatisfy(\.primed), "only primed caches step together")
        if caches.count == 1 { return caches[0] }
        return MambaCache(conv: concat(caches.map(\.conv), axis: 0), ssm: concat(caches.map(\.ssm), axis: 0))
    }

    /// Copies the rows of a `stacked` cache back into the caches it was made from.
    func unstack(into caches: [MambaCache]) {
        guard caches.count > 1 || caches.first !== self else { return }
        for (source, parts) in [(conv, caches.map(\.conv)), (ssm, caches.map(\.ssm))] {
            var at = 0
            for part in parts {
                let bytes = part.count * part.dtype.byteSize
                part.storageBytes.copyMemory(from: source.storageBytes + at, byteCount: bytes)
                at += bytes
            }
        }
    }

    /// After a prefill over x (B, T, Di) (the conv's input): keep its last K-1 steps and the
    /// scan's final state.
    func prime(convInput x: Tensor, scanState: Tensor) {
        let (b, t, di) = (x.shape[0], x.shape[1], x.shape[2]), w = conv.shape[2]
        let xs = x.doubles, cs = conv.count
        var values = [Double](repeating: 0, count: cs)
        for bi in 0..<b { for d in 0..<di { for j in 0..<w {
            let ti = t - w + j
            if ti >= 0 { values[(bi * di + d) * w + j] = xs[(bi * t + ti) * di + d] }
        } } }
        func run<S: TensorScalar>(_: S.Type) {
            for i in 0..<cs { conv.data(S.self)[i] = S(values[i]) }
            ssm.data(S.self).update(from: scanState.data(S.self), count: ssm.count)
        }
        if conv.dtype == .float32 { run(Float.self) } else { run(Double.self) }
        primed = true
    }

    /// One step of the causal convolution: x (B, 1, Di) -> (B, 1, Di), advancing the conv state.
    func convolveStep(_ x: Tensor, _ w: MixerWeights) -> Tensor {
        let (b, di) = (x.shape[0], x.shape[2])
        let out = Tensor(uninitializedShape: [b, 1, di], dtype: x.dtype)
        func run<S: TensorScalar>(_: S.Type) {
            causalConvStep(out: out.data(S.self), state: conv.data(S.self), inp: x.data(S.self),
                           weight: w.convWeight.data(S.self), bias: w.convBias.data(S.self),
                           batch: b, channels: di, kernel: w.convWeight.shape[2])
        }
        if x.dtype == .float32 { run(Float.self) } else { run(Double.self) }
        return out
    }

    /// One step of the selective scan: inputs of one position (B, 1, ·) -> y (B, 1, Di),
    /// advancing the SSM state.
    func scanStep(u: Tensor, deltaRaw: Tensor, bm: Tensor, cm: Tensor, z: Tensor, _ w: MixerWeights) -> Tensor {
        let (b, di, n) = (u.shape[0], u.shape[2], ssm.shape[2])
        let y = Tensor(uninitializedShape: [b, 1, di], dtype: u.dtype)
        func run<S: TensorScalar>(_: S.Type) {
            selectiveScanStep(out: y.data(S.self), state: ssm.data(S.self),
                              inputs: ScanInputs(u: u.data(S.self), deltaRaw: deltaRaw.data(S.self),
                                                 dtBias: w.dtBias.data(S.self), aLog: w.aLog.data(S.self),
                                                 bm: bm.data(S.self), cm: cm.data(S.self), d: w.d.data(S.self),
                                                 z: z.data(S.self)),
                              batch: b, channels: di, state: n)
        }
        if u.dtype == .float32 { run(Float.self) } else { run(Double.self) }
        return y
    }
}

/// The per-layer caches of one decoding session for `batch` sequences. The key/value caches
/// start with room for `capacity` positions and grow as decoding needs.
public final class DecodeCache {
    enum Layer {
        case attention(KVCache)
        case mamba(MambaCache)
    }

    public let batch: Int, capacity: Int
    /// Positions filled so far.
    public internal(set) var length = 0
    let layers: [Layer]

    public init(config: ModelConfig, batch: Int, capacity: Int, dtype: DType = .float32) {
        self.batch = batch
        self.capacity = capacity
        layers = config.blockPattern.map { kind in
            switch kind {
            case .transformer:
                return .attention(KVCache(batch: batch, capacity: capacity, kvHeads: config.nKVHead,
                                          headDim: config.headDim, dtype: dtype))
            case .mamba:
                return .mamba(MambaCache(batch: batch, config: config, dtype: dtype))
            }
        }
    }

    /// Layer `i`'s keys and values, if it is a Transformer layer.
    func keysAndValues(layer i: Int) -> KVCache? {
        if case .attention(let kv) = layers[i] { return kv }
        return nil
    }

    /// Layer `i`'s conv and SSM states, if it is a Mamba layer.
    func mambaState(layer i: Int) -> MambaCache? {
        if case .mamba(let state) = layers[i] { return state }
        return nil
    }

    /// Bytes the cache holds.
    public var byteCount: Int {
        layers.reduce(0) { total, layer in
            switch layer {
            case .attention(let c): return total + (c.k.count + c.v.count) * c.k.dtype.byteSize
            case .mamba(let c): return total + (c.conv.count + c.ssm.count) * c.conv.dtype.byteSize
            }
        }
    }

    /// Bytes of cache one sequence needs at `contextLength` positions: per Transformer
    /// layer 2·T·KV·hd values, per Mamba layer Di·(K-1) + Di·N (independent of T).
    public static func bytesPerSequence(_ config: ModelConfig, contextLength: Int, dtype: DType = .float32) -> Int {
        config.blockPattern.reduce(0) { total, kind in
            switch kind {
            case .transformer: return total + 2 * contextLength * config.nKVHead * config.headDim * dtype.byteSize
            case .mamba:
                return total + config.mambaInner * (config.mambaDConv - 1 + config.mambaDState) * dtype.byteSize
            }
        }
    }
}
