# What the test scripts share; each sources it first (`. "$(dirname "$0")/lib.sh"`).
#
# After sourcing: the working directory is the repository's root, $nc the release nanochat,
# and these functions:
#   need_nanochat        stop unless the release build exists
#   workdir              $W: a temporary directory, removed when the script exits
#   fail WORDS...        report a failed check and count it; finish NAME ends the script
#   check_failure WORDS CMD...
#                        run CMD, which must fail cleanly: a non-zero exit, no signal or
#                        backtrace, one `Error:` line, containing WORDS; sets $why (empty when
#                        it did) and $error_line
#   expect_error WORDS CMD...
#                        check_failure, printed as ok or FAIL
#   tiny_data DIR        a 120 kB slice of tinyshakespeare, a 300-token tokenizer (DIR/tok)
#                        and its shards (DIR/data): the tiny runs' data
cd "$(dirname "${BASH_SOURCE[0]}")/.."
nc=$PWD/.build/release/nanochat
fails=0

need_nanochat() {
    [ -x "$nc" ] || { echo "build first: swift build -c release" >&2; exit 1; }
}

workdir() {
    W=$(mktemp -d)
    # Read-only files some checks leave are made writable so they can go.
    trap 'chmod -R u+w "$W" 2>/dev/null; rm -rf "$W"' EXIT
}

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

finish() {
    [ $fails -eq 0 ] || { echo "$1: $fails failures" >&2; exit 1; }
    echo "$1: all checks passed"
}

check_failure() {
    local want=$1; shift
    local err; err=$(mktemp)
    # (Written to hold under set -e too.)
    "$@" > /dev/null 2> "$err" < /dev/null && failure_status=0 || failure_status=$?
    local errs; errs=$(grep -c '^Error: ' "$err" || true)
    error_line=$(grep -m1 '^Error: ' "$err" || true)
    error_text=$(head -8 "$err")
    rm -f "$err"
    why=""
    if [ $failure_status -eq 0 ]; then why="exit 0"
    elif [ $failure_status -ge 128 ]; then why="killed by signal $((failure_status - 128))"
    elif grep -qiE 'fatal error|backtrace|stack dump|crash|illegal instruction|segmentation' <<< "$error_text"; then
        why="backtrace"
    elif [ "$errs" -ne 1 ]; then why="$errs Error: lines"
    elif [[ "$error_line" != *"$want"* ]]; then why="message lacks \"$want\""
    fi
}

expect_error() {
    check_failure "$@"
    if [ -n "$why" ]; then
        fail "$why: ${*:2}"; sed 's/^/    /' <<< "$error_text"
    else
        echo "ok: ${error_line#Error: }"
    fi
}

tiny_data() {
    head -c 120000 data/tinyshakespeare.txt > "$1/corpus.txt"
    "$nc" tokenizer train --input "$1/corpus.txt" --vocab-size 300 --out "$1/tok" > /dev/null
    "$nc" prepare --input "$1/corpus.txt" --tokenizer "$1/tok" --out "$1/data" > /dev/null
}
