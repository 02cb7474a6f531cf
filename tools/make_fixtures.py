#!/usr/bin/env python3
"""Writes the PyTorch-agreement fixtures the Blocks tests compare against.

For each tiny model: `nanochat init` writes a checkpoint of ours; this script loads it,
moves every weight off its initial value with seeded noise (zero projections would hide
whole gradient paths), runs the same model in PyTorch (float64, tools/reference_model.py:
written from SPEC.md, independent of the Swift code), and saves one safetensors file holding the
weights, token ids, targets, logits, loss and the gradient of the loss for every
parameter. The model_config rides in the file's metadata.

Needs torch and safetensors (pip); CI does not run this. Regenerate with:
    swift build -c release --product nanochat && python3 tools/make_fixtures.py
"""
import json, os, subprocess, sys, tempfile
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_model import forward   # noqa: E402  the tools' one PyTorch model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "BlocksTests", "Fixtures")
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
