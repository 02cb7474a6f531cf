"""The reference side of `bench corpus`: nanochat's tokenizer trainer (rustbpe) and tiktoken's
encoder on the same documents our `tokenizer train` and `prepare` read.

    python3 tools/tokenizer_reference.py train --input DIR --vocab-size 65536 --max-chars 1e9 --doc-cap 10000
    python3 tools/tokenizer_reference.py encode --input DIR --tokenizer TOKDIR --mb 64 --threads 1

`train` feeds rustbpe exactly as nanochat's tok_train.py does (documents cut to --doc-cap
characters until --max-chars, the split pattern given, the 9 special tokens left out of the
vocabulary size) and prints one JSON line: seconds, merges. `encode` builds a tiktoken
Encoding from our tokenizer.tiktoken and pattern, takes the first --mb megabytes of
documents and prints one JSON line: the seconds to encode them with encode_ordinary_batch
on --threads threads (median of 3), bytes and tokens. The Swift side reads parquet
(`text` column), .jsonl or text files; this script reads parquet and .jsonl.
Needs pyarrow, rustbpe, tiktoken (pip install).
"""
import argparse
import base64
import glob
import json
import os
import statistics
import time

SPECIALS = 9  # <|bos|> and the chat tokens, SPEC §3.3


def documents(inputs, field="text"):
    files = []
    for i in inputs:
        if os.path.isdir(i):
            files += sorted(os.path.join(i, f) for f in os.listdir(i) if not f.startswith(".") and not f.endswith(".json"))
        else:
            files += sorted(glob.glob(i)) or [i]
    for path in files:
        if path.endswith(".parquet"):
            import pyarrow.parquet as pq
            pf = pq.ParquetFile(path)
            for g in range(pf.num_row_groups):
                for t in pf.read_row_group(g, columns=[field]).column(field).to_pylist():
                    if t is not None:
                        yield t
        elif path.endswith(".jsonl"):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        yield json.loads(line)[field]
        else:
            raise SystemExit(f"{path}: give parquet or .jsonl files")


def train(args):
    import rustbpe
    pattern = json.load(open(args.tokenizer_json))["pattern"] if args.tokenizer_json else None

    def capped():
        n = 0
        for d in documents(args.input):
            d = d[: args.doc_cap]
            n += len(d)
            yield d
            if n >= args.max_chars:
                return

    tok = rustbpe.Tokenizer()
    start = time.perf_counter()
    if pattern:
        tok.train_from_iterator(capped(), args.vocab_size - SPECIALS, pattern=pattern)
    else:
        tok.train_from_iterator(capped(), args.vocab_size - SPECIALS)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "merges": args.vocab_size - SPECIALS - 256}))


def encode(args):
    import tiktoken
    ranks = {}
    with open(os.path.join(args.tokenizer, "tokenizer.tiktoken")) as f:
        for line in f:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    # tokenizer_info.json; directories from earlier versions have it as tokenizer.json
    name = "tokenizer_info.json" if os.path.exists(os.path.join(args.tokenizer, "tokenizer_info.json")) else "tokenizer.json"
    info = json.load(open(os.path.join(args.tokenizer, name)))
    enc = tiktoken.Encoding(name="ours", pat_str=info["pattern"], mergeable_ranks=ranks, special_tokens={})
    docs, size = [], 0
    for d in documents(args.input):
        docs.append(d)
        size += len(d.encode("utf-8"))
        if size >= args.mb * 1e6:
            break
    times, tokens = [], 0
    for _ in range(3):
        start = time.perf_counter()
        out = enc.encode_ordinary_batch(docs, num_threads=args.threads)
        times.append(time.perf_counter() - start)
        tokens = sum(len(o) for o in out)
    print(json.dumps({"seconds": statistics.median(times), "bytes": size, "tokens": tokens, "documents": len(docs)}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--input", nargs="+", required=True)
    t.add_argument("--vocab-size", type=int, default=65536)
    t.add_argument("--max-chars", type=float, default=2e9)
    t.add_argument("--doc-cap", type=int, default=10_000)
    t.add_argument("--tokenizer-json", help="take the split pattern from this tokenizer_info.json")
    e = sub.add_parser("encode")
    e.add_argument("--input", nargs="+", required=True)
    e.add_argument("--tokenizer", required=True)
    e.add_argument("--mb", type=float, default=64)
    e.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    train(args) if args.command == "train" else encode(args)


if __name__ == "__main__":
    main()
