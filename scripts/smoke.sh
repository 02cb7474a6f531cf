#!/usr/bin/env bash
# After scripts/demo.sh: checks that the run learned (val bpb fell by more than 1 bit from
# the fresh model's) and that bad inputs each stop `nanochat train` with a non-zero exit and
# a message naming the problem, without touching the demo's checkpoints.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_nanochat
nanochat=$nc
run=runs/shakespeare_d4
data=data/shakespeare
corpus=data/tinyshakespeare.txt

bpbs=$(grep -o '"val_bpb":[0-9.]*' $run/metrics.jsonl | cut -d: -f2)
first=$(echo "$bpbs" | head -1); last=$(echo "$bpbs" | tail -1)
echo "val bpb: fresh $first, trained $last"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 1.0) }' || { echo "FAIL: val bpb did not fall by 1 bit" >&2; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# What the demo left: every file's name and content (the lock file, rewritten by each
# attempt to take the run, aside).
listing() { (cd $run && find . -name .lock -prune -o -type f -print0 | sort -z | xargs -0 md5sum); }
before=$(listing)
cfg=configs/shakespeare_d4.py
expect_error "already holds checkpoints" $nanochat train $cfg
expect_error "no such tokenizer directory" $nanochat train $cfg --data_dir=$scratch/none --output_dir=$scratch/o
expect_error "data.json: cannot open" $nanochat train $cfg --data_dir=$scratch/none --tokenizer_dir=$data/tokenizer --output_dir=$scratch/o
mkdir -p $scratch/corrupt && cp $data/*.bin $data/data.json $scratch/corrupt/ && head -c 5000 $data/train_000000.bin > $scratch/corrupt/train_000000.bin
expect_error "header says" $nanochat train $cfg --data_dir=$scratch/corrupt --tokenizer_dir=$data/tokenizer --output_dir=$scratch/o
$nanochat tokenizer train --input $corpus --vocab-size 512 --out $scratch/tok512 > /dev/null
expect_error "vocab size 4096, but the tokenizer in use has 512" $nanochat train $cfg --tokenizer_dir=$scratch/tok512 --output_dir=$scratch/o
expect_error "is not a multiple of device_batch_size × max_seq_len" $nanochat train $cfg --total_batch_size=1000 --output_dir=$scratch/o
expect_error "did you mean depth" $nanochat train $cfg --depht=4 --output_dir=$scratch/o
expect_error "block_pattern" $nanochat train $cfg '--block_pattern=["T","X","M","M"]' --output_dir=$scratch/o
expect_error "another model than the config" $nanochat train $cfg --resume '--block_pattern=["M","M","M","M"]'
expect_error "no checkpoint for step 7" $nanochat train $cfg --resume-step 7
# Commands that would replace the demo's results without --overwrite are refused.
expect_error "holds checkpoints after step 100 (steps 200)" $nanochat train $cfg --resume-step 100 --num_iterations=300
expect_error "already holds checkpoints" $nanochat init $cfg --out $run
expect_error "give --overwrite to replace them" $nanochat export --checkpoint $run --out $run
expect_error "already holds data.json" $nanochat prepare --input $corpus --tokenizer $data/tokenizer --out $data
expect_error "already holds tokenizer.tiktoken" $nanochat tokenizer train --input $corpus --vocab-size 300 --out $data/tokenizer
expect_error "give an empty or new directory" $nanochat import --checkpoint $run --out $data
# A run that replaces another (--overwrite) and stops before its first save leaves the
# earlier run's checkpoints, metrics and chart as they were.
cp -r $run $scratch/r2
rm -f $scratch/r2/.lock
sums() { (cd $scratch/r2 && md5sum metrics.jsonl loss.svg model_000200.safetensors); }
was=$(sums)
$nanochat train $cfg --overwrite --output_dir=$scratch/r2 --num_iterations=40 --eval_every=-1 --sample_every=-1 > $scratch/r2.log 2>&1 &
pid=$!
for _ in $(seq 300); do [ -e $scratch/r2/metrics.jsonl.next ] && break; sleep 0.1; done
sleep 1
kill -TERM $pid; wait $pid || true
if [ -e $scratch/r2/metrics.jsonl.next ] && ! ls $scratch/r2/model_000040.safetensors > /dev/null 2>&1 && [ "$(sums)" == "$was" ]; then
    echo "ok: --overwrite stopped before its first save left the earlier run's checkpoints, metrics.jsonl and loss.svg"
else
    echo "FAIL: an interrupted --overwrite run changed the earlier run" >&2; tail -3 $scratch/r2.log >&2; fails=$((fails + 1))
fi
printf 'abc\xff' > $scratch/bad.txt
expect_error "bad.txt: line 1: the text is not valid UTF-8 (byte 0xff at offset 3 of the line)" $nanochat tokenizer train --input $scratch/bad.txt --out $scratch/t
# A one-character relative output directory (as typed: `--output_dir=a`) is made and used.
root=$PWD
if (cd $scratch && $nanochat train $root/$cfg --data_dir=$root/$data --tokenizer_dir=$root/$data/tokenizer \
        --output_dir=a --num_iterations=1 --eval_every=-1 --sample_every=-1 > $scratch/a.log 2>&1) \
    && ls $scratch/a/model_000001.safetensors > /dev/null 2>&1; then
    echo "ok: --output_dir=a trained and saved into ./a"
else
    echo "FAIL: --output_dir=a" >&2; sed 's/^/    /' $scratch/a.log | tail -5 >&2; fails=$((fails + 1))
fi
# The sweep, small: two patterns at depth 2, two seeds; run again it keeps the finished runs.
sweep=(configs/sweep_shakespeare.py --depths 2 --patterns all-T,all-M --seeds 1,2 --target-flops 2e11 --eval-points 2 --out $scratch/sweep)
$nanochat sweep "${sweep[@]}" > $scratch/sweep.log
grep -q "^| all-M ×[0-9]* | M*M | " $scratch/sweep/report.md || { echo "FAIL: sweep report lacks the equal-parameter row" >&2; fails=$((fails + 1)); }
[ "$(ls $scratch/sweep/runs/d2/*/seed*/metrics.jsonl | wc -l)" -eq 6 ] || { echo "FAIL: sweep kept $(ls $scratch/sweep/runs/d2/*/seed*/metrics.jsonl | wc -l) metrics files, not 6" >&2; fails=$((fails + 1)); }
! ls $scratch/sweep/runs/d2/*/seed*/*.safetensors > /dev/null 2>&1 || { echo "FAIL: sweep left checkpoints" >&2; fails=$((fails + 1)); }
[ "$($nanochat sweep "${sweep[@]}" | grep -c 'finished earlier, kept')" -eq 6 ] || { echo "FAIL: rerunning the sweep trained again" >&2; fails=$((fails + 1)); }
echo "ok: sweep of 6 runs reported, and kept when run again"
report=$(md5sum < $scratch/sweep/report.md); rm $scratch/sweep/report.md
$nanochat sweep --report-only --out $scratch/sweep > /dev/null
[ -f $scratch/sweep/report.md ] && [ "$(md5sum < $scratch/sweep/report.md)" == "$report" ] \
    && echo "ok: sweep --report-only wrote the same report from the finished runs" || { echo "FAIL: sweep --report-only" >&2; fails=$((fails + 1)); }
expect_error "different settings (the budget of depth 2" $nanochat sweep "${sweep[@]:0:7}" --target-flops 3e11 --eval-points 2 --out $scratch/sweep
expect_error "one budget per depth" $nanochat sweep configs/sweep_shakespeare.py --depths 2,4 --target-flops 2e11 --out $scratch/s2
expect_error "set by the sweep for each run" $nanochat sweep configs/sweep_shakespeare.py --depths 2 --target-flops 2e11 --out $scratch/s2 --seed=3
# The run exported as a Hugging Face folder (a hybrid: our names and the modeling file).
if $nanochat export --checkpoint $run --format hf --out $scratch/hf > /dev/null \
    && [ -s $scratch/hf/model.safetensors ] && [ -s $scratch/hf/tokenizer.json ] && [ -s $scratch/hf/modeling_nanochat_hybrid.py ] \
    && python3 -c "import json, sys; c = json.load(open(sys.argv[1])); assert c['block_pattern'] == ['T', 'T', 'M', 'M'] and 'AutoModelForCausalLM' in c['auto_map']" $scratch/hf/config.json; then
    echo "ok: export --format hf wrote $(ls $scratch/hf | wc -l) files"
else
    echo "FAIL: export --format hf" >&2; fails=$((fails + 1))
fi
step=$(ls $run | sed -n 's/^meta_\([0-9]*\)\.json$/\1/p' | tail -1)
if $nanochat import --format hf --checkpoint $scratch/hf --out $scratch/hf-back > /dev/null \
    && cmp $run/model_$step.safetensors $scratch/hf-back/model_000000.safetensors; then
    echo "ok: import --format hf of the export gives model_$step.safetensors back byte for byte"
else
    echo "FAIL: import --format hf" >&2; fails=$((fails + 1))
fi
# ... and in nanochat's layout, imported back: the same model file, byte for byte.
if $nanochat export --checkpoint $run --format nanochat --out $scratch/nc > /dev/null \
    && $nanochat import --checkpoint $scratch/nc/base_checkpoints/d4 --out $scratch/nc-back > /dev/null \
    && cmp $run/model_$step.safetensors $scratch/nc-back/model_$step.safetensors \
    && $nanochat sample --checkpoint $scratch/nc-back --prompt "KING" --max-new-tokens 4 > /dev/null 2>&1; then
    echo "ok: export --format nanochat then import gives model_$step.safetensors back byte for byte"
else
    echo "FAIL: export --format nanochat / import" >&2; fails=$((fails + 1))
fi
expect_error "already holds meta_000200.json" $nanochat import --checkpoint $scratch/nc/base_checkpoints/d4 --out $scratch/nc-back
# Flags that change what a command does, each seen to change it.
tok=$data/tokenizer
ids=$($nanochat tokenizer encode --tokenizer $tok --text "To be, or not")
printf 'To be, or not' > $scratch/line.txt
[ -n "$ids" ] && [ "$($nanochat tokenizer encode --tokenizer $tok $scratch/line.txt)" == "$ids" ] \
    && [ "$($nanochat tokenizer encode --tokenizer $tok < $scratch/line.txt)" == "$ids" ] \
    && echo "ok: tokenizer encode gives the same ids from --text, a file and standard input" || { echo "FAIL: tokenizer encode's sources differ" >&2; fails=$((fails + 1)); }
with_bos=$($nanochat tokenizer encode --tokenizer $tok --text "To be, or not" --bos)
[ "${with_bos#* }" == "$ids" ] && [ "$($nanochat tokenizer decode --tokenizer $tok --ids "${with_bos%% *}")" == "<|bos|>" ] \
    && [ "$($nanochat tokenizer decode --tokenizer $tok --ids "$ids")" == "To be, or not" ] \
    && [ "$(echo "$ids" | $nanochat tokenizer decode --tokenizer $tok)" == "To be, or not" ] \
    && echo "ok: --bos puts <|bos|> first; decode --ids and standard input give the text back" || { echo "FAIL: tokenizer --bos or decode" >&2; fails=$((fails + 1)); }
evaluate() { $nanochat eval --checkpoint $run --data $data --json --steps 2 "$@" 2> /dev/null; }
fp32=$(evaluate --dtype float32 --threads 1); bf16=$(evaluate --dtype bfloat16 --threads 1)
[ -n "$fp32" ] && [ "$fp32" != "$bf16" ] && [ "$(evaluate --dtype bfloat16 --threads 2)" == "$bf16" ] \
    && echo "ok: eval --dtype float32 and bfloat16 give different losses; 1 and 2 threads the same" || { echo "FAIL: eval --dtype/--threads: $fp32 / $bf16" >&2; fails=$((fails + 1)); }
prefilled() { $nanochat chat --checkpoint $run --prompt "Who goes there?" --temperature 0 --max-tokens 1 --stats "$@" 2>&1 > /dev/null | sed -n 's/^\[prefilled \([0-9]*\) tokens.*/\1/p'; }
alone=$(prefilled); with_system=$(prefilled --system "Answer as a king.")
[ -n "$alone" ] && [ -n "$with_system" ] && [ "$with_system" -gt "$alone" ] \
    && echo "ok: chat --system adds to the prompt ($alone tokens alone, $with_system with it)" || { echo "FAIL: chat --system ($alone, $with_system)" >&2; fails=$((fails + 1)); }
$nanochat export --checkpoint $run --format nanochat --phase sft --tag mine --out $scratch/ncsft > /dev/null \
    && ls $scratch/ncsft/chatsft_checkpoints/mine/model_$step.safetensors > /dev/null 2>&1 \
    && echo "ok: export --phase sft --tag mine writes chatsft_checkpoints/mine" || { echo "FAIL: export --phase/--tag" >&2; fails=$((fails + 1)); }
sample() { $nanochat sample --checkpoint $run --max-new-tokens 12 "$@" 2> /dev/null; }
greedy=$(sample --prompt "KING" --temperature 0 --seed 1)
[ -n "$greedy" ] && [ "$(sample --prompt "KING" --temperature 0 --seed 2)" == "$greedy" ] \
    && [ "$(sample --prompt "KING" --temperature 1 --top-k 1 --seed 3)" == "$greedy" ] \
    && [ "$(sample --prompt "KING" --seed 1)" != "$(sample --prompt "KING" --seed 2)" ] \
    && echo "ok: sample: --top-k 1 is greedy, --seed changes what --temperature draws and not the greedy text" || { echo "FAIL: sample --seed/--temperature/--top-k" >&2; fails=$((fails + 1)); }
# --tokens takes the ids as given (--prompt puts <|bos|> first) and prints ids (the text shows
# a <|bos|> as a new line).
continued=$($nanochat tokenizer decode --tokenizer $tok --ids "$(sample --tokens "$($nanochat tokenizer encode --tokenizer $tok --text KING --bos)" --temperature 0)")
[ -n "$continued" ] && [ "KING${continued//<|bos|>/$'\n'}" == "$greedy" ] && echo "ok: sample --tokens continues <|bos|> KING as --prompt KING does" \
    || { echo "FAIL: sample --tokens gave \"$continued\" after <|bos|> KING, --prompt \"$greedy\"" >&2; fails=$((fails + 1)); }
after=$(listing)
[ "$after" == "$before" ] || { echo "FAIL: the demo's checkpoints changed:" >&2; diff <(echo "$before") <(echo "$after") >&2; fails=$((fails + 1)); }
finish smoke
