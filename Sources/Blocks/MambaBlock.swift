// The Mamba-1 mixer (mamba_ssm's `Mamba` module, slow path; SPEC §1.2), on a pre-norm
// residual branch, optionally followed by nanochat's MLP. One mixer function serves
// training, prefill and decode: the cache, when given, changes only how the convolution and
// the scan see the past.
import SelectiveScan
import Tensor

/// x + mixer(rmsnorm(x)), then + mlp(rmsnorm(·)) when the layer has one. x: (B, T, C).
func mambaBlock(_ x: Tensor, _ mixerWeights: MixerWeights, _ mlpWeights: MLPWeights?, config: ModelConfig,
                states: [MambaCache]) -> Tensor {
    var h = x + mixer(rmsNorm(x), mixerWeights, config: config, states: states)
    if let mlpWeights { h = h + mlp(rmsNorm(h), mlpWeights) }
    return h
}

/// u (B, T, C) -> (B, T, C):
///   xz = u·in_projᵀ; x, z = halves;  xc = silu(conv1d(x));  dbc = xc·x_projᵀ = (dt, Bm, Cm)
///   out = scan(xc, Δraw = dt·dt_projᵀ, dt_proj.bias, A_log, Bm, Cm, D, z) · out_projᵀ
/// Without a cache this is the training forward (on the tape). With an empty cache it is a
/// prefill that leaves the conv's last K-1 inputs and the scan's final state in the cache;
/// with primed ones (cache j holding the next `batch` rows' states), T = 1 and each advances
/// by one step; the projections take every row at once.
func mixer(_ u: Tensor, _ w: MixerWeights, config: ModelConfig, states: [MambaCache]) -> Tensor {
    let di = config.mambaInner, r = config.dtRank, n = config.mambaDState
    let xz = linear(u, w.inProj)
    let x = slice(xz, axis: -1, 0..<di), z = slice(xz, axis: -1, di..<(2 * di))
    let decoding = states.first?.primed ?? false
    // Decoding several caches at once, their states step together as one batch.
    let stepping = decoding ? MambaCache.stacked(states) : nil
    let convolved: Tensor
    if let stepping {
        convolved = stepping.convolveStep(x, w)
    } else {
        convolved = causalConv1d(x, weight: w.convWeight, bias: w.convBias)
    }
    let xc = silu(convolved)
    let dbc = linear(xc, w.xProj)
    let dt = slice(dbc, axis: -1, 0..<r)
    let bm = slice(dbc, axis: -1, r..<(r + n)), cm = slice(dbc, axis: -1, (r + n)..<(r + 2 * n))
    let deltaRaw = linear(dt, w.dtProj)
    let y: Tensor
    if states.isEmpty {
        y = selectiveScan(u: xc, deltaRaw: deltaRaw, dtBias: w.dtBias, aLog: w.aLog, bm: bm, cm: cm, d: w.d, z: z)
    } else if let stepping {
        y = stepping.scanStep(u: xc, deltaRaw: deltaRaw, bm: bm, cm: cm, z: z, w)
        stepping.unstack(into: states)
    } else {
        precondition(states.count == 1, "a prefill fills one cache")
        let cache = states[0]
        let (out, state) = selectiveScanInference(u: xc, deltaRaw: deltaRaw, dtBias: w.dtBias, aLog: w.aLog,
                                                  bm: bm, cm: cm, d: w.d, z: z)
        cache.prime(convInput: x, scanState: state)
        y = out
    }
    return linear(y, w.outProj)
}
