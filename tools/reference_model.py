"""The one PyTorch model the tools share: nanochat's GPT with a Transformer or a Mamba-1 block
per layer (SPEC.md), written from the spec, independent of the Swift code.

The model is a function of a dict of weights under the checkpoint's names
(`transformer.wte.weight`, `transformer.h.{i}.attn.c_q.weight`, `...mixer.A_log`,
`lm_head.weight`) and of the checkpoint's `model_config`, so the same code
- checks our numbers in float64 (tools/make_fixtures.py: the sequential scan, attention
  written out, the reference the Blocks tests compare against),
- gives autocast's bf16 numbers (tools/make_autocast_fixture.py),
- and trains as a PyTorch user would write it fast (tools/torch_bench.py: the weights as
  nn.Parameters, F.scaled_dot_product_attention, the scan as a Hillis-Steele doubling scan).
Needs torch (pip); CI does not run it.
"""
import math
import torch
import torch.nn.functional as F

EPS = 1.1920929e-07   # float32 machine epsilon, torch's rms_norm default (nanochat's)
SOFTCAP = 15.0


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


def attention(x, p, pre, cfg, fast=False):
    b, t, c = x.shape
    h, kv = cfg["n_head"], cfg["n_kv_head"]
    hd = c // h
    q = (x @ p[pre + "attn.c_q.weight"].T).view(b, t, h, hd)
    k = (x @ p[pre + "attn.c_k.weight"].T).view(b, t, kv, hd)
    v = (x @ p[pre + "attn.c_v.weight"].T).view(b, t, kv, hd)
    q, k = rms_norm(rotary(q)), rms_norm(rotary(k))
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    k = k.repeat_interleave(h // kv, dim=1)   # query head i reads kv head i // (H/KV)
    v = v.repeat_interleave(h // kv, dim=1)
    if fast:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        y = scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v
    return y.transpose(1, 2).reshape(b, t, c) @ p[pre + "attn.c_proj.weight"].T


def mlp(x, p, pre):
    return F.relu(x @ p[pre + "mlp.c_fc.weight"].T).square() @ p[pre + "mlp.c_proj.weight"].T


def doubling_scan(a, b):
    """h_t = a_t * h_{t-1} + b_t along dim 1 with h_{-1} = 0, in log2(T) doubling steps."""
    t, step = a.shape[1], 1
    while step < t:
        b = torch.cat([b[:, :step], a[:, step:] * b[:, :-step] + b[:, step:]], dim=1)
        a = torch.cat([a[:, :step], a[:, step:] * a[:, :-step]], dim=1)
        step *= 2
    return b


def mamba_mixer(u, p, pre, cfg, fast=False):
    m = pre + "mixer."
    b, t, c = u.shape
    di, n, k = cfg["mamba_expand"] * c, cfg["mamba_d_state"], cfg["mamba_d_conv"]
    r = math.ceil(c / 16)
    xz = u @ p[m + "in_proj.weight"].T
    x, z = xz[..., :di], xz[..., di:]
    w, cb = p[m + "conv1d.weight"], p[m + "conv1d.bias"]            # (Di, 1, K), (Di)
    xc = F.conv1d(x.transpose(1, 2), w, cb, padding=k - 1, groups=di)[..., :t].transpose(1, 2)
    xc = F.silu(xc)
    dbc = xc @ p[m + "x_proj.weight"].T
    dt, bm, cm = dbc[..., :r], dbc[..., r:r + n], dbc[..., r + n:]
    delta = F.softplus(dt @ p[m + "dt_proj.weight"].T + p[m + "dt_proj.bias"])
    a = -torch.exp(p[m + "A_log"])                                   # (Di, N)
    if fast:
        hs = doubling_scan(torch.exp(delta[..., None] * a), delta[..., None] * bm[:, :, None, :] * xc[..., None])
        y = (hs * cm[:, :, None, :]).sum(-1) + p[m + "D"] * xc
    else:
        h = torch.zeros(b, di, n, dtype=u.dtype)
        ys = []
        for ti in range(t):   # the sequential scan, as selective_scan_ref
            h = torch.exp(delta[:, ti, :, None] * a) * h + delta[:, ti, :, None] * bm[:, ti, None, :] * xc[:, ti, :, None]
            ys.append((h * cm[:, ti, None, :]).sum(-1) + p[m + "D"] * xc[:, ti])
        y = torch.stack(ys, dim=1)
    return (y * F.silu(z)) @ p[m + "out_proj.weight"].T


def forward(p, cfg, idx, targets, fast=False):
    """Logits (softcapped) and the mean cross-entropy over targets other than -1. `fast`:
    the bench's kernels (SDPA, the doubling scan) instead of the reference's loops."""
    x = rms_norm(p["transformer.wte.weight"][idx])
    for i, kind in enumerate(cfg["block_pattern"]):
        pre = f"transformer.h.{i}."
        if kind == "T":
            x = x + attention(rms_norm(x), p, pre, cfg, fast)
            x = x + mlp(rms_norm(x), p, pre)
        else:
            x = x + mamba_mixer(rms_norm(x), p, pre, cfg, fast)
            if cfg["mamba_use_mlp"]:
                x = x + mlp(rms_norm(x), p, pre)
    logits = SOFTCAP * torch.tanh((rms_norm(x) @ p["lm_head.weight"].T) / SOFTCAP)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)
    return logits, loss


def init_weights(cfg, generator=None):
    """Fresh float32 weights under the checkpoint's names, at nn.Linear's scale (the bench
    times steps; the value of the init does not matter there)."""
    c, v = cfg["n_embd"], cfg["vocab_size"]
    di, n, k = cfg["mamba_expand"] * c, cfg["mamba_d_state"], cfg["mamba_d_conv"]
    r = math.ceil(c / 16)

    def linear(out_f, in_f):
        return (torch.rand(out_f, in_f, generator=generator) * 2 - 1) / math.sqrt(in_f)

    p = {"transformer.wte.weight": torch.randn(v, c, generator=generator), "lm_head.weight": linear(v, c)}
    hd = c // cfg["n_head"]
    for i, kind in enumerate(cfg["block_pattern"]):
        pre = f"transformer.h.{i}."
        if kind == "T":
            p[pre + "attn.c_q.weight"] = linear(c, c)
            p[pre + "attn.c_k.weight"] = linear(cfg["n_kv_head"] * hd, c)
            p[pre + "attn.c_v.weight"] = linear(cfg["n_kv_head"] * hd, c)
            p[pre + "attn.c_proj.weight"] = linear(c, c)
        else:
            m = pre + "mixer."
            p[m + "in_proj.weight"] = linear(2 * di, c)
            p[m + "conv1d.weight"] = linear(di, k).reshape(di, 1, k)
            p[m + "conv1d.bias"] = torch.zeros(di)
            p[m + "x_proj.weight"] = linear(r + 2 * n, di)
            p[m + "dt_proj.weight"] = linear(di, r)
            p[m + "dt_proj.bias"] = torch.zeros(di)
            p[m + "A_log"] = torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(di, 1)
            p[m + "D"] = torch.ones(di)
            p[m + "out_proj.weight"] = linear(c, di)
        if kind == "T" or cfg["mamba_use_mlp"]:
            p[pre + "mlp.c_fc.weight"] = linear(4 * c, c)
            p[pre + "mlp.c_proj.weight"] = linear(c, 4 * c)
    return p


def check_fixtures(root):
    """The reference reproduces each committed fixture's logits, and the bench's fast kernels
    agree with it in float64. Returns the worst difference."""
    import glob, json, os
    from safetensors import safe_open
    from safetensors.torch import load_file
    worst = 0.0
    for path in sorted(glob.glob(os.path.join(root, "Tests", "BlocksTests", "Fixtures", "*.safetensors"))):
        tensors = load_file(path)
        if "logits" not in tensors:
            continue
        cfg = json.loads(safe_open(path, "pt").metadata()["model_config"])
        p = {k[len("param."):]: v.double() for k, v in tensors.items() if k.startswith("param.")}
        idx, targets = tensors["idx"].long(), tensors["targets"].long()
        with torch.no_grad():
            ref, _ = forward(p, cfg, idx, targets)
            fast, _ = forward(p, cfg, idx, targets, fast=True)
        stored = (ref.float() - tensors["logits"]).abs().max().item()
        kernels = (ref - fast).abs().max().item()
        worst = max(worst, stored, kernels)
        print(f"{os.path.basename(path)}: reference vs fixture {stored:.1e}, fast kernels vs reference {kernels:.1e}")
    return worst


def check_export(folder):
    """A hybrid folder of `nanochat export --format hf` (our names, the shipped modeling
    file): its weights and config.json through this model give the logits the export wrote
    (reference.safetensors), which tools/hf_check.py holds the modeling file to. Returns the
    largest difference relative to the largest logit."""
    import json, os
    from safetensors.torch import load_file
    cfg = json.load(open(os.path.join(folder, "config.json")))
    if cfg.get("model_type") != "nanochat_hybrid":
        raise SystemExit(f"{folder}: model_type {cfg.get('model_type')}; this check reads hybrid folders (our names)")
    ref = json.load(open(os.path.join(folder, "reference.json")))
    ours = load_file(os.path.join(folder, "reference.safetensors"))["logits"].double()
    p = {k: v.double() for k, v in load_file(os.path.join(folder, "model.safetensors")).items()}
    rows = torch.tensor(ref["rows"])
    with torch.no_grad():
        logits, _ = forward(p, cfg, rows, torch.full_like(rows, -1))
    err = ((logits - ours).abs().max() / ours.abs().max()).item()
    print(f"{folder}: this model's logits vs the export's reference: {err:.1e} relative")
    return err


if __name__ == "__main__":
    # python3 tools/reference_model.py            the fixtures' self-check
    # python3 tools/reference_model.py HF_FOLDER   a hybrid export's weights against its reference
    import os, sys
    if len(sys.argv) > 1:
        raise SystemExit(0 if check_export(sys.argv[1]) < 1e-4 else 1)
    raise SystemExit(0 if check_fixtures(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) < 1e-6 else 1)
