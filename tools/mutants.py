#!/usr/bin/env python3
"""Mutation testing: how many one-line bugs, planted at random, the unit tests catch.

Draws lines at random (reproducibly, from --seed) among the library's source lines that hold
something to change, and in each plants one mechanical bug: a comparison turned (`<` `<=`, `==`
`!=`), an arithmetic operator swapped (`+` `-`, `*` `/`), `&&` for `||`, a `!` dropped, an integer
one off, `min` for `max`, `true` for `false`, a closed range made half-open. Comments, string
literals, prefetch hints and reserved capacities (which change no value) are never touched.
Each mutant is built (debug, tests included) in a worktree of HEAD and the whole suite runs
against it; the first failing test ends the run (caught), as does a hang past --timeout. A
mutant that does not compile is not counted and another line is drawn.

    python3 tools/mutants.py --count 20 --seed 7 --out /tmp/mutants.jsonl
    python3 tools/mutants.py --count 5 --under Sources/Corpus      # where you work
    python3 tools/mutants.py --count 20 --seed 7 --out /tmp/mutants.jsonl --resume   # after a stop

Each result is one JSON line (file, line, the line before and after, caught or survived, the test
that caught it, seconds); the survivors are printed at the end for a person to read: some are
equivalent (a capacity, a message), the rest are where a test is missing. The tests the CI scripts
run (scripts/*.sh) are not run here, so the executables' sources (Sources/nanochat, Sources/bench)
and the code only mpirun runs (CMPI, Train/Distributed.swift) are left out of the draw: the rate is that of `swift test` over the library.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import threading
import time

LIBRARY = ["Tensor", "SelectiveScan", "Blocks", "Corpus", "Tokenizer", "Inference", "Train", "Evaluation",
           "Interop", "Serve", "CBF16", "CHost", "CCompression"]
# Run only under mpirun, which scripts/mpi_smoke.sh does and `swift test` does not.
MPI_ONLY = {"Sources/Train/Distributed.swift"}

# Each rule: a pattern found in the masked line, and what replaces the match. Binary operators
# need a space on both sides, which in Swift tells them from generics, `->`, `?` and `!` suffixes.
SWAPS = {" < ": " <= ", " <= ": " < ", " > ": " >= ", " >= ": " > ", " == ": " != ", " != ": " == ",
         " + ": " - ", " - ": " + ", " * ": " / ", " / ": " * ", " += ": " -= ", " -= ": " += ",
         " && ": " || ", " || ": " && ", "...": "..<", "..<": "...",
         "min(": "max(", "max(": "min(", "true": "false", "false": "true"}
SWAP_PATTERN = re.compile(r" (?:<=|>=|==|!=|\+=|-=|&&|\|\||<|>|\+|-|\*|/) |\.\.\.|\.\.<|\bmin\(|\bmax\(|\btrue\b|\bfalse\b")
INTEGER = re.compile(r"(?<![\w.])(\d+)(?![\w.])")
NOT = re.compile(r"(?<=[\s(])!(?=[\w(.])")
# Also prefetch hints and reserved capacities: no address or size one is given changes a value
# (every draw of either so far was equivalent, and cost a full run of the suite to find so).
SKIP = re.compile(r"^\s*(import|#|@|precondition|assert|fatalError|log\(|print\(|case\b|prefetch\w*\(|__builtin_prefetch\()"
                  r"|^\s*[\w.]*\.reserveCapacity\([^()]*\)\s*$")


def masked(lines, is_c):
    """Each line with comments and string literals blanked to spaces (same length)."""
    out, in_block, in_multiline = [], False, False
    for line in lines:
        chars, i, n = list(line), 0, len(line)
        while i < n:
            if in_block:
                end = line.find("*/", i)
                stop = n if end < 0 else end + 2
                chars[i:stop] = " " * (stop - i)
                in_block, i = end < 0, stop
            elif in_multiline:
                end = line.find('"""', i)
                stop = n if end < 0 else end + 3
                chars[i:stop] = " " * (stop - i)
                in_multiline, i = end < 0, stop
            elif line.startswith("//", i):
                chars[i:] = " " * (n - i)
                break
            elif line.startswith("/*", i):   # the opener blanked and passed, so that it cannot close itself
                chars[i:i + 2] = "  "
                in_block, i = True, i + 2
            elif not is_c and line.startswith('"""', i):
                chars[i:i + 3] = "   "
                in_multiline, i = True, i + 3
            elif line[i] == '"' or (is_c and line[i] == "'"):
                quote, j, depth = line[i], i + 1, 0
                while j < n:
                    if line[j] == "\\" and not is_c and line.startswith("\\(", j):
                        depth += 1; j += 2; continue
                    if line[j] == "\\":
                        j += 2; continue
                    if depth and line[j] == "(":
                        depth += 1
                    elif depth and line[j] == ")":
                        depth -= 1
                    elif not depth and line[j] == quote:
                        break
                    j += 1
                stop = min(j + 1, n)
                chars[i:stop] = " " * (stop - i)
                i = stop
            else:
                i += 1
        out.append("".join(chars))
    return out


def candidates(text):
    """(start, end, replacement) for every mutation this masked line allows."""
    found = []
    for m in SWAP_PATTERN.finditer(text):
        found.append((m.start(), m.end(), SWAPS[m.group(0)]))
    for m in INTEGER.finditer(text):
        v = int(m.group(1))
        found.append((m.start(), m.end(), str(v + 1)))
        if v > 0:
            found.append((m.start(), m.end(), str(v - 1)))
    for m in NOT.finditer(text):
        found.append((m.start(), m.end(), ""))
    return found


def library_lines(root, under=None):
    """Every (path, line index) of the library (or of the files under `under`, a path from
    the repository's root) that a mutation can change."""
    out = []
    for target in LIBRARY:
        base = os.path.join(root, "Sources", target)
        for folder, _, files in sorted(os.walk(base)):
            for name in sorted(files):
                if not name.endswith((".swift", ".c")):
                    continue
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, root)
                # (A file given as `under` is its own prefix: "a/b.swift/" starts with "a/b.swift/".)
                if relative in MPI_ONLY or (under and not (relative + "/").startswith(under.rstrip("/") + "/")):
                    continue
                lines = open(path, encoding="utf-8").read().split("\n")
                for index, text in enumerate(masked(lines, name.endswith(".c"))):
                    if SKIP.match(text) or not candidates(text):
                        continue
                    out.append((relative, index))
    return out


def run(command, cwd, timeout=None):
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, errors="replace", timeout=timeout)


def kill_tree(pid):
    """Kills a process and every process under it: `swift test` starts the test executable in a
    process group of its own, which killing swift test's group leaves running."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
    tree, grew = {pid}, True
    while grew:
        below = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    for member in tree:
        try:
            os.kill(member, 9)
        except OSError:
            pass


def run_suite(cwd, scratch, timeout):
    """Runs the built tests until the first failure: (caught, the failing test's line, seconds)."""
    start = time.time()
    process = subprocess.Popen(["swift", "test", "--skip-build", "--scratch-path", scratch],
                               cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace", start_new_session=True)
    hung = threading.Timer(timeout, lambda: kill_tree(process.pid))
    hung.start()
    failure = None
    try:
        for line in process.stdout:
            if line.startswith("✘ Test") or " error: " in line or "Fatal error" in line:
                failure = line.strip()[:300]
                break
    finally:
        hung.cancel()
        if process.poll() is None:
            kill_tree(process.pid)
        process.wait()
    if failure is None and time.time() - start >= timeout:
        failure = "timed out"
    if failure is None and process.returncode != 0:
        failure = f"exit status {process.returncode}"
    return failure is not None, failure, round(time.time() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10, help="mutants that compile, to run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="mutants.jsonl", help="one JSON line per mutant (appended)")
    parser.add_argument("--worktree", default="/tmp/nanochat-mutants",
                        help="a detached worktree, made at HEAD or moved to it (remove it with `git worktree remove`)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds before a run counts as hung")
    parser.add_argument("--under", help="draw only from this folder or file (e.g. Sources/Corpus)")
    parser.add_argument("--resume", action="store_true",
                        help="take the mutants of this seed already in --out as run (an interrupted batch goes on where it stopped)")
    args = parser.parse_args()
    earlier = {}
    if args.resume and os.path.exists(args.out):
        for line in open(args.out, encoding="utf-8"):
            row = json.loads(line)
            if row.get("seed") == args.seed:
                earlier[(row["file"], row["line"], row["after"])] = row

    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                          check=True).stdout.strip()
    work, scratch = args.worktree, ".build-mutants"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    if not os.path.isdir(work):
        subprocess.run(["git", "worktree", "add", "--detach", "-f", work, head], cwd=root, check=True)
    else:   # a worktree left by an earlier run: moved to this HEAD, any mutant left in it dropped (its build is reused)
        subprocess.run(["git", "checkout", "-q", "-f", "--detach", head], cwd=work, check=True)
    resolved = os.path.join(root, "Package.resolved")
    if os.path.exists(resolved):
        subprocess.run(["cp", resolved, work], check=True)
    print("building the unchanged tests ...", flush=True)
    built = run(["swift", "build", "--build-tests", "--scratch-path", scratch], work)
    if built.returncode != 0:
        sys.exit("the unchanged sources do not build:\n" + built.stdout[-3000:] + built.stderr[-3000:])

    lines = library_lines(work, args.under)
    if not lines:
        sys.exit(f"no library lines to change under {args.under}")
    rng = random.Random(args.seed)
    order = rng.sample(range(len(lines)), len(lines))
    print(f"{len(lines)} lines to draw from; seed {args.seed}", flush=True)
    done = caught = 0
    survivors = []
    for pick in order:
        if done == args.count:
            break
        path, index = lines[pick]
        full = os.path.join(work, path)
        original = open(full, encoding="utf-8").read()
        source = original.split("\n")
        text = masked(source, path.endswith(".c"))[index]
        start, end, replacement = rng.choice(candidates(text))
        before = source[index]
        after = before[:start] + replacement + before[end:]
        source[index] = after
        row = earlier.get((path, index + 1, after.strip()))
        if row is None:
            try:
                open(full, "w", encoding="utf-8").write("\n".join(source))
                t0 = time.time()
                build = run(["swift", "build", "--build-tests", "--scratch-path", scratch], work)
                build_seconds = round(time.time() - t0)
                if build.returncode != 0:
                    print(f"  (does not compile) {path}:{index + 1}", flush=True)
                    continue
                was_caught, failure, seconds = run_suite(work, scratch, args.timeout)
            finally:
                open(full, "w", encoding="utf-8").write(original)
            row = {"file": path, "line": index + 1, "before": before.strip(), "after": after.strip(),
                   "caught": was_caught, "by": failure, "build_s": build_seconds,
                   "test_s": seconds, "seed": args.seed}
            with open(args.out, "a") as f:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            ran = f"{seconds} s"
        else:
            ran = "run before"
        done += 1
        caught += row["caught"]
        print(f"{done:3d} {'caught  ' if row['caught'] else 'SURVIVED'} {path}:{index + 1}  "
              f"{row['before'][:70]!r} -> {row['after'][:70]!r}  ({ran})", flush=True)
        if not row["caught"]:
            survivors.append(row)
    print(f"\n{caught} of {done} caught")
    for row in survivors:
        print(f"survived: {row['file']}:{row['line']}\n  - {row['before']}\n  + {row['after']}")
    # The last build holds a mutant's objects; rebuilding the restored sources leaves the worktree clean.
    run(["swift", "build", "--build-tests", "--scratch-path", scratch], work)


if __name__ == "__main__":
    main()
