#!/usr/bin/env python3
"""Writes the fixtures that pin `nanochat chat-eval --benchmark` to nanochat's own chat
evaluation (Tests/EvaluationTests/Fixtures/):

  numpy     numpy_random.json: np.random.default_rng(seed).permutation(n), the order Hugging
            Face datasets' Dataset.shuffle(seed) gives, and PCG64's raw outputs. Needs numpy.
  tasks     chat_tasks/: small made-up test files in each benchmark's published layout
            (ARC in Hugging Face's JSONL and parquet and AI2's JSONL, MMLU JSONL and parquet,
            GSM8K JSONL and parquet, HumanEval JSONL), with the cases the readers must get right (numeric ARC labels,
            3 and 5 choices, GSM8K calls with commas, negatives and a "<<" that is not a call).
            Needs pyarrow.
  nanochat  chat_nanochat.json: nanochat's tasks (tasks/arc.py, mmlu.py, gsm8k.py,
            humaneval.py at the commit docs/training.md names) reading those files through
            Hugging Face datasets (load_dataset pointed at the local file; the shuffle is its
            own), and chat_eval's categorical and generative loops run on the model of
            Tests/EvaluationTests/Fixtures/model exported with `nanochat export --format
            nanochat`: every conversation, prompt ids, chosen letter, greedy reply and outcome,
            and HumanEval's program assembly and execution outcomes.

    python3 tools/chat_eval_fixtures.py numpy
    python3 tools/chat_eval_fixtures.py tasks
    python3 tools/chat_eval_fixtures.py nanochat --nanochat-src NANOCHAT_CHECKOUT

The nanochat step needs torch, datasets, tiktoken, rustbpe, tokenizers, jinja2, pyyaml,
filelock and safetensors (pip) and our release build; nothing here runs in CI.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
FIXTURES = os.path.join(ROOT, "Tests", "EvaluationTests", "Fixtures")
TASKS = os.path.join(FIXTURES, "chat_tasks")
TOKENIZER = os.path.join(ROOT, "Tests", "TokenizerTests", "Fixtures", "tokenizer")
GENERATED_TOKENS = 24


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}")


def write_jsonl(name, rows):
    os.makedirs(TASKS, exist_ok=True)
    path = os.path.join(TASKS, name)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {path}")
    return path


def numpy_fixture():
    import numpy as np
    cases = []
    for seed in [0, 1, 42, 1337, 2**32 + 5, 2**40 + 12345]:
        raw = np.random.PCG64(seed).random_raw(4).tolist()
        perms = {}
        for n in [1, 2, 3, 10, 164, 1319]:
            perms[str(n)] = np.random.default_rng(seed).permutation(n).tolist()
        for n in [1172, 2376, 14042]:   # ARC-Challenge, ARC-Easy and MMLU test sizes: their ends
            p = np.random.default_rng(seed).permutation(n).tolist()
            perms[str(n)] = p[:40] + p[-40:]
        cases.append({"seed": seed, "raw": [str(x) for x in raw], "permutations": perms})
    write_json(os.path.join(FIXTURES, "numpy_random.json"), {"numpy": np.__version__, "cases": cases})


PLAYS = ["Hamlet", "Macbeth", "Othello", "King Lear", "The Tempest", "Twelfth Night", "Richard III", "Coriolanus"]
PEOPLE = ["Hamlet", "Lady Macbeth", "Iago", "Cordelia", "Prospero", "Viola", "Richard", "Volumnia"]


def tasks_fixture():
    import pyarrow as pa
    import pyarrow.parquet as pq
    arc = []
    for i in range(24):
        n = 3 if i % 7 == 3 else 5 if i % 7 == 5 else 4
        labels = [str(k + 1) for k in range(n)] if i % 5 == 2 else ["ABCDE"[k] for k in range(n)]
        texts = [PLAYS[(i + k) % len(PLAYS)] for k in range(n)]
        answer = (i * 3) % n
        arc.append({"id": f"Mercury_{7000 + i}", "question": f"In which play does {PEOPLE[(i + answer) % len(PEOPLE)]} speak line {i + 1}?",
                    "choices": {"text": texts, "label": labels}, "answerKey": labels[answer]})
    write_jsonl("arc.jsonl", arc)
    write_jsonl("arc_ai2.jsonl", [{"id": r["id"], "question": {"stem": r["question"], "choices": [
        {"text": t, "label": l} for t, l in zip(r["choices"]["text"], r["choices"]["label"])]}, "answerKey": r["answerKey"]}
        for r in arc[:6]])
    mmlu = []
    for i in range(12):
        mmlu.append({"question": f"What is {i} + {2 * i}?", "subject": "elementary_mathematics",
                     "choices": [str(3 * i + d) for d in (0, 1, -1, 2)], "answer": (i * 5) % 4})
    write_jsonl("mmlu.jsonl", mmlu)
    # The same rows as Hugging Face's parquet files lay them out (choices nested), in row
    # groups of 5 and 7.
    arc_schema = pa.schema([("id", pa.string()), ("question", pa.string()),
                            ("choices", pa.struct([("text", pa.list_(pa.string())), ("label", pa.list_(pa.string()))])),
                            ("answerKey", pa.string())])
    pq.write_table(pa.Table.from_pylist(arc, schema=arc_schema), os.path.join(TASKS, "arc.parquet"), row_group_size=5)
    mmlu_schema = pa.schema([("question", pa.string()), ("subject", pa.string()), ("choices", pa.list_(pa.string())),
                             ("answer", pa.int64())])
    pq.write_table(pa.Table.from_pylist(mmlu, schema=mmlu_schema), os.path.join(TASKS, "mmlu.parquet"), row_group_size=7,
                   data_page_version="2.0")
    print(f"wrote {os.path.join(TASKS, 'arc.parquet')} and mmlu.parquet")
    gsm = []
    for i in range(12):
        a, b = 120 + 37 * i, 15 + i
        total = a * b
        if i % 4 == 1:
            answer = f"Each crate holds {b} jars, so {a} crates hold {a}*{b} = <<{a}*{b}={total}>>{total} jars.\n#### {total:,}"
        elif i % 4 == 2:
            answer = f"She owes {a} and pays {b + a + 10}: {a}-{b + a + 10} = <<{a}-{b + a + 10}=-{b + 10}>>-{b + 10}.\n#### -{b + 10}"
        elif i % 4 == 3:
            answer = f"Note 1<<3 is 8 <<2*4=8>>8 and then {a}/{b} = <<{a}/{b}={a / b:.2f}>>{a / b:.2f}\n#### {a / b:.2f}"
        else:
            answer = f"{a} + {b} = <<{a}+{b}={a + b}>>{a + b} and <<{a + b}>>.\n#### {a + b}"
        gsm.append({"question": f"A farmer has {a} apples and buys {b} more baskets. How many apples, question {i}?", "answer": answer})
    write_jsonl("gsm8k.jsonl", gsm)
    table = pa.table({"question": [r["question"] for r in gsm], "answer": [r["answer"] for r in gsm]})
    pq.write_table(table, os.path.join(TASKS, "gsm8k.parquet"), row_group_size=5)
    print(f"wrote {os.path.join(TASKS, 'gsm8k.parquet')}")
    human = [
        {"task_id": "HumanEval/0", "prompt": "from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    \"\"\" Sum of xs. \"\"\"\n",
         "canonical_solution": "    return sum(xs)\n", "test": "\n\ndef check(candidate):\n    assert candidate([1, 2, 3]) == 6\n    assert candidate([]) == 0\n",
         "entry_point": "total"},
        {"task_id": "HumanEval/1", "prompt": "import math\n# helper\n\ndef hyp(a, b):\n    \"\"\" Hypotenuse. \"\"\"\n",
         "canonical_solution": "    return math.sqrt(a * a + b * b)\n", "test": "\n\ndef check(candidate):\n    assert candidate(3, 4) == 5\n",
         "entry_point": "hyp"},
        {"task_id": "HumanEval/2", "prompt": "def double(x):\n    \"\"\" Twice x. \"\"\"\n",
         "canonical_solution": "    return 2 * x\n", "test": "\n\ndef check(candidate):\n    assert candidate(2) == 4\n",
         "entry_point": "double"},
    ]
    write_jsonl("humaneval.jsonl", human)


def ours(args, *command):
    return subprocess.run([args.nanochat, *command], check=True, capture_output=True, text=True).stdout


def nanochat_fixture(args):
    sys.path.insert(0, HERE)
    import nanochat_check   # noqa: E402  (its --fp32-rotary copy of the checkout)
    src = nanochat_check.float32_rotary_copy(args.nanochat_src)
    base = tempfile.mkdtemp(prefix="chat-nanochat-")
    ours(args, "export", "--format", "nanochat", "--checkpoint", os.path.join(FIXTURES, "model"), "--tokenizer", TOKENIZER,
         "--out", base, "--overwrite", "--tag", "d2")
    subprocess.run([sys.executable, os.path.join(HERE, "nanochat_files.py"), "pack", base], check=True)
    sys.path.insert(0, src)
    os.environ["NANOCHAT_BASE_DIR"] = base
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    import datasets
    import torch
    from nanochat.checkpoint_manager import load_model
    from nanochat.engine import Engine
    import tasks.arc, tasks.mmlu, tasks.gsm8k, tasks.humaneval   # noqa: E401
    from scripts import chat_eval

    files = {"allenai/ai2_arc": "arc.jsonl", "cais/mmlu": "mmlu.jsonl", "openai/gsm8k": "gsm8k.jsonl",
             "openai/openai_humaneval": "humaneval.jsonl"}

    def local(name, *rest, split=None, **kw):
        return datasets.load_dataset("json", data_files=os.path.join(TASKS, files[name]), split="train")
    for module in [tasks.arc, tasks.mmlu, tasks.gsm8k, tasks.humaneval]:
        module.load_dataset = local
    # The base model exported as the "sft" source chat_eval loads.
    model, tokenizer, _ = load_model("base", torch.device("cpu"), phase="eval", model_tag="d2")
    engine = Engine(model, tokenizer)
    out = {"generated_tokens": GENERATED_TOKENS}

    def categorical(task, batch_size):
        records = []
        for i in range(len(task)):
            conv = task[i]
            ids = tokenizer.render_for_completion(conv)
            with torch.no_grad():
                logits = model(torch.tensor([ids], dtype=torch.long))
            letter_ids = [tokenizer.encode(l)[0] for l in conv["letters"]]
            focus = logits[0, len(ids) - 1, letter_ids]
            pick = conv["letters"][focus.argmax(dim=-1).item()]
            records.append({"messages": conv["messages"], "letters": list(conv["letters"]), "prompt": ids, "answer": pick,
                            "correct": bool(task.evaluate(conv, pick)), "letter_logits": focus.tolist()})
        accuracy = chat_eval.run_categorical_eval(task, tokenizer, model, batch_size)
        return {"accuracy": accuracy, "problems": records}

    def generative(task, count):
        records = []
        for i in range(count):
            conv = task[i]
            ids = tokenizer.render_for_completion(conv)
            results, _ = engine.generate_batch(ids, num_samples=1, max_tokens=GENERATED_TOKENS, temperature=0.0, top_k=50)
            reply = results[0][len(ids):]
            text = tokenizer.decode(reply)
            records.append({"messages": conv["messages"], "prompt": ids, "reply": reply, "text": text,
                            "correct": bool(task.evaluate(conv, text))})
        accuracy = chat_eval.run_generative_eval(task, tokenizer, model, engine, 1, GENERATED_TOKENS, 0.0, 50, max_problems=count)
        return {"accuracy": accuracy, "problems": records}

    out["ARC-Easy"] = categorical(tasks.arc.ARC("ARC-Easy", "test"), 8)
    out["MMLU"] = categorical(tasks.mmlu.MMLU("all", "test"), 5)
    out["GSM8K"] = generative(tasks.gsm8k.GSM8K("main", "test"), 6)
    gsm = tasks.gsm8k.GSM8K("main", "test")
    out["GSM8K_references"] = [{"messages": gsm[i]["messages"]} for i in range(len(gsm))]
    answers = ["The answer is #### 1,234 and #### 5", "#### -", "#### -12.5", "no marker", "####  7", "#### .,"]
    out["GSM8K_extract"] = [{"text": t, "answer": tasks.gsm8k.extract_answer(t)} for t in answers]
    human = tasks.humaneval.HumanEval()
    replies = [
        "Here it is:\n```python\n{code}\n```\nDone.",
        "```\n{code}\n```",
        "{code}",
        "```python  \n\n{code}\n```",
        "```python\n    return 0\n```",
        "```python\nwhile True:\n    pass\n```",
    ]
    programs = []
    for i in range(len(human)):
        conv = human[i]
        code = conv["messages"][1]["content"]
        for r in replies:
            reply = r.replace("{code}", code)
            imports = tasks.humaneval.extract_imports(conv["messages"][0]["content"])
            program = imports + "\n\n" + tasks.humaneval.extract_program(reply) + "\n\n" + conv["test"] + "\n" + f"check({conv['entry_point']})"
            programs.append({"problem": i, "reply": reply, "program": program, "passed": bool(human.evaluate(conv, reply))})
    out["HumanEval"] = {"messages": [human[i]["messages"] for i in range(len(human))], "programs": programs}
    write_json(os.path.join(FIXTURES, "chat_nanochat.json"), out)
    print("ARC", out["ARC-Easy"]["accuracy"], "MMLU", out["MMLU"]["accuracy"], "GSM8K", out["GSM8K"]["accuracy"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["numpy", "tasks", "nanochat"])
    parser.add_argument("--nanochat-src", help="a nanochat checkout (for `nanochat`)")
    parser.add_argument("--nanochat", default=os.path.join(ROOT, ".build", "release", "nanochat"), help="our executable")
    args = parser.parse_args()
    if args.what == "numpy":
        numpy_fixture()
    elif args.what == "tasks":
        tasks_fixture()
    else:
        if not args.nanochat_src:
            sys.exit("give --nanochat-src DIR: a nanochat checkout")
        nanochat_fixture(args)


if __name__ == "__main__":
    main()
