#!/usr/bin/env bash
# Fuzzes the readers of untrusted files with libFuzzer and AddressSanitizer: safetensors,
# checkpoint meta, config, tokenizer (ours and tokenizer.json), token shard, parquet, JSONL (Fuzz/Fuzz.swift). Each target starts from
# its committed seeds in Fuzz/corpus/<target>; what it finds grows a working corpus under
# .build-fuzz/corpus, and a crash is saved as .build-fuzz/crash-<target>-* and fails the run.
#
#   scripts/fuzz.sh                      every target for 60 s
#   scripts/fuzz.sh --seconds 1800 meta  one target for 30 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(safetensors meta config tokenizer hftokenizer shard parquet jsonl)

swift build -c release --scratch-path .build-fuzz --product nanochat-fuzz --traits NativeCPU,Fuzzing \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library 2>&1 | grep -E "error|warning: unre|Compiling|Build" || true
bin=.build-fuzz/release/nanochat-fuzz
[ -x "$bin" ] || { echo "fuzz: the build failed" >&2; exit 1; }

status=0
for t in "${targets[@]}"; do
    [ -d "Fuzz/corpus/$t" ] || { echo "fuzz: no target $t (Fuzz/corpus/$t)" >&2; exit 2; }
    work=.build-fuzz/corpus/$t
    mkdir -p "$work"
    log=.build-fuzz/$t.log
    echo "fuzz $t: ${seconds} s"
    if NANOCHAT_FUZZ_TARGET=$t "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix=".build-fuzz/crash-$t-" "$work" "Fuzz/corpus/$t" > "$log" 2>&1; then
        grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|cov: .*ft:" "$log" | tail -3 | sed "s/^/  /"
    else
        status=1
        echo "fuzz $t: FAILED (log $log)" >&2
        grep -E "ERROR|SUMMARY|Fatal error|runtime failure|Test unit written" "$log" | head -8 >&2
    fi
done
exit $status
