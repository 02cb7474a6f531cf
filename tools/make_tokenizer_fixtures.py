#!/usr/bin/env python3
"""Writes the tokenizer fixtures the Train tests compare against.

Trains our tokenizer (vocab 1024) on the bundled corpus with `nanochat tokenizer train`,
then encodes a set of adversarial and random strings with tiktoken, given the same ranks,
pattern and special tokens, and saves each string with tiktoken's ids. The Swift test
checks that our encoder gives exactly these ids and that retraining gives these ranks.

Needs tiktoken (pip); CI does not run this. Regenerate with:
    swift build -c release --product nanochat && python3 tools/make_tokenizer_fixtures.py
"""
import json, os, random, subprocess
import tiktoken
from tiktoken.load import load_tiktoken_bpe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "TrainTests", "Fixtures")
CORPUS = os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare.txt")
TOK = os.path.join(OUT, "tokenizer")

# Strings that exercise each alternative of the split pattern and Unicode's corners:
# contractions in any case (and ſ, which case-folds to s), CR/LF runs, Unicode spaces
# (NBSP, NEL, U+2028, ideographic space), combining marks, emoji with modifiers and ZWJ,
# non-ASCII digits and number letters, a BOM, zero-width characters.
PARTS = ["Hello world", "don't", "DON'T", "we'LL", "ſ'ſ", "'Ve", "x'RE'", "\r\n\r\n", "  \n  ", "\t\t",
         " \u00a0 ", "e\u0301", "\U0001F44D\U0001F3FD", "\U0001F468\u200d\U0001F469\u200d\U0001F467", "123456",
         "\u0663\u0664\u0665", "\u216b", "\u00bd", "...!!!\n\n", " ?!", "  x", "\x0b\x0c", "\x1c\x1d", "\u0085",
         "\u2028", "\u65e5\u672c\u8a9e", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!", "\ufb01",
         "A\u030a", "\U0001F600\U0001F600", "\u200d", "a\u200bb", "  ", " ", "\n", "'", "'s", "''", "99 bottles",
         "x=1+2;", "\u00ab\u00bb", "\u2014", "\u01c5ungla", "\u02b0", "\u0300", "\ufeff", "\u3000\u3000x"]



def info_path(directory):
    """The tokenizer's facts file: tokenizer_info.json, or tokenizer.json in directories
    written by earlier versions."""
    path = os.path.join(directory, "tokenizer_info.json")
    return path if os.path.exists(path) else os.path.join(directory, "tokenizer.json")

def random_text(rng, n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5: c = rng.randint(32, 126)
        elif r < 0.6: c = rng.choice([9, 10, 13, 32, 0x85, 0xA0, 0x2028, 0x3000])
        elif r < 0.8: c = rng.randint(0x80, 0x2FFF)
        else: c = rng.randint(0x10000, 0x10FFFF)
        if 0xD800 <= c <= 0xDFFF: c = 65
        out.append(chr(c))
    return "".join(out)


def main():
    subprocess.run([os.path.join(ROOT, ".build", "release", "nanochat"), "tokenizer", "train", "--input", CORPUS,
                    "--vocab-size", "1024", "--out", TOK], check=True)
    info = json.load(open(info_path(TOK)))
    enc = tiktoken.Encoding(name="fixture", pat_str=info["pattern"],
                            mergeable_ranks=load_tiktoken_bpe(os.path.join(TOK, "tokenizer.tiktoken")),
                            special_tokens=info["special_tokens"])
    rng = random.Random(7)
    corpus = open(CORPUS, encoding="utf-8", newline="").read()
    texts = PARTS + ["".join(rng.choice(PARTS) for _ in range(400)), random_text(rng, 3000), corpus[:4000],
                     "a" * 5000, " " * 300 + "x", "\n" * 50]
    cases = [{"text": t, "ids": enc.encode_ordinary(t)} for t in texts]
    with open(os.path.join(OUT, "tokenizer_cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=True)
    print(f"wrote {len(cases)} cases, {sum(len(c['ids']) for c in cases)} ids")


if __name__ == "__main__":
    main()
