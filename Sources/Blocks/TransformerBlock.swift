// nanochat's Transformer block: causal self-attention with rotary embedding and QK norm,
// then a relu² MLP, each on a pre-norm residual branch (SPEC §1.2).
import Tensor

/// x + attn(rmsnorm(x)), then + mlp(rmsnorm(·)). x: (B, T, C). With a cache, the T new
/// positions follow the cache's `offset` earlier ones.
func transformerBlock(_ x: Tensor, _ attention: AttentionWeights, _ mlpWeights: MLPWeights, config: ModelConfig,
                      rope: RotaryTable, cache: KVCache?, offset: Int) -> Tensor {
    let h = x + selfAttention(rmsNorm(x), attention, config: config, rope: rope, cache: cache, offset: offset)
    return h + mlp(rmsNorm(h), mlpWeights)
}

/// q = x·c_qᵀ (B,T,H,hd), k, v = x·c_kᵀ, x·c_vᵀ (B,T,KV,hd); rotary, then QK rmsnorm;
/// causal attention (over the cache's keys too, when decoding); y·c_projᵀ.
func selfAttention(_ x: Tensor, _ w: AttentionWeights, config: ModelConfig, rope: RotaryTable,
                   cache: KVCache?, offset: Int) -> Tensor {
    let (b, t) = (x.shape[0], x.shape[1])
    let (h, kv, hd) = (config.nHead, config.nKVHead, config.headDim)
    var q = linear(x, w.query).reshaped([b, t, h, hd])
    var k = linear(x, w.key).reshaped([b, t, kv, hd])
    let v = linear(x, w.value).reshaped([b, t, kv, hd])
    q = rmsNorm(rotary(q, table: rope, offset: offset))
    k = rmsNorm(rotary(k, table: rope, offset: offset))
    let y = cache.map { $0.attend(q: q, k: k, v: v, offset: offset) } ?? causalAttention(q, k, v)
    return linear(y.reshaped([b, t, h * hd]), w.projection)
}

/// c_proj(relu(c_fc(x))²), hidden width 4C (nanochat's MLP).
func mlp(_ x: Tensor, _ w: MLPWeights) -> Tensor {
    linear(reluSquared(linear(x, w.up)), w.down)
}
