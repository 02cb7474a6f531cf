"""Writes a large synthetic corpus as FineWeb-style parquet shards (a `text` column, zstd,
row groups of 1024 documents), for measuring `prepare` and `tokenizer train` at scale here,
where no real corpus can be downloaded.

Each document strings together a few random paragraphs of tinyshakespeare, with about one
word in twelve replaced by a word drawn (Zipf-distributed) from 300,000 made-up words, so
the text keeps English's shape while the count of distinct words grows with the corpus as a
web crawl's does, instead of the 25,000 of Shakespeare repeated.

    python3 tools/make_corpus.py --gb 1 --out /tmp/corpus     # shard_00000.parquet, ...
    python3 tools/make_corpus.py --gb 0.01 --out DIR --jsonl  # the same as .jsonl files

Deterministic for a given --seed. Needs numpy and pyarrow (pip install pyarrow).
"""
import argparse
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
SYLLABLES = ["ka", "lo", "mi", "ren", "to", "sha", "vel", "dor", "an", "is", "qu", "ber", "th", "ol", "ya", "ne",
             "gri", "fa", "um", "zel", "po", "ri", "ste", "cha", "wyn", "ox", "el", "tra", "mo", "ven"]


def made_up_words(rng, n):
    words = set()
    while len(words) < n:
        lengths = rng.integers(1, 5, n)
        picks = rng.integers(0, len(SYLLABLES), (n, 4))
        caps = rng.random(n) < 0.15
        for k, p, c in zip(lengths, picks, caps):
            w = "".join(SYLLABLES[i] for i in p[:k])
            words.add(w.capitalize() if c else w)
    return sorted(words)[:n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=1.0, help="gigabytes of text to write")
    ap.add_argument("--out", required=True)
    ap.add_argument("--shard-mb", type=float, default=100.0, help="text per shard file")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--jsonl", action="store_true", help="write .jsonl files instead of parquet")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    text = open(os.path.join(HERE, "..", "data", "tinyshakespeare.txt"), encoding="utf-8").read()
    paragraphs = [p.strip() + "\n" for p in text.split("\n\n") if p.strip()]
    vocab = made_up_words(rng, 300_000)
    zipf = np.minimum(rng.zipf(1.3, 5_000_000) - 1, len(vocab) - 1)
    zi = 0
    os.makedirs(args.out, exist_ok=True)
    total, shard, docs, size = 0, 0, [], 0
    target = int(args.gb * 1e9)

    def flush():
        nonlocal shard, docs, size
        if not docs:
            return
        name = os.path.join(args.out, f"shard_{shard:05d}." + ("jsonl" if args.jsonl else "parquet"))
        if args.jsonl:
            with open(name, "w", encoding="utf-8") as f:
                for d in docs:
                    f.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
        else:
            pq.write_table(pa.table({"text": pa.array(docs, pa.string())}), name, compression="zstd", row_group_size=1024)
        print(f"{name}: {len(docs)} documents, {size / 1e6:.1f} MB of text", flush=True)
        shard, docs, size = shard + 1, [], 0

    while total < target:
        picks = rng.integers(0, len(paragraphs), rng.integers(1, 9))
        words = "".join(paragraphs[i] for i in picks).split(" ")
        swaps = rng.random(len(words)) < 1 / 12
        for j in np.flatnonzero(swaps):
            words[j] = vocab[zipf[zi % len(zipf)]]
            zi += 1
        doc = " ".join(words)
        n = len(doc.encode("utf-8"))
        docs.append(doc)
        size += n
        total += n
        if size >= args.shard_mb * 1e6:
            flush()
    flush()
    print(f"{total / 1e9:.3f} GB of text in {shard} shards")


if __name__ == "__main__":
    main()
