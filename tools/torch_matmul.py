#!/usr/bin/env python3
"""PyTorch's matrix products at the shapes `bench kernels` times, in float32 and bfloat16
(oneDNN's kernels, AMX where the CPU has it): GFLOPS, median of --runs after a warm-up, for
docs/tensor.md's comparison of our bf16 kernels with a maintained library's. Inputs are
already in the product's dtype (ours round fp32 operands as they pack them, inside the time).

    python3 tools/torch_matmul.py --threads 16 --runs 7
Needs torch (pip); CI does not run this.
"""
import argparse, time
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads; {torch.backends.cpu.get_cpu_capability()}")
    print("| product | dtype | GFLOPS |\n|---|---|---:|")
    # (M, K, N, weight stored as nn.Linear's (N, K)), as bench kernels' bf16 table
    for m, k, n, linear in [(4096, 768, 3072, True), (4096, 3072, 768, True), (4096, 768, 3072, False), (4096, 768, 768, True)]:
        for dtype in (torch.float32, torch.bfloat16):
            a = torch.randn(m, k).to(dtype)
            b = torch.randn(n, k).to(dtype) if linear else torch.randn(k, n).to(dtype)
            f = (lambda: torch.nn.functional.linear(a, b)) if linear else (lambda: a @ b)
            f()
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                f()
                times.append(time.perf_counter() - t0)
            med = sorted(times)[len(times) // 2]
            name = f"{m}x{k} · ({n}x{k})ᵀ linear" if linear else f"{m}x{k} · {k}x{n}"
            print(f"| {name} | {str(dtype).replace('torch.', '')} | {2 * m * n * k / med / 1e9:.1f} |")


if __name__ == "__main__":
    main()
