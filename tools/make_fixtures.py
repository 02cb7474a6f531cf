#!/usr/bin/env python3
"""Writes the PyTorch-agreement fixtures the Blocks tests compare against.

For each tiny model: `nanochat init` writes a checkpoint of ours; this script loads it,
moves every weight off its initial value with seeded noise (zero projections would hide
whole gradient paths), builds the same model in PyTorch (float64, written here from
SPEC.md, independent of the Swift code), and saves one safetensors file holding the
weights, token ids, targets, logits, loss and the gradient of the loss for every
parameter. The model_config rides in the file's metadata.

Needs torch and safetensors (pip); CI does not run this. Regenerate with:
    swift build -c release --product nanochat && python3 tools/make_fixtures.py
"""
import json, math, os, subprocess, sys, tempfile
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "BlocksTests", "Fixtures")
EPS = 1.1920929e-07   # float32 machine epsilon, torch's rms_norm default
SOFTCAP = 15.0

# name: (block_pattern, n_head, n_kv_head, mamba_use_mlp)
MODELS = {
    "transformer": (["T", "T"], 4, 4, False),
    "transformer_gqa": (["T", "T"], 4, 2, False),
    "mamba": (["M", "M"], 4, 4, False),
    "mamba_mlp": (["M", "M"], 4, 4, True),
    "hybrid": (["T", "M", "M", "T"], 4, 2, False),
}
C, V, SEQ, B, T_LEN = 32, 64, 16, 2, 12
D_STATE, D_CONV, EXPAND = 8, 4, 2


def rms_norm(x):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS)


def rotary(x, offset=0):
    # x: (B, T, heads, hd); pairs (j, j + hd/2) rotated by t · 10000^(-2j/hd)
    hd = x.shape[-1]
    half = hd // 2
    inv = 10000.0 ** (-torch.arange(half, dtype=torch.float64) * 2 / hd)
    f = (torch.arange(x.shape[1], dtype=torch.float64) + offset)[:, None] * inv[None, :]
    # The tables in float64 for the float64 model; in float32 otherwise (a float32 model,
    # or bf16 activations under autocast, which the float32 tables promote back).
    table = torch.float64 if x.dtype == torch.float64 else torch.float32
    cos, sin = f.cos().to(table)[None, :, None, :], f.sin().to(table)[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos + x2 * sin, -x1 * sin + x2 * cos], dim=-1)


def attention(x, p, pre, cfg):
    b, t, _ = x.shape
    h, kv = cfg["n_head"], cfg["n_kv_head"]
    hd = C // h
    q = (x @ p[pre + "attn.c_q.weight"].T).view(b, t, h, hd)
    k = (x @ p[pre + "attn.c_k.weight"].T).view(b, t, kv, hd)
    v = (x @ p[pre + "attn.c_v.weight"].T).view(b, t, kv, hd)
    q, k = rms_norm(rotary(q)), rms_norm(rotary(k))
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    k = k.repeat_interleave(h // kv, dim=1)   # query head i reads kv head i // (H/KV)
    v = v.repeat_interleave(h // kv, dim=1)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
    mask = torch.ones(t, t, dtype=torch.bool).tril()
    y = scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v
    return y.transpose(1, 2).reshape(b, t, C) @ p[pre + "attn.c_proj.weight"].T


def mlp(x, p, pre):
    return F.relu(x @ p[pre + "mlp.c_fc.weight"].T).square() @ p[pre + "mlp.c_proj.weight"].T


def mamba_mixer(u, p, pre):
    m = pre + "mixer."
    b, t, _ = u.shape
    di, n, k = EXPAND * C, D_STATE, D_CONV
    r = math.ceil(C / 16)
    xz = u @ p[m + "in_proj.weight"].T
    x, z = xz[..., :di], xz[..., di:]
    w, cb = p[m + "conv1d.weight"], p[m + "conv1d.bias"]            # (Di, 1, K), (Di)
    xc = F.conv1d(x.transpose(1, 2), w, cb, padding=k - 1, groups=di)[..., :t].transpose(1, 2)
    xc = F.silu(xc)
    dbc = xc @ p[m + "x_proj.weight"].T
    dt, bm, cm = dbc[..., :r], dbc[..., r:r + n], dbc[..., r + n:]
    delta = F.softplus(dt @ p[m + "dt_proj.weight"].T + p[m + "dt_proj.bias"])
    a = -torch.exp(p[m + "A_log"])                                   # (Di, N)
    h = torch.zeros(b, di, n, dtype=u.dtype)
    ys = []
    for ti in range(t):   # the sequential scan, as selective_scan_ref
        h = torch.exp(delta[:, ti, :, None] * a) * h + delta[:, ti, :, None] * bm[:, ti, None, :] * xc[:, ti, :, None]
        ys.append((h * cm[:, ti, None, :]).sum(-1) + p[m + "D"] * xc[:, ti])
    y = torch.stack(ys, dim=1) * F.silu(z)
    return y @ p[m + "out_proj.weight"].T


def forward(p, cfg, idx, targets):
    x = rms_norm(p["transformer.wte.weight"][idx])
    for i, kind in enumerate(cfg["block_pattern"]):
        pre = f"transformer.h.{i}."
        if kind == "T":
            x = x + attention(rms_norm(x), p, pre, cfg)
            x = x + mlp(rms_norm(x), p, pre)
        else:
            x = x + mamba_mixer(rms_norm(x), p, pre)
            if cfg["mamba_use_mlp"]:
                x = x + mlp(rms_norm(x), p, pre)
    logits = SOFTCAP * torch.tanh((rms_norm(x) @ p["lm_head.weight"].T) / SOFTCAP)
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
    return logits, loss


def main():
    nanochat = os.path.join(ROOT, ".build", "release", "nanochat")
    if not os.path.exists(nanochat):
        sys.exit("build first: swift build -c release --product nanochat")
    os.makedirs(OUT, exist_ok=True)
    for seed, (name, (pattern, h, kv, use_mlp)) in enumerate(MODELS.items()):
        with tempfile.TemporaryDirectory() as tmp:
            cfg_path = os.path.join(tmp, "tiny.py")
            with open(cfg_path, "w") as f:
                f.write(f"depth = {len(pattern)}\nn_embd = {C}\nn_head = {h}\nn_kv_head = {kv}\n"
                        f"vocab_size = {V}\nmax_seq_len = {SEQ}\nblock_pattern = {json.dumps(pattern)}\n"
                        f"mamba_d_state = {D_STATE}\nmamba_d_conv = {D_CONV}\nmamba_expand = {EXPAND}\n"
                        f"mamba_use_mlp = {use_mlp}\nseed = {100 + seed}\n")
            subprocess.run([nanochat, "init", cfg_path, "--out", tmp], check=True, capture_output=True)
            weights = load_file(os.path.join(tmp, "model_000000.safetensors"))
            cfg = json.load(open(os.path.join(tmp, "meta_000000.json")))["model_config"]
        g = torch.Generator().manual_seed(1000 + seed)
        params = {}
        for key, w in weights.items():
            noise = 0.2 * torch.randn(w.shape, generator=g, dtype=torch.float64)
            params[key] = (w.double() + noise).float()   # the weights both sides use: float32
        p64 = {k: v.double().requires_grad_(True) for k, v in params.items()}
        idx = torch.randint(0, V, (B, T_LEN), generator=g)
        targets = torch.randint(0, V, (B, T_LEN), generator=g)
        targets[0, 3] = -1   # one ignored target
        logits, loss = forward(p64, cfg, idx, targets)
        loss.backward()
        out = {f"param.{k}": v.contiguous() for k, v in params.items()}
        out["idx"] = idx.float()
        out["targets"] = targets.float()
        out["logits"] = logits.detach().float().contiguous()
        out["loss"] = loss.detach().float().reshape(1)
        for k, v in p64.items():
            out[f"grad.{k}"] = v.grad.float().contiguous()
        path = os.path.join(OUT, f"{name}.safetensors")
        save_file(out, path, metadata={"model_config": json.dumps(cfg), "torch": torch.__version__})
        print(f"{path}: loss {loss.item():.6f}, {len(params)} parameters")


if __name__ == "__main__":
    main()
