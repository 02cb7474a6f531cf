#!/usr/bin/env python3
"""Writes the fixture that bf16 products are checked against: a depth-4 hybrid model's logits
under PyTorch's `torch.autocast("cpu", dtype=torch.bfloat16)`, and in float64, on the same
float32 weights.

The model is tools/reference_model.py's (written from SPEC.md, independent of the Swift code),
run on float32 weights inside autocast, as a PyTorch user gets it: matrix products (and the
Mamba convolution) take bf16 operands and give bf16 outputs, everything else stays float32.
Ours keeps the products' outputs in fp32, so its bf16 logits should be at least as close to
the float64 ones as autocast's; the test checks that, and that ours and autocast's agree.

Needs torch and safetensors (pip); CI does not run this. Regenerate with:
    swift build -c release --product nanochat && python3 tools/make_autocast_fixture.py
"""
import json, os, subprocess, sys, tempfile
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as fixtures   # noqa: E402  where fixtures go, the Mamba sizes
from reference_model import forward   # noqa: E402  the tools' one PyTorch model

PATTERN = ["T", "M", "M", "T"]
C, V = 64, 128
B, T_LEN = 2, 32


def main():
    nanochat = os.path.join(fixtures.ROOT, ".build", "release", "nanochat")
    if not os.path.exists(nanochat):
        sys.exit("build first: swift build -c release --product nanochat")
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = os.path.join(tmp, "d4.py")
        with open(cfg_path, "w") as f:
            f.write(f"depth = 4\nn_embd = {C}\nn_head = 2\nvocab_size = {V}\nmax_seq_len = {T_LEN}\n"
                    f"block_pattern = {json.dumps(PATTERN)}\nmamba_d_state = {fixtures.D_STATE}\n"
                    f"mamba_d_conv = {fixtures.D_CONV}\nmamba_expand = {fixtures.EXPAND}\nseed = 7\n")
        subprocess.run([nanochat, "init", cfg_path, "--out", tmp], check=True, capture_output=True)
        weights = load_file(os.path.join(tmp, "model_000000.safetensors"))
        cfg = json.load(open(os.path.join(tmp, "meta_000000.json")))["model_config"]
    g = torch.Generator().manual_seed(2024)
    params = {k: (w.double() + 0.2 * torch.randn(w.shape, generator=g, dtype=torch.float64)).float()
              for k, w in weights.items()}
    idx = torch.randint(0, V, (B, T_LEN), generator=g)
    targets = torch.randint(0, V, (B, T_LEN), generator=g)
    with torch.no_grad():
        logits64, loss64 = forward({k: v.double() for k, v in params.items()}, cfg, idx, targets)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits_bf16, loss_bf16 = forward(params, cfg, idx, targets)
    out = {f"param.{k}": v.contiguous() for k, v in params.items()}
    out["idx"] = idx.float()
    out["logits_float64"] = logits64.float().contiguous()
    out["logits_autocast"] = logits_bf16.float().contiguous()
    path = os.path.join(fixtures.OUT, "autocast_d4.safetensors")
    save_file(out, path, metadata={"model_config": json.dumps(cfg), "torch": torch.__version__})
    err = (logits_bf16.double() - logits64).abs().max().item()
    print(f"{path}: autocast logits within {err:.4f} of float64 (loss {loss_bf16.item():.5f} vs {loss64.item():.5f})")


if __name__ == "__main__":
    main()
