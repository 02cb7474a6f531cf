#!/usr/bin/env python3
"""Writes the fixtures that pin `nanochat core` to nanochat's own CORE evaluation
(Tests/EvaluationTests/Fixtures/):

  random    python_random.json: CPython's random.Random(seed).shuffle and .sample, the two
            calls that order a task's examples and draw its few-shot ones. Standard library.
  model     model/: a 2-layer all-Transformer model (width 64) trained by our `nanochat train`
            on data/tinyshakespeare.txt with the test tokenizer (Tests/TokenizerTests/Fixtures/
            tokenizer), its weights and meta only. Needs our release build.
  nanochat  core_nanochat.json: that model exported with `nanochat export --format nanochat`,
            packed by tools/nanochat_files.py, loaded by nanochat's load_model and evaluated
            on data/core_shakespeare by nanochat's core_eval, as its base_eval runs it
            (shuffle with random.Random(1337), --max-per-task, centred accuracy): each
            example's rendered prompts, token ids, scored spans, mean losses and prediction,
            every task's accuracy, and CORE. nanochat's rotary tables are kept in float32 as
            ours are (tools/nanochat_check.py's --fp32-rotary), so the losses agree to float
            rounding.

    python3 tools/core_fixtures.py random
    python3 tools/core_fixtures.py model
    python3 tools/core_fixtures.py nanochat --nanochat-src NANOCHAT_CHECKOUT

nanochat's checkout is the commit docs/training.md names (2c4473d); nothing of it is kept
here. The nanochat step needs torch, jinja2, pyyaml, tiktoken, rustbpe, tokenizers, filelock
and safetensors (pip); nothing here runs in CI.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
FIXTURES = os.path.join(ROOT, "Tests", "EvaluationTests", "Fixtures")
TOKENIZER = os.path.join(ROOT, "Tests", "TokenizerTests", "Fixtures", "tokenizer")
BUNDLE = os.path.join(ROOT, "data", "core_shakespeare")
MAX_PER_TASK = 40
RECORDED = 12   # examples of each task whose prompts, ids and losses are written out

CONFIG = """depth = 2
block_pattern = ["T", "T"]
n_embd = 64
max_seq_len = 128
device_batch_size = 8
total_batch_size = 1024
num_iterations = 2000
embedding_lr = 0.2
unembedding_lr = 0.004
matrix_lr = 0.02
weight_decay = 0.0
grad_clip = 1.0
eval_every = 500
eval_tokens = 8192
sample_every = 0
save_every = 2000
data_dir = "{data}"
output_dir = "{run}"
tokenizer_dir = "{tokenizer}"
seed = 7
dtype = "float32"
"""


def write_json(name, value):
    os.makedirs(FIXTURES, exist_ok=True)
    with open(os.path.join(FIXTURES, name), "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.join(FIXTURES, name)}")


def random_fixture():
    cases = []
    for seed in [0, 1, 1337, 1234, 1234 + 37, 2**32 + 5, 2**40 + 12345]:
        for n in [1, 2, 5, 40, 200, 1000, 70000]:
            rng = random.Random(seed)
            x = list(range(n))
            rng.shuffle(x)
            cases.append({"seed": seed, "op": "shuffle", "n": n, "result": x if n <= 1000 else x[:50] + x[-50:]})
        # Sizes on both sides of CPython's switch from a pool to a set of drawn positions
        # (n against 21 + 4^ceil(log4(3k))), where the two methods give different picks.
        for n, k in [(39, 3), (39, 1), (10, 9), (100, 5), (100, 6), (100, 10), (1000, 10), (30, 10), (22, 5), (1000, 100),
                     (21, 5), (85, 6), (86, 6), (100, 17), (250, 20), (277, 17), (278, 17), (1045, 100), (1046, 100)]:
            rng = random.Random(seed)
            cases.append({"seed": seed, "op": "sample", "n": n, "k": k, "result": rng.sample(range(n), k)})
    rng = random.Random(99)
    cases.append({"seed": 99, "op": "getrandbits", "bits": [1, 7, 31, 32, 33, 48, 64],
                  "result": [rng.getrandbits(k) for k in [1, 7, 31, 32, 33, 48, 64]]})
    write_json("python_random.json", {"python": sys.version.split()[0], "cases": cases})


def ours(args, *command):
    return subprocess.run([args.nanochat, *command], check=True, capture_output=True, text=True).stdout


def model_fixture(args):
    work = tempfile.mkdtemp(prefix="core-fixture-")
    data, run = os.path.join(work, "data"), os.path.join(work, "run")
    ours(args, "prepare", "--input", os.path.join(ROOT, "data", "tinyshakespeare.txt"), "--tokenizer", TOKENIZER,
         "--out", data, "--overwrite")
    config = os.path.join(work, "d2.py")
    with open(config, "w") as f:
        f.write(CONFIG.format(data=data, run=run, tokenizer=TOKENIZER))
    ours(args, "train", config, "--overwrite")
    out = os.path.join(FIXTURES, "model")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for name in ["model_002000.safetensors", "meta_002000.json"]:
        shutil.copy(os.path.join(run, name), out)
    print(f"wrote {out}")


def nanochat_fixture(args):
    sys.path.insert(0, HERE)
    import nanochat_check   # noqa: E402  (its --fp32-rotary copy of the checkout)
    src = nanochat_check.float32_rotary_copy(args.nanochat_src)
    base = tempfile.mkdtemp(prefix="core-nanochat-")
    ours(args, "export", "--format", "nanochat", "--checkpoint", os.path.join(FIXTURES, "model"), "--tokenizer", TOKENIZER,
         "--out", base, "--overwrite", "--tag", "d2")
    subprocess.run([sys.executable, os.path.join(HERE, "nanochat_files.py"), "pack", base], check=True)
    sys.path.insert(0, src)
    os.environ["NANOCHAT_BASE_DIR"] = base
    import csv
    import torch
    import yaml
    from nanochat.checkpoint_manager import load_model
    from nanochat import core_eval
    model, tokenizer, _ = load_model("base", torch.device("cpu"), phase="eval", model_tag="d2")
    with open(os.path.join(BUNDLE, "core.yaml"), encoding="utf-8") as f:
        tasks = yaml.safe_load(f)["icl_tasks"]
    baselines = {}
    with open(os.path.join(BUNDLE, "eval_meta_data.csv"), encoding="utf-8") as f:
        for row in csv.DictReader(f):
            baselines[row["Eval Task"]] = float(row["Random baseline"])
    out = {"max_per_task": MAX_PER_TASK, "tasks": []}
    centered_all = []
    for task in tasks:
        meta = {"task_type": task["icl_task_type"], "dataset_uri": task["dataset_uri"],
                "num_fewshot": task["num_fewshot"][0], "continuation_delimiter": task.get("continuation_delimiter", " ")}
        with open(os.path.join(BUNDLE, "eval_data", meta["dataset_uri"]), encoding="utf-8") as f:
            data = [json.loads(line.strip()) for line in f]
        random.Random(1337).shuffle(data)
        data = data[:MAX_PER_TASK]
        examples = []
        for idx in range(RECORDED):
            item = data[idx]
            shots = []
            if meta["num_fewshot"] > 0:
                rng = random.Random(1234 + idx)
                shots = [data[i] for i in rng.sample([i for i in range(len(data)) if i != idx], meta["num_fewshot"])]
            kind, delim = meta["task_type"], meta["continuation_delimiter"]
            if kind == "multiple_choice":
                prompts = core_eval.render_prompts_mc(item, delim, shots)
                tokens, starts, ends = core_eval.batch_sequences_mc(tokenizer, prompts)
            elif kind == "schema":
                prompts = core_eval.render_prompts_schema(item, delim, shots)
                tokens, starts, ends = core_eval.batch_sequences_schema(tokenizer, prompts)
            else:
                prompts = core_eval.render_prompts_lm(item, delim, shots)
                tokens, starts, ends = core_eval.batch_sequences_lm(tokenizer, prompts)
            ids = core_eval.stack_sequences(tokens, tokenizer.get_bos_token_id())
            losses, predictions = core_eval.forward_model(model, ids)
            record = {"index": idx, "prompts": prompts, "tokens": tokens, "starts": starts, "ends": ends,
                      "correct": bool(core_eval.evaluate_example(idx, model, tokenizer, data, "cpu", meta))}
            if kind == "language_modeling":
                record["predicted_tokens"] = predictions[0, starts[0] - 1:ends[0] - 1].tolist()
            else:
                record["mean_losses"] = [losses[i, s - 1:e - 1].mean().item() for i, (s, e) in enumerate(zip(starts, ends))]
            examples.append(record)
        accuracy = core_eval.evaluate_task(model, tokenizer, data, "cpu", meta)
        baseline = baselines[task["label"]]
        centered = (accuracy - 0.01 * baseline) / (1.0 - 0.01 * baseline)
        centered_all.append(centered)
        out["tasks"].append({"label": task["label"], "accuracy": accuracy, "centered": centered,
                             "shuffled_first": [json.dumps(d, ensure_ascii=False) for d in data[:3]], "examples": examples})
        print(f"{task['label']}: accuracy {accuracy:.4f}, centred {centered:.4f}")
    out["core_metric"] = sum(centered_all) / len(centered_all)
    print(f"CORE {out['core_metric']:.4f}")
    write_json("core_nanochat.json", out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["random", "model", "nanochat"])
    parser.add_argument("--nanochat-src", help="a nanochat checkout (for `nanochat`)")
    parser.add_argument("--nanochat", default=os.path.join(ROOT, ".build", "release", "nanochat"), help="our executable")
    args = parser.parse_args()
    if args.what == "random":
        random_fixture()
    elif args.what == "model":
        model_fixture(args)
    else:
        if not args.nanochat_src:
            sys.exit("give --nanochat-src DIR: a nanochat checkout")
        nanochat_fixture(args)


if __name__ == "__main__":
    main()
