# A nanochat-swift model for transformers, loaded with trust_remote_code=True: each layer a
# Transformer block (rotary attention with QK norm, relu^2 MLP) or a Mamba-1 block (selective
# state space mixer, optionally followed by the MLP), chosen per layer by block_pattern, as
# nanochat-swift's docs/SPEC.md section 1.2 defines them. Written for clarity, in plain
# PyTorch: the scan runs step by step. Generation follows transformers' conventions
# (GenerationMixin, attention_mask, a cache object in past_key_values): the prompt is read
# once, then each new token alone against the cache (attention's keys and values, each Mamba
# layer's convolution inputs and scan state), as nanochat-swift decodes.
# Parameter names are nanochat-swift's own (transformer.wte, transformer.h.{i}..., lm_head).

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

# transformers names the cache `cache` from 5.25 on, `past_key_values` before.
CACHE = "cache" if "cache" in getattr(CausalLMOutputWithPast, "__dataclass_fields__", {}) else "past_key_values"


class NanochatHybridConfig(PreTrainedConfig):
    model_type = "nanochat_hybrid"
    attribute_map = {"num_hidden_layers": "n_layer", "hidden_size": "n_embd", "num_attention_heads": "n_head",
                     "num_key_value_heads": "n_kv_head", "max_position_embeddings": "sequence_len"}

    def __init__(self, vocab_size=4096, sequence_len=256, n_layer=4, n_head=2, n_kv_head=2, n_embd=256,
                 block_pattern=("T", "T", "M", "M"), mamba_d_state=16, mamba_d_conv=4, mamba_expand=2,
                 mamba_use_mlp=False, logit_softcap=15.0, rms_norm_eps=1.1920929e-07, rope_theta=10000.0, **kwargs):
        self.vocab_size = vocab_size
        self.sequence_len = sequence_len
        self.n_layer = n_layer
        self.n_head = n_head
        self.n_kv_head = n_kv_head
        self.n_embd = n_embd
        self.block_pattern = list(block_pattern)
        self.mamba_d_state = mamba_d_state
        self.mamba_d_conv = mamba_d_conv
        self.mamba_expand = mamba_expand
        self.mamba_use_mlp = mamba_use_mlp
        self.logit_softcap = logit_softcap
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        super().__init__(**kwargs)


def rms_norm(x, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rotate(x, cos, sin):
    # x: (B, T, heads, hd); the two halves of each head turned by the position's angle.
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=False)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = c.n_head, c.n_kv_head, c.n_embd // c.n_head
        self.eps = c.rms_norm_eps
        self.c_q = nn.Linear(c.n_embd, self.n_head * self.head_dim, bias=False)
        self.c_k = nn.Linear(c.n_embd, self.n_kv_head * self.head_dim, bias=False)
        self.c_v = nn.Linear(c.n_embd, self.n_kv_head * self.head_dim, bias=False)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=False)

    def forward(self, x, cos, sin, state=None):
        # state: this layer's entry of a HybridCache (keys and values so far), or None.
        b, t, _ = x.shape
        q = self.c_q(x).view(b, t, self.n_head, self.head_dim)
        k = self.c_k(x).view(b, t, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(b, t, self.n_kv_head, self.head_dim)
        q, k = rms_norm(rotate(q, cos, sin), self.eps), rms_norm(rotate(k, cos, sin), self.eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        past = 0
        if state is not None:
            if "k" in state:
                past = state["k"].shape[2]
                k, v = torch.cat((state["k"], k), dim=2), torch.cat((state["v"], v), dim=2)
            state["k"], state["v"] = k, v
        if self.n_kv_head != self.n_head:
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            # New query i (position past + i) sees keys 0 ... past + i.
            allowed = torch.arange(past + t, device=x.device)[None, :] <= (past + torch.arange(t, device=x.device))[:, None]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, -1))


class Mixer(nn.Module):
    def __init__(self, c):
        super().__init__()
        inner, n, k = c.mamba_expand * c.n_embd, c.mamba_d_state, c.mamba_d_conv
        self.rank, self.n = (c.n_embd + 15) // 16, n
        self.in_proj = nn.Linear(c.n_embd, 2 * inner, bias=False)
        self.conv1d = nn.Conv1d(inner, inner, k, groups=inner, padding=k - 1, bias=True)
        self.x_proj = nn.Linear(inner, self.rank + 2 * n, bias=False)
        self.dt_proj = nn.Linear(self.rank, inner, bias=True)
        self.A_log = nn.Parameter(torch.zeros(inner, n))
        self.D = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, c.n_embd, bias=False)

    def forward(self, u, state=None):
        # state: this layer's entry of a HybridCache (the last d_conv - 1 convolution inputs
        # and the scan state), or None to start from zeros.
        b, t, _ = u.shape
        x, z = self.in_proj(u).chunk(2, dim=-1)
        k = self.conv1d.kernel_size[0]
        xt = x.transpose(1, 2)
        before = state["conv"] if state is not None and "conv" in state else xt.new_zeros(b, xt.shape[1], k - 1)
        window = torch.cat((before, xt), dim=2)
        x = F.silu(F.conv1d(window, self.conv1d.weight, self.conv1d.bias, groups=xt.shape[1]).transpose(1, 2))
        dt, bm, cm = self.x_proj(x).split([self.rank, self.n, self.n], dim=-1)
        delta = F.softplus(self.dt_proj(dt))
        a = -torch.exp(self.A_log)
        h = state["h"] if state is not None and "h" in state else x.new_zeros(b, x.shape[-1], self.n)
        ys = []
        for i in range(t):
            h = torch.exp(delta[:, i, :, None] * a) * h + (delta[:, i, :, None] * x[:, i, :, None]) * bm[:, i, None, :]
            ys.append((h * cm[:, i, None, :]).sum(-1))
        if state is not None:
            state["conv"], state["h"] = window[..., window.shape[2] - (k - 1):], h
        y = (torch.stack(ys, dim=1) + x * self.D) * F.silu(z)
        return self.out_proj(y)


class Block(nn.Module):
    def __init__(self, c, kind):
        super().__init__()
        self.kind, self.eps = kind, c.rms_norm_eps
        if kind == "T":
            self.attn, self.mlp = Attention(c), MLP(c)
        else:
            self.mixer = Mixer(c)
            self.mlp = MLP(c) if c.mamba_use_mlp else None

    def forward(self, x, cos, sin, state=None):
        if self.kind == "T":
            x = x + self.attn(rms_norm(x, self.eps), cos, sin, state)
        else:
            x = x + self.mixer(rms_norm(x, self.eps), state)
        if self.mlp is not None:
            x = x + self.mlp(rms_norm(x, self.eps))
        return x


class HybridCache:
    """What decoding keeps between steps, per layer: attention's keys and values, or a Mamba
    layer's last convolution inputs and scan state; and the positions read so far."""

    is_compileable = False

    def __init__(self, n_layer):
        self.layers = [dict() for _ in range(n_layer)]
        self.length = 0

    def get_seq_length(self, layer_idx=0):
        return self.length

    def reorder_cache(self, beam_idx):
        for layer in self.layers:
            for key in layer:
                layer[key] = layer[key].index_select(0, beam_idx.to(layer[key].device))


class NanochatHybridForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = NanochatHybridConfig
    base_model_prefix = ""
    _no_split_modules = ["Block"]
    # The Mamba layers' state cannot be cut back to an earlier position (as assisted
    # decoding would need), and the cache is this model's own.
    _is_stateful = True

    @classmethod
    def _supports_default_dynamic_cache(cls):
        return False  # forward makes a HybridCache on the first step


    def __init__(self, config):
        super().__init__(config)
        kinds = ["T" if k.upper() in ("T", "TRANSFORMER") else "M" for k in config.block_pattern]
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            h=nn.ModuleList(Block(config, k) for k in kinds),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.post_init()

    def _init_weights(self, module):
        pass  # weights come from the checkpoint

    def get_input_embeddings(self):
        return self.transformer.wte

    def rotary(self, start, t, device, dtype):
        hd = self.config.n_embd // self.config.n_head
        j = torch.arange(hd // 2, dtype=torch.float64, device=device)
        positions = torch.arange(start, start + t, dtype=torch.float64, device=device)
        angles = positions[:, None] * self.config.rope_theta ** (-2 * j / hd)
        return angles.cos()[None, :, None, :].to(dtype), angles.sin()[None, :, None, :].to(dtype)

    def forward(self, input_ids, attention_mask=None, cache=None, past_key_values=None, use_cache=None, labels=None, **kwargs):
        if attention_mask is not None:
            # Padding is read as text by the Mamba layers' scan: only a mask of ones (or zeros
            # after the last one, on the right) is accepted.
            mask = attention_mask.bool()
            if (mask[:, 1:] & ~mask[:, :-1]).any():
                raise ValueError("this model cannot skip padding before or inside a sequence (the Mamba scan reads every "
                                 "position): generate sequences of different lengths one at a time, or pad on the right")
        cache = cache if cache is not None else past_key_values
        if cache is not None and not isinstance(cache, HybridCache):
            raise TypeError(f"this model keeps its own cache (HybridCache), not {type(cache).__name__}: leave the cache out")
        if cache is None and use_cache:
            cache = HybridCache(len(self.transformer.h))
        start = cache.length if cache is not None else 0
        t = input_ids.shape[1]
        if start + t > self.config.sequence_len:
            raise ValueError(f"{start + t} positions are more than this model's context of {self.config.sequence_len}")
        eps = self.config.rms_norm_eps
        x = rms_norm(self.transformer.wte(input_ids), eps)
        cos, sin = self.rotary(start, t, x.device, x.dtype)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cos, sin, cache.layers[i] if cache is not None else None)
        if cache is not None:
            cache.length = start + t
        logits = self.lm_head(rms_norm(x, eps))
        cap = self.config.logit_softcap
        if cap:
            logits = cap * torch.tanh(logits / cap)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, **{CACHE: cache if use_cache else None})

    def prepare_inputs_for_generation(self, input_ids, cache=None, past_key_values=None, attention_mask=None, use_cache=True, **kwargs):
        # The prompt once, then only the tokens the cache has not read.
        cache = cache if cache is not None else past_key_values
        if cache is not None and use_cache:
            input_ids = input_ids[:, cache.length:]
        return {"input_ids": input_ids, "attention_mask": attention_mask, CACHE: cache, "use_cache": use_cache}
