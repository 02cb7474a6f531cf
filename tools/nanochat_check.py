#!/usr/bin/env python3
"""Checks our models against nanochat's own code (a checkout of nanochat whose GPT is the one
our Transformer blocks follow, given by --nanochat-src or NANOCHAT_SRC; nothing of it is kept
here).

  bpb    --base BASE --tag TAG --checkpoint CKPT --val SHARD
         BASE: `nanochat export --format nanochat` of CKPT, then `tools/nanochat_files.py pack`.
         nanochat's load_model and loss_eval.evaluate_bpb on the val shard's first batches
         (SPEC 3.2's order), against `nanochat eval` of CKPT on the same batches.
  make   --base BASE --tag TAG --text FILE
         A nanochat checkpoint made by nanochat alone: its rustbpe tokenizer trained on FILE,
         its GPT trained for a few steps with its own optimisers, saved by its
         save_checkpoint with the weights in bf16 (as a GPU run stores the embedding).
  sample --base BASE --tag TAG --checkpoint CKPT
         Greedy tokens from nanochat's Engine on BASE's checkpoint against `nanochat sample`
         on CKPT (BASE's checkpoint after `tools/nanochat_files.py unpack` and
         `nanochat import`).

Needs torch, tiktoken, rustbpe, tokenizers and filelock (pip); nothing here runs in CI.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch


def nanochat_modules(args):
    src = args.nanochat_src or os.environ.get("NANOCHAT_SRC")
    if not src or not os.path.isdir(os.path.join(src, "nanochat")):
        sys.exit("give --nanochat-src DIR (or NANOCHAT_SRC): a nanochat checkout")
    if args.fp32_rotary:
        src = float32_rotary_copy(src)
    sys.path.insert(0, src)
    os.environ["NANOCHAT_BASE_DIR"] = os.path.abspath(args.base)


def float32_rotary_copy(src):
    """A temporary copy of the checkout whose rotary tables stay in float32 (nanochat rounds
    them to bf16; ours are float32), to tell that rounding apart from any other difference."""
    import shutil
    import tempfile
    dst = os.path.join(tempfile.mkdtemp(prefix="nanochat-f32-rotary-"), "src")
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".git"))
    path = os.path.join(dst, "nanochat", "gpt.py")
    text = open(path).read()
    cast = "cos, sin = cos.bfloat16(), sin.bfloat16()"
    check = 'assert self.cos.dtype == torch.bfloat16, "Rotary embeddings must be in bfloat16"'
    if cast not in text or check not in text:
        sys.exit(f"{path}: the rotary tables' bf16 cast is not where this script expects it")
    open(path, "w").write(text.replace(cast, "pass").replace(check, "pass"))
    return dst


def read_shard(path):
    header = np.fromfile(path, dtype=np.int32, count=256)
    count = int(header[2])
    return np.fromfile(path, dtype=np.uint16, offset=256 * 4, count=count).astype(np.int64)


def ours(args, *command):
    out = subprocess.run([args.nanochat, *command], check=True, capture_output=True, text=True)
    return out.stdout


def bpb(args):
    nanochat_modules(args)
    from nanochat.checkpoint_manager import load_model
    from nanochat.loss_eval import evaluate_bpb
    from nanochat.tokenizer import get_token_bytes
    model, tokenizer, meta = load_model("base", torch.device("cpu"), phase="eval", model_tag=args.tag)
    tokens = torch.tensor(read_shard(args.val))
    B, T, n = args.batch, args.seq, args.batch * args.seq
    if len(tokens) < args.steps * (n + 1):
        sys.exit(f"{args.val}: {len(tokens)} tokens, fewer than {args.steps} batches of {B}x{T}+1")

    def batches():
        for i in range(args.steps):
            buf = tokens[i * (n + 1):(i + 1) * (n + 1)]
            yield buf[:-1].view(B, T), buf[1:].view(B, T)

    with torch.no_grad():
        theirs = evaluate_bpb(model, batches(), args.steps, get_token_bytes("cpu"))
    ours_eval = json.loads(ours(args, "eval", "--checkpoint", args.checkpoint, "--data", args.val, "--batch", str(B),
                                "--seq", str(T), "--steps", str(args.steps), "--json"))
    rel = abs(theirs - ours_eval["bpb"]) / ours_eval["bpb"]
    print(f"nanochat evaluate_bpb {theirs:.6f}, nanochat-swift eval {ours_eval['bpb']:.6f} "
          f"over {args.steps} batches of {B}x{T}: relative difference {rel:.2e}")
    # Where a difference comes from: the per-token losses of one batch.
    x, y = next(batches())
    with torch.no_grad():
        losses = model(x, y, loss_reduction="none").view(-1)
    print(f"nanochat mean loss of batch 0: {losses.mean().item():.6f}")
    return rel


def make(args):
    nanochat_modules(args)
    from nanochat.checkpoint_manager import save_checkpoint
    from nanochat.gpt import GPT, GPTConfig
    from nanochat.tokenizer import RustBPETokenizer
    torch.manual_seed(args.seed)
    text = open(args.text, encoding="utf-8").read()
    docs = [d for d in text.split("\n\n") if d.strip()]
    tokenizer = RustBPETokenizer.train_from_iterator(iter(docs), args.vocab)
    tokenizer_dir = os.path.join(args.base, "tokenizer")
    tokenizer.save(tokenizer_dir)
    bos = tokenizer.get_bos_token_id()
    ids = []
    for row in tokenizer.encode(docs, prepend=bos):
        ids.extend(row)
    tokens = torch.tensor(ids)
    config = GPTConfig(sequence_len=args.seq, vocab_size=tokenizer.get_vocab_size(), n_layer=args.depth,
                       n_head=args.heads, n_kv_head=args.heads, n_embd=args.width)
    model = GPT(config)
    model.init_weights()
    optimizers = model.setup_optimizers()
    B, T = args.batch, args.seq
    for step in range(args.steps):
        start = (step * B * (T + 1)) % (len(tokens) - B * (T + 1))
        buf = tokens[start:start + B * (T + 1)].view(B, T + 1)
        loss = model(buf[:, :-1].contiguous(), buf[:, 1:].contiguous())
        loss.backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
        if step % 20 == 0 or step == args.steps - 1:
            print(f"step {step:4d} loss {loss.item():.4f}")
    state = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}
    meta = {"step": args.steps, "model_config": config.__dict__, "user_config": vars(args)}
    save_checkpoint(os.path.join(args.base, "base_checkpoints", args.tag), args.steps, state, None, meta)


def sample(args):
    nanochat_modules(args)
    from nanochat.checkpoint_manager import load_model
    from nanochat.engine import Engine
    model, tokenizer, meta = load_model("base", torch.device("cpu"), phase="eval", model_tag=args.tag)
    prompt = [tokenizer.get_bos_token_id()] + tokenizer.encode(args.prompt)
    engine = Engine(model, tokenizer)
    theirs = []
    for column, _ in engine.generate(prompt, num_samples=1, max_tokens=args.tokens, temperature=0.0):
        theirs.append(column[0])
    ours_ids = [int(t) for t in ours(args, "sample", "--checkpoint", args.checkpoint, "--tokens", ",".join(map(str, prompt)),
                                     "--temperature", "0", "--max-new-tokens", str(len(theirs))).split()]
    same = 0
    while same < min(len(theirs), len(ours_ids)) and theirs[same] == ours_ids[same]:
        same += 1
    print(f"prompt {prompt}")
    print(f"nanochat Engine  {theirs}")
    print(f"nanochat-swift   {ours_ids}")
    print(f"{same} of {len(theirs)} greedy tokens equal; text: {tokenizer.decode(theirs)!r}")
    return same == len(theirs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["bpb", "make", "sample"])
    parser.add_argument("--nanochat-src")
    parser.add_argument("--nanochat", default=".build/release/nanochat", help="our executable")
    parser.add_argument("--fp32-rotary", action="store_true", help="run nanochat with its rotary tables in float32, as ours")
    parser.add_argument("--base", required=True, help="nanochat base directory")
    parser.add_argument("--tag", default="d4")
    parser.add_argument("--checkpoint", help="our checkpoint directory")
    parser.add_argument("--val", help="a val shard (llm.c format)")
    parser.add_argument("--text", help="make: the training text")
    parser.add_argument("--prompt", default="ROMEO:")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.command == "bpb":
        ok = bpb(args) < 1e-4
    elif args.command == "make":
        make(args)
        ok = True
    else:
        ok = sample(args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
