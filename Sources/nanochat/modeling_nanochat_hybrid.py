# A nanochat-swift model for transformers, loaded with trust_remote_code=True: each layer a
# Transformer block (rotary attention with QK norm, relu^2 MLP) or a Mamba-1 block (selective
# state space mixer, optionally followed by the MLP), chosen per layer by block_pattern, as
# nanochat-swift's docs/SPEC.md section 1.2 defines them. Written for clarity, in plain
# PyTorch: the scan runs step by step and generation recomputes the whole sequence.
# Parameter names are nanochat-swift's own (transformer.wte, transformer.h.{i}..., lm_head).

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput


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

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q = self.c_q(x).view(b, t, self.n_head, self.head_dim)
        k = self.c_k(x).view(b, t, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(b, t, self.n_kv_head, self.head_dim)
        q, k = rms_norm(rotate(q, cos, sin), self.eps), rms_norm(rotate(k, cos, sin), self.eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if self.n_kv_head != self.n_head:
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
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

    def forward(self, u):
        b, t, _ = u.shape
        x, z = self.in_proj(u).chunk(2, dim=-1)
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :t].transpose(1, 2))
        dt, bm, cm = self.x_proj(x).split([self.rank, self.n, self.n], dim=-1)
        delta = F.softplus(self.dt_proj(dt))
        a = -torch.exp(self.A_log)
        h = x.new_zeros(b, x.shape[-1], self.n)
        ys = []
        for i in range(t):
            h = torch.exp(delta[:, i, :, None] * a) * h + (delta[:, i, :, None] * x[:, i, :, None]) * bm[:, i, None, :]
            ys.append((h * cm[:, i, None, :]).sum(-1))
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

    def forward(self, x, cos, sin):
        if self.kind == "T":
            x = x + self.attn(rms_norm(x, self.eps), cos, sin)
        else:
            x = x + self.mixer(rms_norm(x, self.eps))
        if self.mlp is not None:
            x = x + self.mlp(rms_norm(x, self.eps))
        return x


class NanochatHybridForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = NanochatHybridConfig
    base_model_prefix = ""
    _no_split_modules = ["Block"]

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

    def rotary(self, t, device, dtype):
        hd = self.config.n_embd // self.config.n_head
        j = torch.arange(hd // 2, dtype=torch.float64, device=device)
        angles = torch.arange(t, dtype=torch.float64, device=device)[:, None] * self.config.rope_theta ** (-2 * j / hd)
        return angles.cos()[None, :, None, :].to(dtype), angles.sin()[None, :, None, :].to(dtype)

    def forward(self, input_ids, labels=None, **kwargs):
        eps = self.config.rms_norm_eps
        x = rms_norm(self.transformer.wte(input_ids), eps)
        cos, sin = self.rotary(input_ids.shape[1], x.device, x.dtype)
        for block in self.transformer.h:
            x = block(x, cos, sin)
        logits = self.lm_head(rms_norm(x, eps))
        cap = self.config.logit_softcap
        logits = cap * torch.tanh(logits / cap)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)

    def prepare_inputs_for_generation(self, input_ids, **kwargs):
        # No cache: every step runs the whole sequence.
        return {"input_ids": input_ids}
