#!/usr/bin/env bash
# kill -9 at random moments: a small run saving every step is killed KILLS times (default 20)
# and continued with --resume after each kill. After every kill the latest checkpoint must
# load, and a copy of the directory resumed to the end must give the bytes of the run that
# was never interrupted; the resumed start must leave no temporary file behind.
#
#   scripts/kill_resume.sh [KILLS] [SEED]
set -uo pipefail
. "$(dirname "$0")/lib.sh"
kills=${1:-20}
RANDOM=${2:-$$}
need_nanochat
workdir
tiny_data "$W"
cat > "$W/run.py" <<EOF
depth = 2
block_pattern = ["T", "M"]
max_seq_len = 64
device_batch_size = 4
total_batch_size = 512
num_iterations = 24
eval_every = 8
eval_tokens = 512
sample_every = 0
save_every = 1
threads = 1
data_dir = "$W/data"
tokenizer_dir = "$W/tok"
EOF
last=model_000024.safetensors
start=$(date +%s.%N)
$nc train "$W/run.py" --output_dir="$W/ref" > "$W/ref.log" || { cat "$W/ref.log"; exit 1; }
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
ref=$(md5sum < "$W/ref/$last")
refOptim=$(md5sum < "$W/ref/optim_000024.safetensors")
echo "uninterrupted run: ${took} s; killing a run $kills times"

fails=0
for i in $(seq "$kills"); do
    latest=$(ls "$W/k"/meta_*.json 2>/dev/null | sort | tail -1)
    if [ "$latest" == "$W/k/meta_000024.json" ]; then rm -rf "$W/k"; latest=""; fi   # finished: start over
    mode=$([ -n "$latest" ] && echo --resume || echo --overwrite)
    $nc train "$W/run.py" --output_dir="$W/k" $mode > "$W/k.log" 2>&1 &
    pid=$!
    # A moment anywhere in the process's life: start-up, steps, evaluations, saves.
    delay=$(awk -v r=$RANDOM -v t="$took" 'BEGIN { printf "%.3f", r / 32767 * t }')
    sleep "$delay"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    latest=$(ls "$W/k"/meta_*.json 2>/dev/null | sort | tail -1)
    strays=$(ls "$W/k" 2>/dev/null | grep -c '\.tmp-' || true)
    if [ -z "$latest" ]; then
        echo "kill $i after ${delay} s ($mode): no checkpoint yet ($strays temporary files)"
        continue
    fi
    step=$(basename "$latest" .json); step=${step#meta_}
    rm -rf "$W/check"; cp -r "$W/k" "$W/check"
    if ! $nc eval --checkpoint "$W/check" --data "$W/data" --steps 1 > /dev/null 2> "$W/eval.err"; then
        echo "FAIL kill $i: the latest checkpoint (step $step) does not load"; cat "$W/eval.err"; fails=$((fails + 1)); continue
    fi
    if ! $nc train "$W/run.py" --output_dir="$W/check" --resume > "$W/check.log" 2>&1; then
        echo "FAIL kill $i: resuming step $step failed"; tail -3 "$W/check.log"; fails=$((fails + 1)); continue
    fi
    left=$(ls "$W/check" | grep -c '\.tmp-' || true)
    if [ "$(md5sum < "$W/check/$last")" != "$ref" ] || [ "$(md5sum < "$W/check/optim_000024.safetensors")" != "$refOptim" ]; then
        echo "FAIL kill $i: resumed from step $step, the final checkpoint differs from the uninterrupted run's"; fails=$((fails + 1))
    elif [ "$left" -ne 0 ]; then
        echo "FAIL kill $i: $left temporary files left after the resumed run"; fails=$((fails + 1))
    else
        echo "kill $i after ${delay} s ($mode): latest step $step loads, resumes to the same bytes; $strays temporary files before, none after"
    fi
done
[ $fails -eq 0 ] || { echo "$fails of $kills kills failed" >&2; exit 1; }
echo "kill_resume: $kills kills, every latest checkpoint loaded and resumed bit for bit"
