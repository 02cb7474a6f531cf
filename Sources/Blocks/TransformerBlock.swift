// nanochat's Transformer block: causal self-attention with rotary embedding and QK norm,
// then a relu² MLP, each on a pre-norm residual branch (SPEC §1.2).
import Tensor

/// Layer `index` of a model, when it is a Transformer layer.
struct TransformerBlock {
    let prefix: String
    let config: ModelConfig

    init(index: Int, config: ModelConfig) {
        prefix = "transformer.h.\(index)"
        self.config = config
    }

    /// x + attn(rmsnorm(x)), then + mlp(rmsnorm(·)). x: (B, T, C). With a cache, the T new
    /// positions follow the cache's `length` earlier ones.
    func forward(_ x: Tensor, _ p: ParameterSet, rope: RotaryTable, cache: KVCache?, offset: Int) -> Tensor {
        let h = x + attention(rmsNorm(x), p, rope: rope, cache: cache, offset: offset)
        return h + mlp(rmsNorm(h), p, prefix: prefix)
    }

    /// q = x·c_qᵀ (B,T,H,hd), k, v = x·c_kᵀ, x·c_vᵀ (B,T,KV,hd); rotary, then QK rmsnorm;
    /// causal attention; y·c_projᵀ.
    func attention(_ x: Tensor, _ p: ParameterSet, rope: RotaryTable, cache: KVCache?, offset: Int) -> Tensor {
        let (b, t) = (x.shape[0], x.shape[1])
        let (h, kv, hd) = (config.nHead, config.nKVHead, config.headDim)
        let a = "\(prefix).attn"
        var q = linear(x, p["\(a).c_q.weight"]).reshaped([b, t, h, hd])
        var k = linear(x, p["\(a).c_k.weight"]).reshaped([b, t, kv, hd])
        let v = linear(x, p["\(a).c_v.weight"]).reshaped([b, t, kv, hd])
        q = rmsNorm(rotary(q, table: rope, offset: offset))
        k = rmsNorm(rotary(k, table: rope, offset: offset))
        let y: Tensor
        if let cache {
            y = cache.attend(q: q, k: k, v: v, offset: offset)
        } else {
            y = causalAttention(q, k, v)
        }
        return linear(y.reshaped([b, t, h * hd]), p["\(a).c_proj.weight"])
    }
}

/// c_proj(relu(c_fc(x))²), hidden width 4C (nanochat's MLP).
func mlp(_ x: Tensor, _ p: ParameterSet, prefix: String) -> Tensor {
    linear(reluSquared(linear(x, p["\(prefix).mlp.c_fc.weight"])), p["\(prefix).mlp.c_proj.weight"])
}
