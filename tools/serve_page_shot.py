#!/usr/bin/env python3
"""Drives the chat page of a running `nanochat serve` in headless Chromium (Debian's
`chromium`, through PyPI's `playwright` with the system browser): types a message, presses
Enter, waits for the streamed reply to finish, and saves a screenshot. Also presses Stop on a
long reply and starts a new chat. Exits non-zero when a step fails.

    .build/release/nanochat serve --checkpoint DIR --port 8000 &
    python3 tools/serve_page_shot.py --url http://127.0.0.1:8000/ --out chat.png
"""
import argparse
import sys

from playwright.sync_api import sync_playwright


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8000/")
    ap.add_argument("--message", default="What is 12 plus 30?")
    ap.add_argument("--out", default="chat.png")
    ap.add_argument("--browser", default="/usr/bin/chromium")
    ap.add_argument("--viewport", default="900x640", help="WIDTHxHEIGHT (375x667: a phone)")
    args = ap.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.browser, args=["--no-sandbox"])
        width, height = (int(v) for v in args.viewport.split("x"))
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(args.url)
        page.wait_for_function("document.getElementById('model').textContent.length > 0")
        # The input's placeholder is whole at this width (measured in the input's own font).
        placeholder, fits = page.evaluate("""() => {
            const i = document.getElementById('input'), s = getComputedStyle(i);
            const c = document.createElement('canvas').getContext('2d');
            c.font = s.font;
            const room = i.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
            return [i.placeholder, c.measureText(i.placeholder).width <= room];
        }""")
        print(f"placeholder {placeholder!r} {'fits' if fits else 'is cut off'} at {width} px")

        # One message, its reply streamed into the conversation.
        page.fill("#input", args.message)
        page.keyboard.press("Enter")
        page.wait_for_selector(".msg:not(.user):not(.streaming)", timeout=120_000)
        reply = page.inner_text(".msg:not(.user) .text")
        if page.eval_on_selector_all(".msg.error", "els => els.length"):
            print(f"the page shows an error: {reply}")
            sys.exit(1)
        print(f"reply on the page: {reply!r}")
        page.screenshot(path=args.out)
        print(f"screenshot: {args.out}")

        # Stop: a long reply (hot sampling over every token rarely ends early) is cut short
        # and the page is ready again.
        page.click("#new")
        page.fill("#maxtokens", "200")
        page.fill("#temperature", "2")
        page.fill("#topk", "0")
        stopped = False
        for attempt in range(3):
            page.click("#new")
            page.fill("#input", "Tell me a long story.")
            page.keyboard.press("Enter")
            try:
                page.click("#stop", timeout=3_000)
            except Exception:
                continue   # the reply ended before Stop could be pressed: try again
            page.wait_for_selector(".msg.assistant.streaming", state="detached", timeout=30_000)
            long_reply = page.eval_on_selector_all(".msg.assistant .text", "els => els[els.length - 1].textContent")
            stopped = page.is_enabled("#send") and not page.is_enabled("#stop")
            print(f"stopped a reply after {len(long_reply)} characters")
            break
        # New chat empties the conversation.
        page.click("#new")
        empty = page.eval_on_selector_all(".msg", "els => els.length") == 0
        browser.close()
    ok = bool(reply.strip()) and stopped and empty and fits
    print(f"stop re-enabled Send: {stopped}; new chat emptied the page: {empty}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
