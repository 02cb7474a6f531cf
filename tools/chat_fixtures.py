"""Writes Tests/TrainTests/Fixtures/chat_render.json: conversations rendered to ids and masks
by nanochat's own tokenizer code (its RustBPETokenizer.render_conversation and
render_for_completion) over the test tokenizer's ranks (Tests/TrainTests/Fixtures/tokenizer),
so our renderer is pinned to nanochat's: system folding, masks, tool calls, truncation.

    python3 tools/chat_fixtures.py NANOCHAT_DIR    # a checkout of karpathy/nanochat; needs tiktoken

Nothing of nanochat is copied here: the script imports it from the checkout given.
"""
import base64
import json
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "Tests", "TrainTests", "Fixtures")

CONVERSATIONS = [
    {"messages": [{"role": "user", "content": "Hello there!"}, {"role": "assistant", "content": "Hi. How can I help?"}]},
    {"messages": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is 12 times 7?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me compute: "},
            {"type": "python", "text": "12*7"},
            {"type": "python_output", "text": "84"},
            {"type": "text", "text": "It is 84."},
        ]},
        {"role": "user", "content": "And the letters in 'strawberry'?"},
        {"role": "assistant", "content": "strawberry has 10 letters."},
    ]},
    {"messages": [
        {"role": "user", "content": "Ünïcödé ✓ 日本語, and <|bos|> as text"},
        {"role": "assistant", "content": "Noted: <|assistant_end|> is just text here."},
    ]},
    {"messages": [{"role": "user", "content": "Say something long."},
                  {"role": "assistant", "content": "ROMEO: " + "but soft, what light " * 40}]},
]



def info_path(directory):
    """The tokenizer's facts file: tokenizer_info.json, or tokenizer.json in directories
    written by earlier versions."""
    path = os.path.join(directory, "tokenizer_info.json")
    return path if os.path.exists(path) else os.path.join(directory, "tokenizer.json")

def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    sys.path.insert(0, sys.argv[1])
    # nanochat's tokenizer module imports rustbpe at the top for training, which rendering
    # does not use; a stand-in keeps the import from needing it.
    sys.modules.setdefault("rustbpe", types.ModuleType("rustbpe"))
    import tiktoken
    from nanochat.tokenizer import RustBPETokenizer, SPECIAL_TOKENS

    ranks = {}
    with open(os.path.join(FIXTURES, "tokenizer", "tokenizer.tiktoken")) as f:
        for line in f:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    info = json.load(open(info_path(os.path.join(FIXTURES, "tokenizer"))))
    specials = {name: len(ranks) + i for i, name in enumerate(SPECIAL_TOKENS)}
    enc = tiktoken.Encoding(name="fixture", pat_str=info["pattern"], mergeable_ranks=ranks, special_tokens=specials)
    tok = RustBPETokenizer(enc, "<|bos|>")

    cases = []
    for conv in CONVERSATIONS:
        for max_tokens in (2048, 40):
            ids, mask = tok.render_conversation(conv, max_tokens=max_tokens)
            cases.append({"conversation": conv, "max_tokens": max_tokens, "ids": ids, "mask": mask})
    completions = []
    for conv in CONVERSATIONS:
        if conv["messages"][-1]["role"] == "assistant":
            completions.append({"conversation": conv, "ids": tok.render_for_completion(conv)})
    with open(os.path.join(FIXTURES, "chat_render.json"), "w") as f:
        json.dump({"render": cases, "completion": completions}, f, ensure_ascii=False)
    print(f"wrote {len(cases)} renderings and {len(completions)} completions")


if __name__ == "__main__":
    main()
