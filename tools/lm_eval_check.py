#!/usr/bin/env python3
"""Runs lm-evaluation-harness (PyPI `lm_eval`) against `nanochat serve` through its
`local-completions` model, and checks that every example's log-likelihood and greediness
equal what `nanochat eval --loglikelihood` computes for the same texts (to 1e-4).

The task is written here: continuations of lines of a text file (default: the demo's
corpus), scored as a `loglikelihood` task with per-example logs. lm-eval tokenizes with the
exported Hugging Face tokenizer and sends token ids, several prompts per request, with echo
and logprobs; the server puts <|bos|> before them as it does before a text.

    nanochat export --checkpoint runs/shakespeare_d4 --format hf --out /tmp/hf
    nanochat serve --checkpoint runs/shakespeare_d4 --port 8000 &
    python3 tools/lm_eval_check.py --checkpoint runs/shakespeare_d4 --hf /tmp/hf --url http://127.0.0.1:8000
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def examples(path, count):
    """(context, continuation) pairs: a line's first words, then the rest of it with its space."""
    pairs = []
    for line in open(path, encoding="utf-8"):
        words = line.strip().split(" ")
        if len(words) < 4:
            continue
        cut = len(words) // 2
        pairs.append((" ".join(words[:cut]), " " + " ".join(words[cut:])))
        if len(pairs) == count:
            break
    return pairs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--hf", required=True, help="the checkpoint exported with --format hf (its tokenizer)")
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--nanochat", default=".build/release/nanochat")
    ap.add_argument("--text", default="data/tinyshakespeare.txt")
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--batch", type=int, default=4, help="prompts per request")
    args = ap.parse_args()

    import lm_eval
    from lm_eval.tasks import TaskManager

    work = tempfile.mkdtemp()
    pairs = examples(args.text, args.count)
    data = os.path.join(work, "continuations.jsonl")
    with open(data, "w") as f:
        for context, continuation in pairs:
            f.write(json.dumps({"context": context, "continuation": continuation}) + "\n")
    tasks = os.path.join(work, "tasks")
    os.makedirs(tasks)
    with open(os.path.join(tasks, "continuations.yaml"), "w") as f:
        f.write(f"""task: nanochat_continuations
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{context}}}}"
doc_to_target: "{{{{continuation}}}}"
target_delimiter: ""
metric_list:
  - metric: perplexity
  - metric: acc
""")
    results = lm_eval.simple_evaluate(
        model="local-completions",
        model_args=f"base_url={args.url}/v1/completions,tokenizer={args.hf},tokenizer_backend=huggingface,"
                   f"tokenized_requests=True,batch_size={args.batch},max_retries=1",
        tasks=["nanochat_continuations"], task_manager=TaskManager(include_path=tasks), log_samples=True)
    samples = sorted(results["samples"]["nanochat_continuations"], key=lambda s: s["doc_id"])
    harness = [(float(s["resps"][0][0][0]), bool(s["resps"][0][0][1])) for s in samples]

    out = subprocess.run([args.nanochat, "eval", "--checkpoint", args.checkpoint, "--loglikelihood", data],
                         check=True, capture_output=True, text=True).stdout
    ours = [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    failures = 0
    worst = 0.0
    for i, ((ll, greedy), mine) in enumerate(zip(harness, ours)):
        gap = abs(ll - mine["loglikelihood"])
        worst = max(worst, gap)
        if gap > 1e-4 or greedy != mine["greedy"]:
            failures += 1
            print(f"FAIL example {i}: lm-eval {ll:.6f} {greedy}, nanochat eval {mine['loglikelihood']:.6f} {mine['greedy']}")
    ok = len(harness) == len(ours) == len(pairs) and failures == 0
    metrics = results["results"]["nanochat_continuations"]
    print(f"{'ok' if ok else 'FAIL'}: {len(harness)} examples through lm-eval {lm_eval.__version__} local-completions "
          f"(batches of {args.batch}) equal nanochat eval --loglikelihood: largest difference {worst:.2e}, "
          f"greedy flags equal; lm-eval's metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                                                                   if isinstance(v, float)))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
