// The Mamba-1 mixer (mamba_ssm's `Mamba` module, slow path; SPEC §1.2), on a pre-norm
// residual branch, optionally followed by nanochat's MLP.
import SelectiveScan
import Tensor

/// Layer `index` of a model, when it is a Mamba layer.
struct MambaBlock {
    let prefix: String
    let config: ModelConfig

    init(index: Int, config: ModelConfig) {
        prefix = "transformer.h.\(index)"
        self.config = config
    }

    func forward(_ x: Tensor, _ p: ParameterSet, cache: MambaCache?) -> Tensor {
        var h = x + mixer(rmsNorm(x), p, cache: cache)
        if config.mambaUseMLP { h = h + mlp(rmsNorm(h), p, prefix: prefix) }
        return h
    }

    /// u (B, T, C) -> (B, T, C):
    ///   xz = u·in_projᵀ; x, z = halves;  xc = silu(conv1d(x));  dbc = xc·x_projᵀ = (dt, Bm, Cm)
    ///   out = scan(xc, Δraw = dt·dt_projᵀ, dt_proj.bias, A_log, Bm, Cm, D, z) · out_projᵀ
    func mixer(_ u: Tensor, _ p: ParameterSet, cache: MambaCache?) -> Tensor {
        let m = "\(prefix).mixer"
        let di = config.mambaInner, r = config.dtRank, n = config.mambaDState
        let xz = linear(u, p["\(m).in_proj.weight"])
        let x = slice(xz, axis: -1, 0..<di), z = slice(xz, axis: -1, di..<(2 * di))
        if let cache, cache.primed {
            return linear(cache.step(x: x, z: z, p, prefix: m, config: config), p["\(m).out_proj.weight"])
        }
        let xc = silu(causalConv1d(x, weight: p["\(m).conv1d.weight"], bias: p["\(m).conv1d.bias"]))
        let dbc = linear(xc, p["\(m).x_proj.weight"])
        let dt = slice(dbc, axis: -1, 0..<r)
        let bm = slice(dbc, axis: -1, r..<(r + n)), cm = slice(dbc, axis: -1, (r + n)..<(r + 2 * n))
        let deltaRaw = linear(dt, p["\(m).dt_proj.weight"])
        let y: Tensor
        if let cache {
            let (out, state) = selectiveScanInference(u: xc, deltaRaw: deltaRaw, dtBias: p["\(m).dt_proj.bias"],
                                                      aLog: p["\(m).A_log"], bm: bm, cm: cm, d: p["\(m).D"], z: z)
            cache.prime(convInput: x, scanState: state)
            y = out
        } else {
            y = selectiveScan(u: xc, deltaRaw: deltaRaw, dtBias: p["\(m).dt_proj.bias"], aLog: p["\(m).A_log"],
                              bm: bm, cm: cm, d: p["\(m).D"], z: z)
        }
        return linear(y, p["\(m).out_proj.weight"])
    }
}
