#!/usr/bin/env python3
"""Converts between nanochat's torch/pickle files and the safetensors/tiktoken files that
`nanochat export --format nanochat` writes and `nanochat import` reads.

  pack BASE        after `nanochat export --format nanochat --out BASE`: writes, beside each
                   BASE/*_checkpoints/*/model_S.safetensors, nanochat's model_S.pt (a dict of
                   tensors, as its save_checkpoint stores), and BASE/tokenizer/tokenizer.pkl
                   (a pickled tiktoken Encoding, as its RustBPETokenizer saves) and
                   token_bytes.pt (as its tok_train.py computes it).
  unpack CKPT_DIR  before `nanochat import --checkpoint CKPT_DIR`: writes model_S.safetensors
                   beside each model_S.pt of a nanochat checkpoint directory (dtypes kept:
                   bf16 stays bf16), and, from the base directory's tokenizer/tokenizer.pkl,
                   tokenizer.tiktoken and tokenizer_info.json.

Needs torch, safetensors and tiktoken (pip); nothing here runs in CI.
"""
import argparse
import base64
import glob
import json
import os
import pickle
import sys

import tiktoken
import torch
from safetensors.torch import load_file, save_file


def read_our_tokenizer(tokenizer_dir):
    ranks = {}
    with open(os.path.join(tokenizer_dir, "tokenizer.tiktoken"), "rb") as f:
        for line in f.read().splitlines():
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    with open(os.path.join(tokenizer_dir, "tokenizer_info.json")) as f:
        info = json.load(f)
    return ranks, info


def pack(base):
    tokenizer_dir = os.path.join(base, "tokenizer")
    ranks, info = read_our_tokenizer(tokenizer_dir)
    enc = tiktoken.Encoding(name="rustbpe", pat_str=info["pattern"], mergeable_ranks=ranks,
                            special_tokens=info["special_tokens"])
    with open(os.path.join(tokenizer_dir, "tokenizer.pkl"), "wb") as f:
        pickle.dump(enc, f)
    # tok_train.py's definition: the UTF-8 length of each token's decoded text, 0 for specials.
    special = set(info["special_tokens"])
    lengths = []
    for i in range(enc.n_vocab):
        text = enc.decode([i])
        lengths.append(0 if text in special else len(text.encode("utf-8")))
    torch.save(torch.tensor(lengths, dtype=torch.int32), os.path.join(tokenizer_dir, "token_bytes.pt"))
    print(f"wrote {tokenizer_dir}/tokenizer.pkl and token_bytes.pt ({enc.n_vocab} ids)")
    models = sorted(glob.glob(os.path.join(base, "*_checkpoints", "*", "model_*.safetensors")))
    if not models:
        sys.exit(f"{base}: no */*_checkpoints/*/model_*.safetensors (write them with `nanochat export --format nanochat --out {base}`)")
    for path in models:
        state = load_file(path)
        out = path[: -len(".safetensors")] + ".pt"
        torch.save(state, out)
        print(f"wrote {out} ({len(state)} tensors)")


def unpack(checkpoint_dir, tokenizer_dir):
    models = sorted(glob.glob(os.path.join(checkpoint_dir, "model_*.pt")))
    if not models:
        sys.exit(f"{checkpoint_dir}: no model_*.pt")
    for path in models:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v.contiguous() for k, v in state.items()}
        out = path[: -len(".pt")] + ".safetensors"
        save_file(state, out, metadata={"format": "pt"})
        dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in state.values()})
        print(f"wrote {out} ({len(state)} tensors, {'/'.join(dtypes)})")
    with open(os.path.join(tokenizer_dir, "tokenizer.pkl"), "rb") as f:
        enc = pickle.load(f)
    ranks = enc._mergeable_ranks
    with open(os.path.join(tokenizer_dir, "tokenizer.tiktoken"), "w") as f:
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(f"{base64.b64encode(token).decode()} {rank}\n")
    info = {"pattern": enc._pat_str, "special_tokens": enc._special_tokens, "vocab_size": enc.n_vocab}
    with open(os.path.join(tokenizer_dir, "tokenizer_info.json"), "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)
    print(f"wrote {tokenizer_dir}/tokenizer.tiktoken and tokenizer_info.json ({enc.n_vocab} ids)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="safetensors/tiktoken -> nanochat's .pt/.pkl")
    p.add_argument("base", help="nanochat base directory written by `nanochat export --format nanochat`")
    u = sub.add_parser("unpack", help="nanochat's .pt/.pkl -> safetensors/tiktoken")
    u.add_argument("checkpoint", help="nanochat checkpoint directory (BASE/base_checkpoints/TAG)")
    u.add_argument("--tokenizer", help="nanochat tokenizer directory (default: BASE/tokenizer)")
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.base)
    else:
        tokenizer = args.tokenizer or os.path.normpath(os.path.join(args.checkpoint, "..", "..", "tokenizer"))
        unpack(args.checkpoint, tokenizer)


if __name__ == "__main__":
    main()
