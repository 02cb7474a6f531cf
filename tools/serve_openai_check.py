#!/usr/bin/env python3
"""Talks to a running `nanochat serve` with the official OpenAI Python client (PyPI `openai`):
a chat completion, a streamed chat completion, a text completion and a streamed one, then
the errors a client sees for bad requests. Exits non-zero when any check fails.

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
