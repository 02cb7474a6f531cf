#!/usr/bin/env bash
# Chat end to end on the main job's model (runs/shakespeare_d4, from scripts/demo.sh): a short
# fine-tuning on the synthetic tasks, a resumed one equal to the uninterrupted one, a one-shot
# reply, and the terminal chat driven through tmux (scripts/chat_tmux.sh).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
base=${1:-runs/shakespeare_d4}
need_nanochat
[ -d "$base" ] || { echo "no base checkpoint $base: run scripts/demo.sh first" >&2; exit 1; }
workdir

sft() { $nc sft --checkpoint "$base" --task-examples 300 --num-iterations 24 --max-seq-len 128 --eval-every 0 "$@"; }
sft --out "$W/full" > "$W/full.log" 2>&1 || { tail -5 "$W/full.log"; fail "sft"; }
grep -q "^done: 24 steps" "$W/full.log" && echo "sft: $(grep '^done:' "$W/full.log")" || fail "sft did not finish"
# Stopped at step 12 and resumed: the same bits at step 24.
sft --out "$W/part" --num-iterations 24 --save-every 12 > /dev/null 2>&1 || fail "sft with saves"
rm -f "$W/part/"*_000024.*
sft --out "$W/part" --save-every 12 --resume > /dev/null 2>&1 || fail "sft --resume"
cmp -s "$W/full/model_000024.safetensors" "$W/part/model_000024.safetensors" \
    && echo "sft resumed at step 12: the same bits at step 24 as the uninterrupted run" || fail "resumed sft differs"

# Each of these flags, given, changes the weights two steps give.
sft --out "$W/two" --num-iterations 2 > /dev/null 2>&1 || fail "sft of 2 steps"
for flags in "--seed 7" "--init-lr-frac 0.4" "--device-batch-size 4" "--tasks spelling"; do
    name=$(echo "$flags" | tr -c 'a-z0-9\n' _)
    # (Word splitting of $flags is meant: a flag and its value.)
    # shellcheck disable=SC2086
    sft --out "$W/$name" --num-iterations 2 $flags > /dev/null 2>&1 || fail "sft $flags"
    if [ -s "$W/two/model_000002.safetensors" ] && [ -s "$W/$name/model_000002.safetensors" ] && ! cmp -s "$W/two/model_000002.safetensors" "$W/$name/model_000002.safetensors"; then
        echo "ok: sft $flags changes the weights"
    else
        fail "sft $flags gave the default's weights"
    fi
done

# bfloat16 and float32 products give different weights, and the default is one of them (which
# one depends on the CPU: bfloat16 only where it multiplies bf16 natively).
for dtype in float32 bfloat16; do
    sft --out "$W/$dtype" --num-iterations 2 --dtype $dtype > /dev/null 2>&1 || fail "sft --dtype $dtype"
done
if [ -s "$W/float32/model_000002.safetensors" ] && ! cmp -s "$W/float32/model_000002.safetensors" "$W/bfloat16/model_000002.safetensors"; then
    echo "ok: sft --dtype float32 and --dtype bfloat16 give different weights"
else
    fail "sft --dtype float32 and bfloat16 gave the same weights"
fi
if cmp -s "$W/two/model_000002.safetensors" "$W/float32/model_000002.safetensors"; then
    echo "ok: the default is float32 on this CPU"
elif cmp -s "$W/two/model_000002.safetensors" "$W/bfloat16/model_000002.safetensors"; then
    echo "ok: the default is bfloat16 on this CPU"
else
    fail "sft's default gave neither float32's weights nor bfloat16's"
fi

reply=$($nc chat --checkpoint "$W/full" --prompt "What is 2 plus 3?" --temperature 0 --max-tokens 40 2> /dev/null)
[ -n "$reply" ] && echo "one-shot reply: $reply" || fail "no one-shot reply"

scripts/chat_tmux.sh "$W/full" || fail "the terminal chat"

finish chat_smoke
