#!/usr/bin/env python3
"""Writes data/core_shakespeare/: a small CORE-style eval bundle made from the held-out end
of data/tinyshakespeare.txt, in the layout of nanochat's eval bundle (core.yaml,
eval_meta_data.csv, eval_data/*.jsonl), so that `nanochat core` runs offline on any model
trained on the corpus and the demo can end with a CORE-style report.

    python3 tools/make_core_bundle.py [--out data/core_shakespeare] [--per-task 200]

Three tasks, one of each type nanochat scores, from the speeches of the last 8% of the text
(inside the 10% that `nanochat prepare` holds out as val by default):
  shakespeare_last_word   language_modeling, 1-shot: a speech without its last word, then
                          the word (LAMBADA's task on this corpus, after one solved example)
  shakespeare_next_line   multiple_choice, 3-shot: a speaker and two lines of a speech; the
                          line that follows, against three lines from other speeches
  shakespeare_prev_line   schema, 1-shot: a line of a speech after one of four lines, the
                          line that really came before it or three from other speeches

Deterministic (random.Random(2024)); standard library only.
"""
import argparse
import json
import os
import random
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")


def speeches(text):
    """(speaker, [lines]) for each block of the corpus: a "NAME:" line, then its lines."""
    out = []
    for block in text.split("\n\n"):
        lines = [l for l in block.split("\n") if l.strip()]
        if len(lines) < 2 or not lines[0].endswith(":"):
            continue
        out.append((lines[0], lines[1:]))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=os.path.join(ROOT, "data", "tinyshakespeare.txt"))
    parser.add_argument("--out", default=os.path.join(ROOT, "data", "core_shakespeare"))
    parser.add_argument("--per-task", type=int, default=200)
    args = parser.parse_args()
    text = open(args.corpus, encoding="utf-8").read()
    held_out = text[int(len(text) * 0.92):]
    held_out = held_out[held_out.index("\n\n") + 2:]   # from the first whole speech
    rng = random.Random(2024)
    all_speeches = speeches(held_out)
    all_lines = [l for _, lines in all_speeches for l in lines]

    last_word = []
    for speaker, lines in all_speeches:
        body = "\n".join(lines)
        m = re.search(r"([A-Za-z]{3,})([^A-Za-z]*)$", body)
        if len(lines) < 2 or not m:
            continue
        context = speaker + "\n" + body[:m.start(1)].rstrip()
        if context.endswith("\n") or not context.strip():
            continue
        last_word.append({"context": context, "continuation": m.group(1)})

    # A continuation must tokenize after its context as it does alone: nanochat's scoring
    # requires the context's ids to be a prefix of the context and continuation's.
    def with_distractors(true_line):
        """The true line among three other lines of the held-out text, at a random place."""
        others = []
        while len(others) < 3:
            other = rng.choice(all_lines)
            if other != true_line and other not in others:
                others.append(other)
        gold = rng.randrange(4)
        return others[:gold] + [true_line] + others[gold:], gold

    next_line, prev_line = [], []
    for speaker, lines in all_speeches:
        if len(lines) < 3:
            continue
        i = rng.randrange(0, len(lines) - 2)
        choices, gold = with_distractors(lines[i + 2])
        next_line.append({"query": speaker + "\n" + lines[i] + "\n" + lines[i + 1], "choices": choices, "gold": gold})

        j = rng.randrange(1, len(lines))
        options, gold = with_distractors(lines[j - 1])
        prev_line.append({"context_options": [speaker + "\n" + o for o in options], "continuation": lines[j], "gold": gold})

    tasks = [
        ("shakespeare_last_word", "language_modeling", last_word, 1, " ", 0.0),
        ("shakespeare_next_line", "multiple_choice", next_line, 3, "\n", 25.0),
        ("shakespeare_prev_line", "schema", prev_line, 1, "\n", 25.0),
    ]
    os.makedirs(os.path.join(args.out, "eval_data"), exist_ok=True)
    yaml_lines = ["# A CORE-style bundle from the held-out end of data/tinyshakespeare.txt (tools/make_core_bundle.py).",
                  "icl_tasks:"]
    meta = ["Eval Task,Random baseline"]
    for label, kind, items, shots, delimiter, baseline in tasks:
        items = items[:args.per_task]
        with open(os.path.join(args.out, "eval_data", label + ".jsonl"), "w", encoding="utf-8") as f:
            for item in items:
                f.write(json.dumps(item, ensure_ascii=False) + "\n")
        yaml_lines += [f"- label: {label}", f"  dataset_uri: {label}.jsonl", f"  num_fewshot: [{shots}]",
                       f"  icl_task_type: {kind}", f"  continuation_delimiter: {json.dumps(delimiter)}"]
        meta.append(f"{label},{baseline}")
        print(f"{label}: {len(items)} examples ({kind}, {shots}-shot)")
    with open(os.path.join(args.out, "core.yaml"), "w", encoding="utf-8") as f:
        f.write("\n".join(yaml_lines) + "\n")
    with open(os.path.join(args.out, "eval_meta_data.csv"), "w", encoding="utf-8") as f:
        f.write("\n".join(meta) + "\n")


if __name__ == "__main__":
    main()
