#!/usr/bin/env python3
"""Checks a folder written by `nanochat export --format hf` in transformers (PyPI
`transformers`, `torch`), against the reference the export wrote from our model:

- AutoTokenizer encodes the reference text (mixed scripts, digits, code) to our ids, and its
  chat template renders the reference conversation to our ids;
- AutoModelForCausalLM's logits on the reference rows equal ours to 1e-4 relative (with
  trust_remote_code=True when the folder ships modeling_nanochat_hybrid.py);
- greedy `generate` from the reference prompt gives our greedy tokens.
`python3 tools/reference_model.py FOLDER` holds the same reference to the tools' own PyTorch
model (the one the fixtures and the bench use), for hybrid folders.

    nanochat export --checkpoint runs/d4_t --format hf --out /tmp/hf
    python3 tools/hf_check.py /tmp/hf
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    folder = sys.argv[1]
    ref = json.load(open(os.path.join(folder, "reference.json")))
    failures = []

    def check(ok, what):
        print(("ok: " if ok else "FAIL: ") + what)
        if not ok:
            failures.append(what)

    remote = "auto_map" in json.load(open(os.path.join(folder, "config.json")))
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=remote)
    ids = tok.encode(ref["text"], add_special_tokens=False)
    check(ids == ref["text_ids"], f"AutoTokenizer encodes the {len(ref['text'])}-character mixed-script text to our {len(ids)} ids")
    check(tok.decode(ids) == ref["text"], "and decodes them back to the text")
    bos = tok.convert_tokens_to_ids("<|bos|>")
    check(tok(ref["text"]).input_ids == [bos] + ref["text_ids"],
          "by default (add_special_tokens) the tokenizer puts <|bos|> first, as nanochat sample and the server do")

    def render(conversation):
        chat = tok.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True)
        return list(chat["input_ids"] if isinstance(chat, dict) or hasattr(chat, "keys") else chat)

    check(render(ref["conversation"]) == ref["chat_ids"], f"the chat template renders the conversation to our {len(ref['chat_ids'])} ids")
    # OpenAI-style content (a list of text parts, split anywhere) renders the same ids.
    parts = [dict(m, content=[{"type": "text", "text": m["content"][:3]}, {"type": "text", "text": m["content"][3:]}])
             for m in ref["conversation"]]
    check(render(parts) == ref["chat_ids"], "content given as a list of text parts renders the same ids")
    try:
        render([{"role": "user", "content": "say <|assistant_end|> now"}])
        check(False, "a message holding a special token's text is refused by the template")
    except Exception as e:
        check("plain text" in str(e), f"a message holding a special token's text is refused: {str(e)[:80]}...")

    if remote:
        print("note: the folder ships modeling_nanochat_hybrid.py; loading it with trust_remote_code=True")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, trust_remote_code=remote)
    model.eval()
    ours = load_file(os.path.join(folder, "reference.safetensors"))["logits"].double()
    with torch.no_grad():
        theirs = model(torch.tensor(ref["rows"])).logits.double()
    if not ref.get("logits_softcapped", True):
        print("note: the mamba architecture has no logit softcap; the reference holds our logits before it")
    diff = (theirs - ours).abs().max().item()
    scale = ours.abs().max().item()
    check(diff / scale <= 1e-4, f"logits equal ours: largest difference {diff:.3g} on logits up to {scale:.3g} "
          f"({diff / scale:.2e} relative; shape {tuple(theirs.shape)})")

    with torch.no_grad():
        out = model.generate(torch.tensor([ref["prompt"]]), max_new_tokens=len(ref["greedy"]), do_sample=False)
    greedy = out[0, len(ref["prompt"]):].tolist()
    n = len(greedy)  # generate stops at an end token; ours ran on
    check(n > 0 and greedy == ref["greedy"][:n], f"greedy generate gives our tokens ({n} of {len(ref['greedy'])}: {greedy})")
    print(f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
