#!/usr/bin/env python3
"""Checks that transformers' `pipeline("text-generation")`, greedy, continues prompts exactly as
`nanochat sample --temperature 0` does, for folders written by `nanochat export --format hf`
(all-Transformer, all-Mamba and hybrid: one CHECKPOINT=FOLDER pair per argument). The exported
tokenizer puts <|bos|> first as sample does; hybrid folders load modeling_nanochat_hybrid.py,
which decodes with a cache through transformers' GenerationMixin. transformers stops at the
end tokens of generation_config.json (<|bos|>, a new document, as the server's completions
do; <|assistant_end|>) where sample goes on: the pipeline's tokens must be sample's up to
there, ending at an end token or after as many tokens, and its text sample's text up to it.

    nanochat export --checkpoint runs/shakespeare_d4 --format hf --out /tmp/hf
    python3 tools/pipeline_check.py runs/shakespeare_d4=/tmp/hf
"""
import argparse
import json
import os
import subprocess
import sys

import torch
from transformers import pipeline

PROMPTS = ["ROMEO:", "First Citizen:\nBefore we proceed", "The king is"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pairs", nargs="+", help="CHECKPOINT=FOLDER")
    ap.add_argument("--nanochat", default=".build/release/nanochat")
    ap.add_argument("--tokens", type=int, default=24)
    args = ap.parse_args()
    failures = 0
    for pair in args.pairs:
        checkpoint, folder = pair.split("=", 1)
        config = json.load(open(os.path.join(folder, "config.json")))
        remote = "auto_map" in config
        generate = pipeline("text-generation", model=folder, trust_remote_code=remote, dtype=torch.float32)
        ends = json.load(open(os.path.join(folder, "generation_config.json")))["eos_token_id"]
        ends = set(ends if isinstance(ends, list) else [ends])
        for prompt in PROMPTS:
            ids = generate.tokenizer(prompt).input_ids
            out = subprocess.run([args.nanochat, "sample", "--checkpoint", checkpoint, "--tokens", ",".join(map(str, ids)),
                                  "--temperature", "0", "--max-new-tokens", str(args.tokens)],
                                 check=True, capture_output=True, text=True).stdout
            ours = [int(t) for t in out.split()]
            text = subprocess.run([args.nanochat, "sample", "--checkpoint", checkpoint, "--prompt", prompt, "--temperature", "0",
                                   "--max-new-tokens", str(args.tokens)], check=True, capture_output=True, text=True).stdout
            result = generate(prompt, max_new_tokens=args.tokens, do_sample=False, return_tensors=True)[0]["generated_token_ids"]
            theirs = list(result)[len(ids):]
            stop = next((i + 1 for i, t in enumerate(ours) if t in ends), len(ours))
            words = generate(prompt, max_new_tokens=args.tokens, do_sample=False)[0]["generated_text"]
            ok = (theirs == ours[:stop] and ids[0] == generate.tokenizer.bos_token_id
                  and text.startswith(words) and (stop == len(ours) or text[len(words)] == "\n"))
            failures += not ok
            print(f"{'ok' if ok else 'FAIL'}: {config['model_type']} ({checkpoint}) {prompt!r}: {len(theirs)} tokens "
                  f"{'(the last an end token) ' if stop < len(ours) else ''}{words!r}"
                  + ("" if ok else f"; pipeline {theirs}, nanochat sample {ours}"))
    print(f"{failures} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
