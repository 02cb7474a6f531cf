#!/usr/bin/env python3
"""The PyTorch side of `bench model --torch`: the same model, shapes and timing, in eager
PyTorch on the CPU, so the benchmark can print our speed as a ratio of PyTorch's in one run.

The model is tools/reference_model.py's (the one the fixtures check us against: float32,
nanochat's GPT with Transformer or Mamba-1 blocks per layer, softcapped logits), with the
kernels a PyTorch user would reach for: F.scaled_dot_product_attention for attention, and the
selective scan as a vectorised Hillis-Steele scan over time (log2 T doubling steps on
(B, T, Di, N) tensors), PyTorch having no selective-scan kernel on the CPU.
The train step is forward, backward and torch.optim.AdamW (betas 0.8, 0.95, eps 1e-10).

    python3 tools/torch_bench.py --pattern TTMM --batch 4 --seq 256 --runs 3 --threads 2
prints one JSON object: tokens/s of the train step and of the forward pass, with the
seconds of every run. With --serve it builds the model, prints {"ready": ...} and then
runs one train step per line "step" read from stdin, answering each with
{"seconds": s}, until stdin closes: `bench model --torch` drives it this way, round by
round between its own steps, so that a slow spell of the shared machine falls on both
sides of each round's ratio. Needs torch (pip); CI does not run this.
"""
import argparse, json, os, sys, time
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_model import forward as reference_forward, init_weights   # noqa: E402  the tools' one PyTorch model

def timed(fn, runs):
    fn()   # warm-up
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pattern", required=True, help="one letter per layer, T or M")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--serve", action="store_true", help="time one train step per 'step' line on stdin")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="bfloat16: forward under torch.autocast('cpu', dtype=torch.bfloat16), as a PyTorch user would")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    depth = len(args.pattern)
    c = depth * 64                       # nanochat: model_dim = depth * aspect ratio 64
    h = max(1, (c + 127) // 128)         # head_dim 128
    cfg = {"n_embd": c, "n_head": h, "n_kv_head": h, "vocab_size": args.vocab, "block_pattern": list(args.pattern),
           "mamba_d_state": 16, "mamba_d_conv": 4, "mamba_expand": 2, "mamba_use_mlp": False}
    weights = {k: torch.nn.Parameter(v) for k, v in init_weights(cfg).items()}
    opt = torch.optim.AdamW(weights.values(), lr=1e-4, betas=(0.8, 0.95), eps=1e-10, weight_decay=0.0)

    def model(idx, targets):
        return reference_forward(weights, cfg, idx, targets, fast=True)[1]
    idx = torch.randint(0, args.vocab, (args.batch, args.seq))
    targets = torch.randint(0, args.vocab, (args.batch, args.seq))

    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")

    def train_step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = model(idx, targets)
        loss.backward()
        opt.step()

    def forward():
        with torch.no_grad(), autocast():
            model(idx, targets)

    if args.serve:
        print(json.dumps({"ready": torch.__version__}), flush=True)
        for line in sys.stdin:
            if line.strip() != "step":
                continue
            t0 = time.perf_counter()
            train_step()
            print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)
        return

    tokens = args.batch * args.seq
    train = timed(train_step, args.runs)
    fwd = timed(forward, args.runs)
    med = lambda xs: sorted(xs)[len(xs) // 2]
    print(json.dumps({"torch": torch.__version__, "train_tok_s": tokens / med(train), "forward_tok_s": tokens / med(fwd),
                      "train_seconds": train, "forward_seconds": fwd}))


if __name__ == "__main__":
    main()
