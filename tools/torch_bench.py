#!/usr/bin/env python3
"""The PyTorch side of `bench model --torch`: the same model, shapes and timing, in eager
PyTorch on the CPU, so the benchmark can print our speed as a ratio of PyTorch's in one run.

Written from SPEC.md (float32, nanochat's GPT with Transformer or Mamba-1 blocks per layer,
softcapped logits), the way a PyTorch user would write it: F.scaled_dot_product_attention
for attention, and the selective scan as a vectorised Hillis-Steele scan over time (log2 T
doubling steps on (B, T, Di, N) tensors), PyTorch having no selective-scan kernel on the CPU.
The train step is forward, backward and torch.optim.AdamW (betas 0.8, 0.95, eps 1e-10).

    python3 tools/torch_bench.py --pattern TTMM --batch 4 --seq 256 --runs 3 --threads 2
prints one JSON object: tokens/s of the train step and of the forward pass, with the
seconds of every run. With --serve it builds the model, prints {"ready": ...} and then
runs one train step per line "step" read from stdin, answering each with
{"seconds": s}, until stdin closes: `bench model --torch` drives it this way, round by
round between its own steps, so that a slow spell of the shared machine falls on both
sides of each round's ratio. Needs torch (pip); CI does not run this.
"""
import argparse, json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1.1920929e-07   # float32 epsilon, torch's rms_norm default as nanochat
SOFTCAP = 15.0


def rms_norm(x):
    return F.rms_norm(x, (x.shape[-1],), eps=EPS)


class Rotary:
    def __init__(self, t, hd):
        half = hd // 2
        inv = 10000.0 ** (-torch.arange(half, dtype=torch.float32) * 2 / hd)
        f = torch.arange(t, dtype=torch.float32)[:, None] * inv[None, :]
        self.cos, self.sin = f.cos()[None, :, None, :], f.sin()[None, :, None, :]

    def __call__(self, x):
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * self.cos + x2 * self.sin, -x1 * self.sin + x2 * self.cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        self.h, self.hd = h, c // h
        self.c_q, self.c_k, self.c_v, self.c_proj = (nn.Linear(c, c, bias=False) for _ in range(4))

    def forward(self, x, rot):
        b, t, c = x.shape
        q = rms_norm(rot(self.c_q(x).view(b, t, self.h, self.hd))).transpose(1, 2)
        k = rms_norm(rot(self.c_k(x).view(b, t, self.h, self.hd))).transpose(1, 2)
        v = self.c_v(x).view(b, t, self.h, self.hd).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc, self.c_proj = nn.Linear(c, 4 * c, bias=False), nn.Linear(4 * c, c, bias=False)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)).square())


def hillis_steele_scan(a, b):
    """h_t = a_t * h_{t-1} + b_t along dim 1 with h_{-1} = 0, in log2(T) doubling steps."""
    t, step = a.shape[1], 1
    while step < t:
        b = torch.cat([b[:, :step], a[:, step:] * b[:, :-step] + b[:, step:]], dim=1)
        a = torch.cat([a[:, :step], a[:, step:] * a[:, :-step]], dim=1)
        step *= 2
    return b


class Mamba(nn.Module):
    def __init__(self, c, d_state=16, d_conv=4, expand=2):
        super().__init__()
        di, self.r, self.n = expand * c, math.ceil(c / 16), d_state
        self.in_proj = nn.Linear(c, 2 * di, bias=False)
        self.conv1d = nn.Conv1d(di, di, d_conv, groups=di, padding=d_conv - 1)
        self.x_proj = nn.Linear(di, self.r + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.r, di, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(di, 1))
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, c, bias=False)

    def forward(self, u):
        b, t, _ = u.shape
        x, z = self.in_proj(u).chunk(2, dim=-1)
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :t].transpose(1, 2))
        dt, bm, cm = self.x_proj(x).split([self.r, self.n, self.n], dim=-1)
        delta = F.softplus(self.dt_proj(dt))                                     # (B, T, Di)
        a = torch.exp(delta[..., None] * -torch.exp(self.A_log))                 # (B, T, Di, N)
        h = hillis_steele_scan(a, delta[..., None] * bm[:, :, None, :] * x[..., None])
        y = (h * cm[:, :, None, :]).sum(-1) + self.D * x
        return self.out_proj(y * F.silu(z))


class GPT(nn.Module):
    def __init__(self, pattern, vocab, c, h):
        super().__init__()
        self.pattern = pattern
        self.wte = nn.Embedding(vocab, c)
        self.h = nn.ModuleList()
        for kind in pattern:
            self.h.append(nn.ModuleDict({"attn": Attention(c, h), "mlp": MLP(c)}) if kind == "T"
                          else nn.ModuleDict({"mixer": Mamba(c)}))
        self.lm_head = nn.Linear(c, vocab, bias=False)
        self.hd = c // h

    def forward(self, idx, targets):
        rot = Rotary(idx.shape[1], self.hd)
        x = rms_norm(self.wte(idx))
        for kind, block in zip(self.pattern, self.h):
            if kind == "T":
                x = x + block["attn"](rms_norm(x), rot)
                x = x + block["mlp"](rms_norm(x))
            else:
                x = x + block["mixer"](rms_norm(x))
        logits = SOFTCAP * torch.tanh(self.lm_head(rms_norm(x)) / SOFTCAP)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


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
    model = GPT(args.pattern, args.vocab, c, h)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.8, 0.95), eps=1e-10, weight_decay=0.0)
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
