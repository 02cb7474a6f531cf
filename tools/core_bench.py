#!/usr/bin/env python3
"""Times nanochat's own CORE evaluation (its core_eval.evaluate_task, as its base_eval runs it)
on a nanochat base directory, for `bench core` to put beside ours:

    python3 tools/core_bench.py --nanochat-src NANOCHAT_CHECKOUT --base BASE --tag TAG \
        --bundle data/core_shakespeare --max-per-task 20 --threads 2

BASE is `nanochat export --format nanochat` of a checkpoint, then `tools/nanochat_files.py
pack BASE`. Prints one JSON line: examples evaluated, seconds, accuracy per task. Needs torch,
jinja2, pyyaml, tiktoken, rustbpe, tokenizers and filelock (pip); nothing here runs in CI.
"""
import argparse
import csv
import json
import os
import random
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanochat-src", required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--max-per-task", type=int, default=-1)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    sys.path.insert(0, args.nanochat_src)
    os.environ["NANOCHAT_BASE_DIR"] = os.path.abspath(args.base)
    import torch
    import yaml
    torch.set_num_threads(args.threads)
    from nanochat.checkpoint_manager import load_model
    from nanochat.core_eval import evaluate_task
    model, tokenizer, _ = load_model("base", torch.device("cpu"), phase="eval", model_tag=args.tag)
    with open(os.path.join(args.bundle, "core.yaml"), encoding="utf-8") as f:
        tasks = yaml.safe_load(f)["icl_tasks"]
    examples, seconds, results = 0, 0.0, {}
    for task in tasks:
        meta = {"task_type": task["icl_task_type"], "dataset_uri": task["dataset_uri"],
                "num_fewshot": task["num_fewshot"][0], "continuation_delimiter": task.get("continuation_delimiter", " ")}
        with open(os.path.join(args.bundle, "eval_data", meta["dataset_uri"]), encoding="utf-8") as f:
            data = [json.loads(line.strip()) for line in f]
        random.Random(1337).shuffle(data)
        if args.max_per_task > 0:
            data = data[:args.max_per_task]
        t0 = time.perf_counter()
        results[task["label"]] = evaluate_task(model, tokenizer, data, "cpu", meta)
        seconds += time.perf_counter() - t0
        examples += len(data)
    print(json.dumps({"examples": examples, "seconds": seconds, "results": results, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
