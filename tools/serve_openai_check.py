#!/usr/bin/env python3
"""Talks to a running `nanochat serve` with the official OpenAI Python client (PyPI `openai`):
a chat completion, a streamed chat completion, a text completion and a streamed one, then
log-probabilities (echo, drawn tokens, chat), a logit bias, then the errors a client sees
for bad requests. Exits non-zero when any check fails.

    .build/release/nanochat serve --checkpoint DIR --port 8000 &
    python3 tools/serve_openai_check.py --base-url http://127.0.0.1:8000/v1
"""
import argparse
import sys
import time

import openai


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    args = ap.parse_args()
    client = openai.OpenAI(base_url=args.base_url, api_key="none")
    failures = []

    def check(ok, what):
        print(("ok: " if ok else "FAIL: ") + what)
        if not ok:
            failures.append(what)

    models = client.models.list()
    model = models.data[0].id
    check(bool(model), f"models.list names the served model: {model}")

    messages = [{"role": "user", "content": "What is 123 plus 456?"}]
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0)
    text = reply.choices[0].message.content
    check(reply.object == "chat.completion" and reply.choices[0].finish_reason in ("stop", "length")
          and reply.usage.completion_tokens >= 1,
          f"chat completion: {text!r} ({reply.usage.prompt_tokens} + {reply.usage.completion_tokens} tokens, "
          f"{reply.choices[0].finish_reason})")

    start = time.time()
    pieces, first, finish = [], None, None
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0, stream=True):
        choice = chunk.choices[0]
        if choice.delta.content:
            first = first or time.time() - start
            pieces.append(choice.delta.content)
        finish = choice.finish_reason or finish
    streamed = "".join(pieces)
    check(streamed == text and finish == reply.choices[0].finish_reason,
          f"streamed chat completion in {len(pieces)} pieces equals the whole reply (first piece after {1000 * (first or 0):.0f} ms)")

    completion = client.completions.create(model=model, prompt="ROMEO:", max_tokens=16, temperature=0, stop=["\n\n"])
    ctext = completion.choices[0].text
    check(completion.object == "text_completion" and "\n\n" not in ctext, f"completion: {ctext!r}")
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=model, prompt="ROMEO:", max_tokens=16, temperature=0, stop=["\n\n"], stream=True) if c.choices)
    check(streamed == ctext, "streamed completion equals the whole one")

    sampled = client.chat.completions.create(model=model, messages=messages, max_tokens=16, temperature=0.9, top_p=0.9, seed=7)
    again = client.chat.completions.create(model=model, messages=messages, max_tokens=16, temperature=0.9, top_p=0.9, seed=7)
    check(sampled.choices[0].message.content == again.choices[0].message.content, "the same seed samples the same reply")

    # Log-probabilities, as the client's types read them.
    scored = client.completions.create(model=model, prompt="ROMEO: O, she doth teach", max_tokens=0, echo=True, logprobs=3)
    lp = scored.choices[0].logprobs
    check(scored.choices[0].text == "ROMEO: O, she doth teach" and len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs)
          and all(v <= 0 for v in lp.token_logprobs) and all(len(t) <= 3 for t in lp.top_logprobs),
          f"echo + logprobs score the prompt: {len(lp.tokens)} tokens, {sum(lp.token_logprobs):.3f} nats")
    drawn = client.completions.create(model=model, prompt="ROMEO:", max_tokens=5, temperature=0, logprobs=2)
    dl = drawn.choices[0].logprobs
    check(all(abs(v - max(top.values())) < 1e-9 for v, top in zip(dl.token_logprobs, dl.top_logprobs)),
          f"greedy tokens are each the most likely of their alternatives: {dl.tokens}")
    chat_lp = client.chat.completions.create(model=model, messages=messages, max_tokens=5, temperature=0, logprobs=True, top_logprobs=2)
    content = chat_lp.choices[0].logprobs.content
    check(len(content) >= 1 and all(len(c.top_logprobs) == 2 and c.logprob <= 0 for c in content),
          f"chat logprobs: {[c.token for c in content]}")
    # Token ids 0-255 are the bytes in order: 65 is "A".
    forced = client.completions.create(model=model, prompt="ROMEO:", max_tokens=4, temperature=0, logit_bias={"65": 100})
    check(forced.choices[0].text == "AAAA", f"logit_bias +100 on token 65 (\"A\") forces it: {forced.choices[0].text!r}")

    for what, call in [
        ("max_tokens out of range", lambda: client.chat.completions.create(model=model, messages=messages, max_tokens=10 ** 7)),
        ("a message of the wrong role", lambda: client.chat.completions.create(model=model, messages=[{"role": "robot", "content": "x"}])),
        ("an oversize prompt", lambda: client.completions.create(model=model, prompt="word " * 100_000)),
    ]:
        try:
            call()
            check(False, f"{what}: accepted")
        except openai.APIStatusError as e:
            body = e.body if isinstance(e.body, dict) else {}
            message = body.get("message") or (body.get("error") or {}).get("message")
            check(400 <= e.status_code < 500 and bool(message), f"{what}: HTTP {e.status_code}: {message}")

    print(f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
