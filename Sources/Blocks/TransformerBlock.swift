// nanochat's Transformer block: causal self-attention with rotary embedding and QK norm,
// then a relu² MLP, each on a pre-norm residual branch (SPEC §1.2).
import Tensor

/// x + attn(rmsnorm(x)), then + mlp(rmsnorm(·)). x: (B, T, C). `past` is empty in training;
/// when decoding, cache j holds the keys and values of the next `cache.batch` rows, whose T
/// new positions follow its `offset` earlier ones.
func transformerBlock(_ x: Tensor, _ attention: AttentionWeights, _ mlpWeights: MLPWeights, config: ModelConfig,
                      rope: RotaryTable, past: [(cache: KVCache, offset: Int)]) -> Tensor {
    let h = x + selfAttention(rmsNorm(x), attention, config: config, rope: rope, past: past)
    return h + mlp(rmsNorm(h), mlpWeights)
}

/// q = x·c_qᵀ (B,T,H,hd), k, v = x·c_kᵀ, x·c_vᵀ (B,T,KV,hd); rotary, then QK rmsnorm;
/// causal attention (over the caches' keys too, when decoding); y·c_projᵀ. The projections
/// take every row at once; rotary and attention go cache by cache, each at its own offset.
func selfAttention(_ x: Tensor, _ w: AttentionWeights, config: ModelConfig, rope: RotaryTable,
                   past: [(cache: KVCache, offset: Int)]) -> Tensor {
    let (b, t) = (x.shape[0], x.shape[1])
    let (h, kv, hd) = (config.nHead, config.nKVHead, config.headDim)
    let q = linear(x, w.query).reshaped([b, t, h, hd])
    let k = linear(x, w.key).reshaped([b, t, kv, hd])
    let v = linear(x, w.value).reshaped([b, t, kv, hd])
    func attend(_ q: Tensor, _ k: Tensor, _ v: Tensor, _ cache: KVCache?, _ offset: Int) -> Tensor {
        let q = rmsNorm(rotary(q, table: rope, offset: offset)), k = rmsNorm(rotary(k, table: rope, offset: offset))
        return cache.map { $0.attend(q: q, k: k, v: v, offset: offset) } ?? causalAttention(q, k, v)
    }
    let y: Tensor
    if past.count <= 1 {
        y = attend(q, k, v, past.first?.cache, past.first?.offset ?? 0)
    } else {
        var row = 0
        y = concat(past.map { cache, offset in
            let rows = row..<(row + cache.k.shape[0])
            row = rows.upperBound
            return attend(slice(q, axis: 0, rows), slice(k, axis: 0, rows), slice(v, axis: 0, rows), cache, offset)
        }, axis: 0)
    }
    return linear(y.reshaped([b, t, h * hd]), w.projection)
}

/// c_proj(relu(c_fc(x))²), hidden width 4C (nanochat's MLP).
func mlp(_ x: Tensor, _ w: MLPWeights) -> Tensor {
    linear(reluSquared(linear(x, w.up)), w.down)
}
