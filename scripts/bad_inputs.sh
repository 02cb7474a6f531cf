#!/usr/bin/env bash
# Bad inputs and faults, as a table: every case must end with a non-zero exit (not a signal
# or a trap), exactly one `Error:` line holding the expected words, no backtrace, and the
# checkpoints of a finished run byte for byte as they were. Writes the table to
# $BAD_INPUTS_TABLE when set. Needs a release build (.build/release/nanochat) and python3.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_nanochat
command -v python3 > /dev/null || scripts/install-deps.sh python3
workdir
table=${BAD_INPUTS_TABLE:-$W/table.md}

# A small finished run to protect: tokenizer, shards, 4 steps saved at 2 and 4.
tiny_data "$W"
cat > "$W/tiny.py" <<EOF
depth = 2
block_pattern = ["T", "M"]
max_seq_len = 32
device_batch_size = 2
total_batch_size = 64
num_iterations = 4
eval_every = 2
eval_tokens = 128
sample_every = 0
save_every = 2
data_dir = "$W/data"
tokenizer_dir = "$W/tok"
output_dir = "$W/run"
seed = 1
EOF
$nc train "$W/tiny.py" --threads=1 > "$W/train.log" || { cat "$W/train.log"; echo "FAIL: the reference run did not train" >&2; exit 1; }
run=$W/run cfg=$W/tiny.py
sums() { (cd "$run" && find . -type f ! -name .lock -print0 | sort -z | xargs -0 md5sum) }
before=$(sums)

# A second tokenizer of the same size, trained on other text, and its shards.
tail -c 120000 data/tinyshakespeare.txt > "$W/other.txt"
$nc tokenizer train --input "$W/other.txt" --vocab-size 300 --out "$W/tok2" > /dev/null
$nc prepare --input "$W/other.txt" --tokenizer "$W/tok2" --out "$W/data2" > /dev/null

# copy NAME: a copy of the finished run to break.
copy() { rm -rf "$W/$1"; cp -r "$run" "$W/$1"; echo "$W/$1"; }
# py CODE ARGS...: python3 with json, struct and sys imported.
py() { local code=$1; shift; python3 -c "import json, struct, sys, os
$code" "$@"; }
# Rewrites a meta file's JSON with a Python expression on `m`.
edit_meta() { py "p = sys.argv[1]; m = json.load(open(p)); $2; open(p, 'w').write(json.dumps(m))" "$1"; }
# Writes a safetensors file: header text (spaces pad it to 8 bytes), then N zero bytes.
write_st() { py "h = sys.argv[2].encode(); h += b' ' * (-len(h) % 8)
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(h)) + h + bytes(int(sys.argv[3])))" "$1" "$2" "$3"; }

n=0
printf '| # | case | exit | message |\n|---:|---|---:|---|\n' > "$table"
# expect NAME WORDS CMD...: the command must fail cleanly with WORDS in its Error: line.
# works NAME STATUS DETAIL: a case that must succeed (STATUS 0), DETAIL shown if it did not.
works() {
    n=$((n + 1))
    printf '| %d | %s | %d | %s |\n' "$n" "$1" "$2" "$([ "$2" = 0 ] && echo "handled" || echo "${3:0:200}")" >> "$table"
    if [ "$2" = 0 ]; then echo "ok $n ($1)"; else fails=$((fails + 1)); echo "FAIL $n ($1): $3"; fi
}
# effect NAME STATUS: works NAME, passed when STATUS (of the test run just before) is 0.
effect() { [ "$2" = 0 ] && works "$1" 0 "" || works "$1" 1 "not so"; }
expect() {
    local name=$1; shift
    n=$((n + 1))
    check_failure "$@"
    local shown=${error_line#Error: }
    shown=${shown//|/\\|}
    printf '| %d | %s | %d | %s |\n' "$n" "$name" "$failure_status" "${shown:0:220}" >> "$table"
    if [ -n "$why" ]; then
        fails=$((fails + 1))
        echo "FAIL $n ($name): $why"; sed 's/^/    /' <<< "$error_text"
    else
        echo "ok $n ($name): ${shown:0:150}"
    fi
}
o=$W/scratch-out   # an output directory for runs that must not start

# --- the config and its overrides -------------------------------------------------------
t() { expect "$1" "$2" $nc train "$cfg" --output_dir="$o/$((n + 1))" "${@:3}"; }
t "depth -1 (override)" "depth must be in 1...4096, got -1" --depth=-1
printf 'depth = -1\nvocab_size = 300\n' > "$W/neg.py"
expect "depth -1 (config file)" "depth must be in 1...4096" $nc train "$W/neg.py" --data_dir="$W/data" --tokenizer_dir="$W/tok" --output_dir="$o"
t "depth 0" "depth must be in 1...4096, got 0" --depth=0
t "depth 10^12" "depth must be in 1...4096" --depth=1000000000000
t "depth 1000 (does not fit in memory)" "needs about" --depth=1000 '--block_pattern=["T"]*1000'
t "a micro-batch whose logits do not fit in memory" "a micro-batch's logits" --device_batch_size=1048576 --total_batch_size=33554432
t "max_seq_len -5" "max_seq_len" --max_seq_len=-5
t "max_seq_len 2^63-1" "max_seq_len" --max_seq_len=9223372036854775807
t "device_batch_size 2^63-1" "device_batch_size must be in 1...1048576" --device_batch_size=9223372036854775807
t "device_batch_size 0" "device_batch_size must be in 1...1048576, got 0" --device_batch_size=0
t "total_batch_size -64" "total_batch_size must be in 1..." --total_batch_size=-64
t "total_batch_size not a multiple" "is not a multiple of device_batch_size × max_seq_len" --total_batch_size=100
t "integer overflow in +" "integer overflow" '--depth=9223372036854775807 + 1'
t "integer overflow in *" "integer overflow" '--depth=9223372036854775807 * 2'
t "integer overflow in unary -" "integer overflow" '--seed=-(-9223372036854775807 - 1)'
t "float literal 1e999" "too large for a 64-bit float" --target_flops=1e999
t "target_flops 1e300" "more than the 1000000000 a run may have" --num_iterations=-1 --target_flops=1e300
t "target_param_data_ratio 1e300" "more than the 1000000000 a run may have" --num_iterations=-1 --target_param_data_ratio=1e300
t "num_iterations 2^62" "num_iterations must be at most" --num_iterations=4611686018427387904
t "no horizon" "no horizon" --num_iterations=-1 --target_flops=-1 --target_param_data_ratio=-1
t "block_pattern of 10^12 entries" "longer than the 100000" '--block_pattern=["T"] * 1000000000000'
t "an empty list repeated 5555555555 times" "block_pattern has 0 entries but depth is 2" '--block_pattern=[] * 5555555555'
t "block_pattern length ≠ depth" "block_pattern has 3 entries but depth is 2" '--block_pattern=["T","M","M"]'
t "block_pattern bad entry" 'block_pattern[1] is "X"' '--block_pattern=["T","X"]'
t "unknown key" "did you mean depth" --depht=2
t "override without a value" "--depth" --depth
t "string for an int" "depth" '--depth="four"'
t "malformed number" "malformed number" --matrix_lr=1e+
t "unknown name in a value" "unknown name" --matrix_lr=nan
t "warmup_ratio 2" "warmup_ratio must be in [0, 1], got 2" --warmup_ratio=2
t "threads -2 (key)" "threads must be in 1...1024, got -2" --threads=-2
t "threads 10^6 (key)" "threads must be in 1...1024" --threads=1000000
t "dtype float16 (key)" 'dtype must be bfloat16 or float32, got "float16"' --dtype=float16
t "dtype as a number (key)" "dtype" --dtype=16
t "n_embd not divisible by n_head" "n_embd 100 must be divisible by n_head" --n_embd=100 --n_head=3
expect "init, vocab_size above 65536" "vocab_size is 70000; the most this accepts is 65536" $nc init "$cfg" --out "$W/o4" --vocab_size=70000
printf 'depth = (\n' > "$W/syntax.py"
expect "config syntax error" "syntax.py:1" $nc train "$W/syntax.py"
expect "config file missing" "no-such.py" $nc train "$W/no-such.py"
expect "config file is a directory" "$W" $nc train "$W"
printf 'depth = 2\xff\n' > "$W/binary.py"
expect "config file not UTF-8" "binary.py" $nc train "$W/binary.py"
python3 -c "print('depth = ' + '(' * 200000 + '2' + ')' * 200000)" > "$W/parens.py"
expect "200,000 nested parentheses" "nests more than 100 deep" $nc train "$W/parens.py"
python3 -c "print('depth = ' + '-' * 500000 + '2')" > "$W/minus.py"
expect "500,000 unary minuses" "nests more than 100 deep" $nc train "$W/minus.py"
t "leading zeros (Python refuses 007)" "leading zeros in a decimal integer" --seed=007
t "negative matrix_lr" "matrix_lr must be a finite number ≥ 0, got -0.02" --matrix_lr=-0.02
t "negative weight_decay" "weight_decay must be a finite number ≥ 0" --weight_decay=-1
printf 'depth = 2\nmodel_tag = "a\\xZZ"\n' > "$W/escape.py"
expect "a bad \\x escape in a string" "malformed \\x escape" $nc train "$W/escape.py"
printf 'depth = 2\n  vocab_size = 300\n' > "$W/indent.py"
expect "an indented assignment" "indent.py:2:1: unexpected indent" $nc train "$W/indent.py"

# --- data and tokenizer -------------------------------------------------------------------
t "data_dir missing" "data.json: cannot open" --data_dir="$W/none"
t "tokenizer_dir missing" "no such tokenizer directory" --tokenizer_dir="$W/none"
t "shards of another tokenizer, same size" "made with another tokenizer" --data_dir="$W/data2"
copydata() { mkdir -p "$1" && cp "$W/data/"*.bin "$W/data/data.json" "$1/"; }
copydata "$W/short" && head -c 5000 "$W/data/train_000000.bin" > "$W/short/train_000000.bin"
t "train shard truncated" "header says" --data_dir="$W/short"
copydata "$W/magic" && printf 'XXXX' | dd of="$W/magic/train_000000.bin" conv=notrunc 2>/dev/null
t "train shard bad magic" "bad magic" --data_dir="$W/magic"
copydata "$W/empty" && : > "$W/empty/train_000000.bin"
t "train shard empty" "too short for a token shard" --data_dir="$W/empty"
copydata "$W/oov" && printf '\xff\xff' | dd of="$W/oov/train_000000.bin" bs=1 seek=1030 conv=notrunc 2>/dev/null
t "token outside the vocabulary" "token 65535 at position 3 is outside the vocabulary of 300" --data_dir="$W/oov"
copydata "$W/unfinished" && rm "$W/unfinished/data.json"
t "shards without data.json (prepare interrupted)" "an unfinished \`nanochat prepare\`" --data_dir="$W/unfinished"
copydata "$W/recount" && py "
import json; p = sys.argv[1]; d = json.load(open(p)); d['train']['shards'][0]['tokens'] += 1; json.dump(d, open(p, 'w'))" "$W/recount/data.json"
t "a shard whose size is not data.json's" "but data.json says" --data_dir="$W/recount"
mkdir -p "$W/tiny" && py "
h = [20240520, 1, 10] + [0] * 253
open(sys.argv[1], 'wb').write(struct.pack('<256i', *h) + bytes(20))" "$W/tiny/train.bin" && cp "$W/data/val_000000.bin" "$W/tiny/val.bin"
t "train.bin (single-file layout) smaller than one micro-batch" "fewer than one micro-batch" --data_dir="$W/tiny"
mkdir -p "$W/badinfo" && cp "$W/data/"*.bin "$W/badinfo/" && echo '[1, 2]' > "$W/badinfo/data.json"
t "data.json not an object" "data.json: not a JSON object" --data_dir="$W/badinfo"
mkdir -p "$W/tokbad" && cp "$W/tok/"* "$W/tokbad/" && echo '!!!! 0' > "$W/tokbad/tokenizer.tiktoken"
t "tokenizer ranks not base64" "tokenizer.tiktoken:1: expected" --tokenizer_dir="$W/tokbad"
mkdir -p "$W/tokbool" && cp "$W/tok/"* "$W/tokbool/" && py "p = sys.argv[1]; m = json.load(open(p)); m['vocab_size'] = True; open(p, 'w').write(json.dumps(m))" "$W/tokbool/tokenizer_info.json"
t "tokenizer_info.json vocab_size true" "vocab_size true" --tokenizer_dir="$W/tokbool"
mkdir -p "$W/toklink" && cp "$W/tok/"* "$W/toklink/" && rm "$W/toklink/tokenizer.tiktoken" && ln -s "$W/tok/tokenizer.tiktoken" "$W/toklink/tokenizer.tiktoken"
t "tokenizer ranks a link out of the folder" "outside its folder" --tokenizer_dir="$W/toklink"
mkdir -p "$W/datalink" && cp "$W/data/"*.bin "$W/data/data.json" "$W/datalink/" && shard=$(ls "$W/datalink/"*.bin | head -1) && rm "$shard" && ln -s "$W/data/$(basename "$shard")" "$shard"
t "a data shard linked from outside the folder" "outside its folder" --data_dir="$W/datalink"
copydata "$W/datatrue" && py "p = sys.argv[1]; m = json.load(open(p)); m['train']['shards'][0]['tokens'] = True; open(p, 'w').write(json.dumps(m))" "$W/datatrue/data.json"
t "data.json: a shard's tokens true" "tokens is true, not an integer" --data_dir="$W/datatrue"
mkdir -p "$W/tokbig" && cp "$W/tok/tokenizer_info.json" "$W/tokbig/" && py "
import base64
with open(sys.argv[1], 'w') as f:
    for r in range(70000): f.write(base64.b64encode(r.to_bytes(3, 'big')).decode() + ' ' + str(r) + '\n')" "$W/tokbig/tokenizer.tiktoken"
expect "tokenizer of more than 65536 ids (prepare)" "the most a uint16 token shard holds" $nc prepare --input "$W/corpus.txt" --tokenizer "$W/tokbig" --out "$W/o2"
expect "tokenizer train, vocab 100" "vocab" $nc tokenizer train --input "$W/corpus.txt" --vocab-size 100 --out "$W/o3"
expect "tokenizer train, vocab 100000" "65536" $nc tokenizer train --input "$W/corpus.txt" --vocab-size 100000 --out "$W/o3"
printf 'abc\xff' > "$W/bad.txt"
expect "tokenizer train on invalid UTF-8" "bad.txt: line 1: the text is not valid UTF-8 (byte 0xff at offset 3 of the line)" $nc tokenizer train --input "$W/bad.txt" --out "$W/o3"
expect "prepare, input missing" "no-such.txt" $nc prepare --input "$W/no-such.txt" --tokenizer "$W/tok" --out "$W/o2"
expect "prepare, val fraction 2" "--val-fraction must be in (0, 1)" $nc prepare --input "$W/corpus.txt" --tokenizer "$W/tok" --out "$W/o2" --val-fraction 2
# Corpus files: every bad row names the file and the row or line.
fx=Tests/CorpusTests/Fixtures
p() { expect "$1" "$2" $nc prepare --tokenizer "$W/tok" --out "$W/o2" "${@:3}"; }
head -c 1500 $fx/parquet/zstd-v1-dict.parquet > "$W/cut.parquet"
p "parquet cut short" "cut.parquet: not a parquet file: it does not end with PAR1" --input "$W/cut.parquet"
cp $fx/parquet/zstd-v1-dict.parquet "$W/flip.parquet" && printf '\x00\x00\x00\x00\x00\x00' | dd of="$W/flip.parquet" bs=1 seek=162 conv=notrunc 2>/dev/null   # its dictionary page header
p "parquet page corrupted" "flip.parquet: row group 0, column text" --input "$W/flip.parquet"
p "parquet column missing" 'no column "body"; the file has id, text' --input $fx/parquet/none-v1-dict.parquet --field body
p "parquet nested column" 'column "text" is nested' --input $fx/parquet/bad-nested.parquet
p "parquet column of another type" 'column "text" has physical type INT32, not a string (BYTE_ARRAY)' --input $fx/parquet/bad-type.parquet
p "parquet null text" "row 3 (row group 0): the text value is null (--skip-bad skips such rows)" --input $fx/parquet/gzip-v2-plain.parquet
p "JSONL line not JSON" "bad.jsonl: line 2: not JSON" --input $fx/jsonl/bad.jsonl
grep -v 'cut short' $fx/jsonl/bad.jsonl > "$W/nofield.jsonl"
p "JSONL line without the field" 'nofield.jsonl: line 2: no "text" field (it has body; choose one with --field)' --input "$W/nofield.jsonl"
head -c 300 $fx/jsonl/docs.jsonl.zst > "$W/cut.jsonl.zst"
p "zstd frame cut short" "cut.jsonl.zst: truncated zstd data" --input "$W/cut.jsonl.zst"
printf 'ok\n\nbad \xff\n' > "$W/bad-utf8.txt"
p "text not UTF-8" "bad-utf8.txt: line 3: the text is not valid UTF-8" --input "$W/bad-utf8.txt"
p "glob matching nothing" "the pattern matches no file" --input "$W/*.nothing"
p "--shard-tokens 0" "--shard-tokens must be in 1...2147483647" --input "$W/corpus.txt" --shard-tokens 0
p "--max-tokens 1" "--max-tokens must be at least 2" --input "$W/corpus.txt" --max-tokens 1
if $nc prepare --tokenizer "$W/tok" --out "$W/skipped" --input $fx/jsonl/bad.jsonl $fx/jsonl/docs.jsonl --skip-bad 2> /dev/null | grep -q "skipped 5 bad row(s)"; then
    echo "ok (--skip-bad: the bad rows are skipped and counted)"
else
    echo "FAIL (--skip-bad did not report 5 skipped rows)"; fails=$((fails + 1))
fi

# --- resuming from broken checkpoints -----------------------------------------------------
r() { local dir=$2; expect "$1" "$3" $nc train "$cfg" --output_dir="$dir" --resume "${@:4}"; }
d=$(copy c1); edit_meta "$d/meta_000004.json" "m['model_config'] = 5"
r "meta: model_config is 5" "$d" "meta_000004.json"
d=$(copy c2); edit_meta "$d/meta_000004.json" "m['model_config'] = None"
r "meta: model_config is null" "$d" "meta_000004.json"
d=$(copy c3); echo 'not json' > "$d/meta_000004.json"
r "meta: not JSON" "$d" "meta_000004.json"
d=$(copy c4); echo '[]' > "$d/meta_000004.json"
r "meta: a JSON array" "$d" "meta_000004.json"
d=$(copy c5); edit_meta "$d/meta_000004.json" "m['resume']['train_position'] = -100"
r "meta: negative train_position" "$d" "train_position -100"
d=$(copy c6); edit_meta "$d/meta_000004.json" "m['resume']['train_position'] = 2**62"
r "meta: train_position past the shard" "$d" "resume state out of range"
d=$(copy c7); edit_meta "$d/meta_000004.json" "m['model_config']['n_layer'] = 10**15"
r "meta: n_layer 10^15" "$d" "n_layer is 1000000000000000"
d=$(copy c8); edit_meta "$d/meta_000004.json" "m['model_config']['n_layer'] = -1"
r "meta: n_layer -1" "$d" "n_layer must be positive"
d=$(copy c8b); edit_meta "$d/meta_000004.json" "m['model_config']['n_layer'] = -40; del m['model_config']['block_pattern']"
r "meta: n_layer -40 and no block_pattern" "$d" "n_layer must be in 1...4096, got -40"
d=$(copy c9); edit_meta "$d/meta_000004.json" "m['tokenizer_hash'] = '0123456789abcdef'"
r "meta: trained with another tokenizer" "$d" "another tokenizer"
d=$(copy c10); rm "$d/optim_000004.safetensors"
r "optimiser state missing" "$d" "optim_000004.safetensors"
d=$(copy c10b); mv "$d/model_000004.safetensors" "$W/outside-model.safetensors" && ln -s "$W/outside-model.safetensors" "$d/model_000004.safetensors"
r "model file a link out of the run directory" "$d" "outside its folder"
d=$(copy c11); head -c 1000 "$run/model_000004.safetensors" > "$d/model_000004.safetensors"
r "model truncated" "$d" "model_000004.safetensors"
d=$(copy c12); py "open(sys.argv[1], 'r+b').write(struct.pack('<Q', 2**64 - 1))" "$d/model_000004.safetensors"
r "safetensors header length 2^64-1" "$d" "header of"
d=$(copy c13); write_st "$d/model_000004.safetensors" '{"wte.weight":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,16]}}' 16
r "safetensors shape [2^40, 2^40]" "$d" "shape [1099511627776, 1099511627776]"
d=$(copy c14); write_st "$d/model_000004.safetensors" '{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}' 24
r "safetensors overlapping offsets" "$d" "overlap"
d=$(copy c15); write_st "$d/model_000004.safetensors" '{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}' 8
r "safetensors data past the end" "$d" "truncated"
d=$(copy c16); write_st "$d/model_000004.safetensors" '[1, 2, 3]' 0
r "safetensors header not an object" "$d" "not a JSON object"
d=$(copy c17); write_st "$d/model_000004.safetensors" '{"a":{"dtype":"I8","shape":[4],"data_offsets":[0,4]}}' 4
r "safetensors dtype I8" "$d" "dtype I8 is not supported"
d=$(copy c18); py "
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n]); e = h['transformer.wte.weight']; s = 8 + n + e['data_offsets'][0]
b[s:s + 4] = struct.pack('<f', float('nan')); open(p, 'wb').write(b)" "$d/model_000004.safetensors"
r "NaN weight" "$d" "not finite"
expect "eval of a NaN weight" "not finite" $nc eval --checkpoint "$d" --data "$W/data/val_000000.bin"
r "resume-step 99" "$run" "no checkpoint for step 99" --resume-step 99
expect "resume with nothing to resume" "no checkpoint to resume from" $nc train "$cfg" --output_dir="$W/nothing" --resume
r "resume, another model" "$run" "another model than the config" '--block_pattern=["M","M"]'
expect "fresh run over a finished one" "already holds checkpoints" $nc train "$cfg"
expect "--overwrite with a typo in data_dir" "data.json: cannot open" $nc train "$cfg" --overwrite --data_dir="$W/typo"
expect "--overwrite with a bad tokenizer" "no such tokenizer directory" $nc train "$cfg" --overwrite --tokenizer_dir="$W/typo"

# --- the other commands -------------------------------------------------------------------
expect "eval --seq 2^63-1" "--seq" $nc eval --checkpoint "$run" --data "$W/data" --seq 9223372036854775807
expect "eval logits that do not fit in memory" "the logits of --batch 1048576" $nc eval --checkpoint "$run" --data "$W/data" --batch 1048576 --seq 16777216
expect "eval --seq -1" "--seq must be in 1...16777216, got -1" $nc eval --checkpoint "$run" --data "$W/data" --seq -1
expect "eval --batch 0" "--batch must be in 1...1048576, got 0" $nc eval --checkpoint "$run" --data "$W/data" --batch 0
expect "eval, shard missing" "no-such.bin" $nc eval --checkpoint "$run" --data "$W/no-such.bin"
expect "eval, checkpoint missing" "no checkpoint" $nc eval --checkpoint "$W/none" --data "$W/data"
expect "eval, step missing" "no checkpoint for step 7" $nc eval --checkpoint "$run" --step 7 --data "$W/data"
# Chat: fine-tuning data, flags and checkpoints.
printf '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n{"messages": [{"role": "assistant", "content": "first"}]}\n' > "$W/chat.jsonl"
expect "sft, a conversation out of order" "chat.jsonl: line 2: message 0 is from the assistant but should be from the user" $nc sft --checkpoint "$run" --data "$W/chat.jsonl" --out "$W/sft"
expect "sft, unknown task" 'unknown task "poetry"' $nc sft --checkpoint "$run" --tasks poetry --out "$W/sft"
expect "sft, data file missing" "no-such.jsonl: no such file or directory" $nc sft --checkpoint "$run" --data "$W/no-such.jsonl" --out "$W/sft"
expect "sft into a directory with checkpoints" "already holds checkpoints" $nc sft --checkpoint "$run" --tasks identity --task-examples 20 --out "$run"
expect "chat, checkpoint missing" "no checkpoint" $nc chat --checkpoint "$W/none" --prompt hi
expect "chat --temperature -1" "--temperature must be ≥ 0, got -1.0" $nc chat --checkpoint "$run" --prompt hi --temperature -1
expect "chat-eval --questions 0" "--questions must be in 1...100000, got 0" $nc chat-eval --checkpoint "$run" --questions 0
expect "eval, shard of another tokenizer" "another tokenizer" $nc eval --checkpoint "$run" --data "$W/data2"
expect "sample, another tokenizer of the same size" "another tokenizer" $nc sample --checkpoint "$run" --tokenizer "$W/tok2" --prompt hi
expect "sample --temperature -1" "--temperature must be ≥ 0" $nc sample --checkpoint "$run" --prompt hi --temperature -1
expect "sample --temperature inf" "--temperature must be finite, got inf" $nc sample --checkpoint "$run" --prompt hi --temperature inf
expect "sample --top-k -5" "--top-k must be ≥ 0, got -5" $nc sample --checkpoint "$run" --prompt hi --top-k -5
expect "sample --max-new-tokens 1e8" "1e8" $nc sample --checkpoint "$run" --prompt hi --max-new-tokens 1e8
expect "sample --tokens outside the vocabulary" "99999" $nc sample --checkpoint "$run" --tokens 99999
expect "sample --tokens not numbers" "abc" $nc sample --checkpoint "$run" --tokens 1,abc
long=$(head -c 100000 /dev/zero | tr '\0' 'a' | sed 's/a\{10\}/word word /g')
expect "sample, a 100 kB prompt past the context" "this model's context is 32 tokens" $nc sample --checkpoint "$run" --prompt "$long"
expect "chat --prompt, a 100 kB message past the context" "leave no room for a reply in the model's context of 32 tokens" $nc chat --checkpoint "$run" --prompt "$long"
# The terminal chat: a 1 MB line is refused (nothing fed) and the conversation goes on.
{ head -c 1000000 /dev/zero | tr '\0' 'a' | sed 's/a\{10\}/word word /g'; echo; echo hi; echo /quit; } > "$W/long-chat.txt"
timeout 60 $nc chat --checkpoint "$run" --max-tokens 4 < "$W/long-chat.txt" > "$W/long-chat.out" 2>&1
[ $? = 0 ] && grep -q "leave no room for a reply" "$W/long-chat.out" && [ "$(grep -o 'Assistant: ' "$W/long-chat.out" | wc -l)" = 2 ]
works "chat, a 1 MB line refused and the next line answered" $? "$(tail -c 200 "$W/long-chat.out")"
# Hugging Face folders: sizes range-checked, integers strictly, merges as the vocabulary
# implies, our blocks' constants, files inside the folder.
$nc init "$cfg" --out "$W/allT" '--block_pattern=["T","T"]' --vocab_size=300 > /dev/null
$nc export --checkpoint "$W/allT" --tokenizer "$W/tok" --out "$W/hfT" > /dev/null
$nc export --checkpoint "$run" --out "$W/hfH" > /dev/null
hf() {   # hf NAME FOLDER PYTHON WORDS: a copy of FOLDER edited by PYTHON (d: config.json, t: tokenizer.json), imported
    rm -rf "$W/$1"; cp -r "$2" "$W/$1"
    py "d = json.load(open(sys.argv[1] + '/config.json')); t = json.load(open(sys.argv[1] + '/tokenizer.json'))
$3
json.dump(d, open(sys.argv[1] + '/config.json', 'w')); json.dump(t, open(sys.argv[1] + '/tokenizer.json', 'w'))" "$W/$1"
    expect "import hf: $1" "$4" $nc import --format hf --checkpoint "$W/$1" --out "$W/$1-out"
}
hf layers-2 "$W/hfT" "d['num_hidden_layers'] = -2" "num_hidden_layers must be in 1...4096, got -2"
hf layers1e12 "$W/hfT" "d['num_hidden_layers'] = 10**12" "num_hidden_layers must be in 1...4096, got 1000000000000"
hf layers-true "$W/hfT" "d['num_hidden_layers'] = True" "num_hidden_layers is missing or not an integer"
hf heads-float "$W/hfT" "d['num_attention_heads'] = 2.0" "num_attention_heads is missing or not an integer"
hf merges-reversed "$W/hfT" "t['model']['merges'].reverse()" "model.merges[0] is"
hf merges-empty "$W/hfT" "t['model']['merges'] = []" "model.merges has 0 merges"
hf merges-garbage "$W/hfT" "t['model']['merges'][3] = ['x', 'y']" 'model.merges[3] is "x" + "y"'
hf hybrid-rope "$W/hfH" "d['rope_theta'] = 500000.0" "rope_theta is 500000"
hf hybrid-softcap "$W/hfH" "d['logit_softcap'] = 30.0" "logit_softcap is 30"
hf hybrid-eps "$W/hfH" "d['rms_norm_eps'] = 1e-05" "rms_norm_eps is 1e-05"
rm -rf "$W/hf-link"; cp -r "$W/hfT" "$W/hf-link"; rm "$W/hf-link/tokenizer.json"; ln -s "$W/hfT/tokenizer.json" "$W/hf-link/tokenizer.json"
expect "import hf: a symbolic link out of the folder" "outside its folder" $nc import --format hf --checkpoint "$W/hf-link" --out "$W/hf-link-out"
# Parquet: a schema nested 60,000 deep is refused (no deep recursion), a file with no rows reads as no documents.
python3 tools/deep_parquet.py 60000 "$W/deep.parquet"
expect "parquet schema nested 60,000 deep" "the schema nests more than 64 levels deep" $nc prepare --tokenizer "$W/tok" --out "$W/o-deep" --input "$W/deep.parquet"
python3 tools/deep_parquet.py 0 "$W/norows.parquet"
$nc prepare --tokenizer "$W/tok" --out "$W/o-norows" --input "$W/norows.parquet" $fx/parquet/zstd-v1-dict.parquet --skip-bad > "$W/norows.out" 2>&1
works "parquet with no rows beside another file: prepared" $? "$(tail -c 200 "$W/norows.out")"
expect "sample, both --prompt and --tokens" "either --prompt" $nc sample --checkpoint "$run" --prompt a --tokens 1
expect "--threads -2 (flag)" "--threads must be in 1...1024, got -2" $nc eval --checkpoint "$run" --data "$W/data" --threads -2
expect "--threads 0 (flag)" "--threads must be in 1...1024, got 0" $nc sample --checkpoint "$run" --prompt hi --threads 0
expect "--dtype half (flag)" "--dtype" $nc sample --checkpoint "$run" --prompt hi --dtype half
expect "init --depth=-1" "depth must be in 1...4096" $nc init "$cfg" --out "$W/o4" --depth=-1 --vocab_size=300
expect "sweep --depths 1e17" "1e17" $nc sweep "$cfg" --depths 1e17 --target-flops 1e9 --out "$W/o5"
expect "sweep --depths -1" "--depths" $nc sweep "$cfg" --depths -1 --target-flops 1e9 --out "$W/o5"
expect "sweep --depths 100000" "depth must be in 1...4096" $nc sweep "$cfg" --depths 100000 --target-flops 1e9 --out "$W/o5"
expect "sweep --target-flops -5" "--target-flops" $nc sweep "$cfg" --depths 2 --target-flops -5 --out "$W/o5"
expect "unknown subcommand" "frobnicate" $nc frobnicate

# --- the file system ----------------------------------------------------------------------
t "output_dir under a file" "a file of that name is in the way" --output_dir="$W/corpus.txt/run"
t "output_dir on a read-only file system" "/proc/nanochat-run" --output_dir=/proc/nanochat-run
d=$(copy full)
# A file-size limit (ulimit -f) makes writes fail as a full disk would, mid-run.
expect "disk full while saving a checkpoint" "optim_000050.safetensors: cannot write: File too large" \
    bash -c "ulimit -f 40; exec $nc train $cfg --output_dir=$d/again --num_iterations=50 --save_every=0"
expect "disk full while appending metrics" "metrics.jsonl: cannot append to the metrics file: File too large" \
    bash -c "ulimit -f 8; exec $nc train $cfg --output_dir=$d/again --overwrite --num_iterations=400 --save_every=0 --eval_every=0"
if [ -f "$d/again/metrics.jsonl" ]; then
    python3 -c "import json, sys; [json.loads(l) for l in open(sys.argv[1])]" "$d/again/metrics.jsonl" \
        || { echo "FAIL: metrics.jsonl ends in a torn line after the disk filled"; fails=$((fails + 1)); }
fi

# --- two runs in one directory ------------------------------------------------------------
# --- the CORE evaluation's bundle ---------------------------------------------------------
cb=$W/bundle
mkdir -p "$cb/eval_data"
printf 'icl_tasks:\n- label: mc\n  dataset_uri: mc.jsonl\n  num_fewshot: [0]\n  icl_task_type: multiple_choice\n- label: lm\n  dataset_uri: lm.jsonl\n  num_fewshot: [0]\n  icl_task_type: language_modeling\n' > "$cb/core.yaml"
printf 'Eval Task,Random baseline\nmc,50\nlm,0\n' > "$cb/eval_meta_data.csv"
printf '{"query": "To be", "choices": [" or not", " and yet"], "gold": 0}\n{"query": "Good", "choices": [" morrow", " night"], "gold": 1}\n' > "$cb/eval_data/mc.jsonl"
printf '{"context": "ROMEO", "continuation": "and Juliet"}\n' > "$cb/eval_data/lm.jsonl"
$nc core --checkpoint "$run" --bundle "$cb" > "$W/core.log" 2>&1 \
    && works "core: a good bundle" 0 "" || works "core: a good bundle" 1 "$(tail -3 "$W/core.log")"
# --max-per-task N scores the first N examples of each task (mc has two, lm one).
$nc core --checkpoint "$run" --bundle "$cb" --max-per-task 1 > "$W/core1.log" 2>&1
grep -q '^| mc | multiple_choice | 0 | 2 |' "$W/core.log" && grep -q '^| mc | multiple_choice | 0 | 1 |' "$W/core1.log" \
    && grep -q '^| lm | language_modeling | 0 | 1 |' "$W/core1.log" \
    && works "core --max-per-task 1: one example of each task" 0 "" \
    || works "core --max-per-task 1: one example of each task" 1 "$(grep '^| [ml][cm] ' "$W/core.log" "$W/core1.log")"
bundle_copy() { rm -rf "$W/$1"; cp -r "$cb" "$W/$1"; echo "$W/$1"; }
expect "core: no bundle directory" "no such directory" $nc core --checkpoint "$run" --bundle "$W/no-bundle"
b=$(bundle_copy b1); rm "$b/eval_data/lm.jsonl"
expect "core: a task file missing" "eval_data/lm.jsonl: cannot read" $nc core --checkpoint "$run" --bundle "$b"
b=$(bundle_copy b2); printf '{"query": "To be", "choices": [" or not"], "gold": 0}\n{"query": "x",\n' > "$b/eval_data/mc.jsonl"
expect "core: a malformed line" "mc.jsonl:2: not a JSON object" $nc core --checkpoint "$run" --bundle "$b"
b=$(bundle_copy b3); printf '{"query": "To be", "choices": [" or not"], "gold": "0"}\n' > "$b/eval_data/mc.jsonl"
expect "core: gold of the wrong type" 'mc.jsonl:1: "gold" must be a whole number in 0..<1, got "0"' $nc core --checkpoint "$run" --bundle "$b"
b=$(bundle_copy b4); printf 'Eval Task,Random baseline\nmc,50\n' > "$b/eval_meta_data.csv"
expect "core: a task without a baseline" 'no "Random baseline" for the task "lm"' $nc core --checkpoint "$run" --bundle "$b"
b=$(bundle_copy b5); printf 'icl_tasks:\n- label: mc\n  dataset_uri: mc.jsonl\n  num_fewshot: 0\n  icl_task_type: generative\n' > "$b/core.yaml"
expect "core: an unknown task type" 'icl_task_type "generative" is not one of' $nc core --checkpoint "$run" --bundle "$b"
b=$(bundle_copy b6); printf 'icl_tasks:\n  - label: [\n' > "$b/core.yaml"
expect "core: core.yaml not YAML" "core.yaml: not valid YAML" $nc core --checkpoint "$run" --bundle "$b"
b=$(bundle_copy b7); printf '{"context": "The end.", "continuation": "Next"}\n' > "$b/eval_data/lm.jsonl"
printf '  continuation_delimiter: "\\n"\n' >> "$b/core.yaml"
expect "core: a continuation that merges into its context" 'lm.jsonl:1 (task "lm")' $nc core --checkpoint "$run" --bundle "$b"
expect "core: an unknown task in --tasks" '"hellaswag" is not a task of' $nc core --checkpoint "$run" --bundle "$cb" --tasks hellaswag
expect "core: --max-per-task 0" "--max-per-task must be at least 1" $nc core --checkpoint "$run" --bundle "$cb" --max-per-task 0
t "core_metric_every without core_bundle" "core_metric_every needs core_bundle" --core_metric_every=2
b=$(bundle_copy b8); rm "$b/eval_data/mc.jsonl"
expect "core_bundle with a task file missing (before training)" "eval_data/mc.jsonl: cannot read" \
    $nc train "$cfg" --output_dir="$run" --resume --core_metric_every=2 --core_bundle="$b" --num_iterations=6

# Chat benchmarks from their files (nanochat chat-eval --benchmark).
cf="$W/chat_tasks"; mkdir -p "$cf"
printf '{"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"}\n' > "$cf/arc.jsonl"
$nc chat-eval --checkpoint "$run" --benchmark ARC-Easy="$cf/arc.jsonl" > "$W/chat_eval.log" 2>&1 \
    && works "chat-eval: a good ARC file" 0 "" || works "chat-eval: a good ARC file" 1 "$(tail -3 "$W/chat_eval.log")"
expect "chat-eval: an unknown benchmark" 'unknown benchmark "ARC"' $nc chat-eval --checkpoint "$run" --benchmark ARC="$cf/arc.jsonl"
expect "chat-eval: --benchmark without =" "--benchmark takes NAME=FILE" $nc chat-eval --checkpoint "$run" --benchmark "$cf/arc.jsonl"
expect "chat-eval: a missing file" "no-such.jsonl: cannot read the GSM8K file" $nc chat-eval --checkpoint "$run" --benchmark GSM8K="$cf/no-such.jsonl"
printf '{"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"}\n{"question": "q"\n' > "$cf/arc2.jsonl"
expect "chat-eval: a malformed line" "arc2.jsonl:2: not a JSON object" $nc chat-eval --checkpoint "$run" --benchmark ARC-Challenge="$cf/arc2.jsonl"
printf '{"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"}\n' > "$cf/arc3.jsonl"
expect "chat-eval: an answer key not among the labels" '"answerKey" "E" is not one of the labels A, B' $nc chat-eval --checkpoint "$run" --benchmark ARC-Easy="$cf/arc3.jsonl"
printf '{"question": "q", "subject": "s", "choices": ["a", "b", "c", "d"], "answer": "B"}\n' > "$cf/mmlu.jsonl"
expect "chat-eval: an MMLU answer of the wrong type" '"answer" must be a whole number in 0..<4, got "B"' $nc chat-eval --checkpoint "$run" --benchmark MMLU="$cf/mmlu.jsonl"
printf 'PAR1 not a parquet file' > "$cf/gsm.parquet"
expect "chat-eval: a broken parquet file" "gsm.parquet: " $nc chat-eval --checkpoint "$run" --benchmark GSM8K="$cf/gsm.parquet"
expect "chat-eval: a GSM8K parquet file given as ARC" 'no column "choices.text"; the file has question, answer (ARC-Easy reads question, choices.text' \
    $nc chat-eval --checkpoint "$run" --benchmark ARC-Easy=Tests/EvaluationTests/Fixtures/chat_tasks/gsm8k.parquet
# Problems decoded one at a time or five together get the same answers; --max-problems N
# evaluates N; the synthetic tasks run --questions of each task in --tasks.
ce=(chat-eval --checkpoint "$run" --benchmark ARC-Easy=Tests/EvaluationTests/Fixtures/chat_tasks/arc.jsonl
    --benchmark GSM8K=Tests/EvaluationTests/Fixtures/chat_tasks/gsm8k.jsonl --max-problems 4 --max-tokens 12 --json)
one=$($nc "${ce[@]}" --batch-size 1 2> /dev/null); five=$($nc "${ce[@]}" --batch-size 5 2> /dev/null)
[ -n "$one" ] && [ "$one" == "$five" ] && [ "$(grep -o '"index":' <<< "$one" | wc -l)" -eq 8 ]
effect "chat-eval --batch-size 1 and 5: the same answers to 4 problems of each benchmark" $?
$nc chat-eval --checkpoint "$run" --tasks spelling,arithmetic --questions 3 --max-tokens 4 2> /dev/null > "$W/synthetic.log"
grep -q '^| spelling | [0-3] | 3 |' "$W/synthetic.log" && grep -q '^| arithmetic | [0-3] | 3 |' "$W/synthetic.log" \
    && [ "$(grep -c '^| [a-z]* | [0-9]* | [0-9]* |' "$W/synthetic.log")" -eq 2 ]
effect "chat-eval --tasks spelling,arithmetic --questions 3: 3 of each, no other task" $?
expect "chat-eval: --max-problems 0" "--max-problems must be at least 1" $nc chat-eval --checkpoint "$run" --benchmark ARC-Easy="$cf/arc.jsonl" --max-problems 0

# --- every bounded flag from both sides -------------------------------------------------
# edges CMD FLAG ACCEPTED REFUSED WORDS ARGS...: `nanochat CMD ARGS... FLAG V` for each V of
# ACCEPTED passes the flag checks and stops only at the input that is missing on purpose ($W/none
# or no-such.txt, named in its Error: line); for each V of REFUSED it is refused with WORDS, in
# which @ stands for V. So a bound moved by one, either way, fails here.
none=$W/none
edges() {
    local cmd=$1 flag=$2 words=$5 v reach="no checkpoint" good bad
    read -ra good <<< "$3"; read -ra bad <<< "$4"; shift 5
    case $cmd in prepare | "tokenizer train") reach="no-such.txt" ;; import) reach="$none" ;; esac
    for v in "${good[@]}"; do expect "$cmd $flag $v: accepted" "$reach" $nc $cmd "$@" "$flag" "$v"; done
    for v in "${bad[@]}"; do expect "$cmd $flag $v: refused" "${words//@/$v}" $nc $cmd "$@" "$flag" "$v"; done
}
absent=(--checkpoint "$none")
edges serve --port "1 65535" "0 65536" "--port must be in 1...65535, got @" "${absent[@]}"
edges serve --slots "1 1024" "0 1025" "--slots must be in 1...1024, got @" "${absent[@]}"
edges serve --max-tokens "1" "0" "--max-tokens must be ≥ 1, got @" "${absent[@]}"
edges serve --max-messages "1" "0" "--max-messages must be ≥ 1, got @" "${absent[@]}"
edges serve --max-waiting "0" "-1" "--max-waiting must be ≥ 0, got @" "${absent[@]}"
edges serve --max-body-bytes "1024" "1023" "--max-body-bytes must be ≥ 1024, got @" "${absent[@]}"
edges serve --client-timeout "0.1 3600.0" "0.09 3600.5 inf" "--client-timeout must be in 0.1...3600 seconds, got @" "${absent[@]}"
edges serve --max-connections "1 1000000" "0 1000001" "--max-connections must be in 1...1000000, got @" "${absent[@]}"
edges serve --api-key "k3y" "" "" "${absent[@]}"
expect "serve --api-key 'a b': refused" "--api-key must be a non-empty word without spaces" $nc serve "${absent[@]}" --api-key "a b"
expect "serve --api-key '': refused" "--api-key must be a non-empty word without spaces" $nc serve "${absent[@]}" --api-key ""
edges serve --allow-origin "https://app.example http://localhost:3000 *" "app.example https://app.example/" \
    "--allow-origin takes an origin such as https://app.example (scheme and host, no path), or *; got \"@\"" "${absent[@]}"
edges serve --threads "1 1024" "0 1025" "--threads must be in 1...1024, got @" "${absent[@]}"
edges chat --max-tokens "1 1000000" "0 1000001" "--max-tokens must be in 1...1000000, got @" "${absent[@]}" --prompt hi
edges chat --temperature "0.0" "-0.5" "--temperature must be ≥ 0, got @" "${absent[@]}" --prompt hi
edges chat --top-k "0" "-1" "--top-k must be ≥ 0, got @" "${absent[@]}" --prompt hi
edges sample --max-new-tokens "0" "-1" "--max-new-tokens must be ≥ 0, got @" "${absent[@]}" --prompt hi
edges chat-eval --questions "1 100000" "0 100001" "--questions must be in 1...100000, got @" "${absent[@]}"
edges chat-eval --max-tokens "1 100000" "0 100001" "--max-tokens must be in 1...100000, got @" "${absent[@]}"
edges chat-eval --batch-size "1 1024" "0 1025" "--batch-size must be in 1...1024, got @" "${absent[@]}"
edges chat-eval --max-problems "1" "0" "--max-problems must be at least 1, got @" "${absent[@]}"
edges core --max-per-task "1" "0" "--max-per-task must be at least 1, got @" "${absent[@]}" --bundle "$cb"
edges eval --batch "1 1048576" "0 1048577" "--batch must be in 1...1048576, got @" "${absent[@]}" --data "$W/data"
edges eval --seq "1 16777216" "0 16777217" "--seq must be in 1...16777216, got @" "${absent[@]}" --data "$W/data"
edges eval --steps "1" "0" "--steps must be at least 1, got @" "${absent[@]}" --data "$W/data"
edges sft --task-examples "0 1000000" "-1 1000001" "--task-examples must be in 0...1000000, got @" "${absent[@]}" --out "$o/sft"
edges sft --device-batch-size "1 4096" "0 4097" "--device-batch-size must be in 1...4096, got @" "${absent[@]}" --out "$o/sft"
edges sft --max-seq-len "2 65536" "1 65537" "--max-seq-len must be in 2...65536, got @" "${absent[@]}" --out "$o/sft"
edges sft --num-iterations "1 10000000" "0 10000001" "--num-iterations must be in 1...10000000, got @" "${absent[@]}" --out "$o/sft"
edges sft --init-lr-frac "0.001 10.0" "0.0 10.5" "--init-lr-frac must be in (0, 10], got @" "${absent[@]}" --out "$o/sft"
edges sft --eval-every "0" "-1" "--eval-every and --save-every must be ≥ 0" "${absent[@]}" --out "$o/sft"
edges sft --save-every "0" "-1" "--eval-every and --save-every must be ≥ 0" "${absent[@]}" --out "$o/sft"
edges import --step "0" "-1" "--step must be ≥ 0, got @" --checkpoint "$none" --out "$o/import"
prep=(--input "$W/no-such.txt" --tokenizer "$W/tok" --out "$o/prep")
edges prepare --val-fraction "0.001 0.999" "0.0 1.0" "--val-fraction must be in (0, 1), got @" "${prep[@]}"
edges prepare --shard-tokens "1 2147483647" "0 2147483648" "--shard-tokens must be in 1...2147483647 (a shard's header counts its tokens in an int32), got @" "${prep[@]}"
edges prepare --max-tokens "2" "1" "--max-tokens must be at least 2 (one for train, one for val), got @" "${prep[@]}"
# total DIR: the tokens of a prepared directory, train and val together (from its data.json).
total() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["train_tokens"] + d["val_tokens"])' "$1/data.json" 2>&1; }
# --max-tokens N keeps the corpus's first N tokens, train and val together.
$nc prepare --input "$W/corpus.txt" --tokenizer "$W/tok" --out "$W/prep-max" --max-tokens 3000 > /dev/null 2>&1
got=$(total "$W/prep-max")
[ "$got" = 3000 ] && works "prepare --max-tokens 3000: 3000 tokens" 0 "" || works "prepare --max-tokens 3000: 3000 tokens" 1 "got ${got:0:160}"
# Other flags, each seen to change what its command does.
$nc prepare --input "$W/corpus.txt" --tokenizer "$W/tok" --out "$W/prep-shards" --shard-tokens 10000 > /dev/null 2>&1
[ "$(ls "$W/prep-shards"/train_*.bin 2>/dev/null | wc -l)" -gt 1 ] && [ "$(ls "$W/data"/train_*.bin | wc -l)" -eq 1 ]
effect "prepare --shard-tokens 10000: several train shards, where the default makes one" $?
printf '%s\n' '{"text": "To be, or not to be, that is the question.", "body": "Ay."}' '{"text": "Whether tis nobler in the mind to suffer", "body": "No."}' > "$W/fields.jsonl"
$nc prepare --input "$W/fields.jsonl" --tokenizer "$W/tok" --out "$W/prep-text" > /dev/null 2>&1
$nc prepare --input "$W/fields.jsonl" --tokenizer "$W/tok" --out "$W/prep-body" --field body > /dev/null 2>&1
[ "$(total "$W/prep-body")" -lt "$(total "$W/prep-text")" ] 2> /dev/null
effect "prepare --field body reads the body field ($(total "$W/prep-body") tokens, text: $(total "$W/prep-text"))" $?
$nc tokenizer train --input "$W/corpus.txt" --vocab-size 300 --max-chars 2000 --out "$W/tok-chars" > /dev/null 2>&1
$nc tokenizer train --input "$W/corpus.txt" --vocab-size 300 --doc-cap 8 --out "$W/tok-cap" > /dev/null 2>&1
[ -s "$W/tok-chars/tokenizer.tiktoken" ] && [ -s "$W/tok-cap/tokenizer.tiktoken" ] \
    && ! cmp -s "$W/tok/tokenizer.tiktoken" "$W/tok-chars/tokenizer.tiktoken" \
    && ! cmp -s "$W/tok/tokenizer.tiktoken" "$W/tok-cap/tokenizer.tiktoken" \
    && ! cmp -s "$W/tok-chars/tokenizer.tiktoken" "$W/tok-cap/tokenizer.tiktoken"
effect "tokenizer train --max-chars 2000 and --doc-cap 8 each learn other merges" $?
$nc eval --checkpoint "$run" --data "$W/data" --batch 2 --seq 32 --steps 3 --json 2> /dev/null | grep -q '"batches": 3, "tokens": 192'
effect "eval --batch 2 --seq 32 --steps 3: 192 tokens in 3 batches" $?
edges prepare --max-document-bytes "16 1073741824" "15 1073741825" "--max-document-bytes must be in 16...1073741824, got @" "${prep[@]}"
tok=(--input "$W/no-such.txt" --out "$o/tok")
edges "tokenizer train" --vocab-size "265 65536" "264 65537" "--vocab-size must be in 265...65536 (256 bytes + 9 special tokens, uint16 shards), got @" "${tok[@]}"
edges "tokenizer train" --max-chars "1.0 1e+15" "0.5 1e+16" "--max-chars must be in 1...1e15, got @" "${tok[@]}"
edges "tokenizer train" --doc-cap "1" "0" "--doc-cap must be at least 1, got @" "${tok[@]}"

d=$(copy locked)
$nc train "$cfg" --output_dir="$d" --overwrite --num_iterations=100000 --save_every=0 --eval_every=0 > "$W/holder.log" 2>&1 &
holder=$!
for _ in $(seq 100); do grep -q "^step 0000" "$W/holder.log" 2>/dev/null && break; sleep 0.2; done
expect "a second run in a directory in use" "is in use by another run (pid $holder" $nc train "$cfg" --output_dir="$d" --resume
expect "a second fresh run in a directory in use" "is in use by another run" $nc train "$cfg" --output_dir="$d" --overwrite
kill -9 $holder; wait $holder 2>/dev/null
# The killed holder's lock is taken over, and it had not replaced the checkpoints.
(cd "$d" && find . -maxdepth 1 -name '*_00000[24].*' -print0 | sort -z | xargs -0 md5sum) > "$W/locked.sum"
(cd "$run" && find . -maxdepth 1 -name '*_00000[24].*' -print0 | sort -z | xargs -0 md5sum) | diff -q - "$W/locked.sum" > /dev/null \
    || { echo "FAIL: the killed fresh run changed the checkpoints it was to replace"; fails=$((fails + 1)); }
$nc train "$cfg" --output_dir="$d" --resume > /dev/null 2>&1 \
    || { echo "FAIL: the lock of a killed run was not taken over"; fails=$((fails + 1)); }

echo
if [ "$(sums)" != "$before" ]; then
    echo "FAIL: the finished run's files changed"; diff <(echo "$before") <(sums); fails=$((fails + 1))
fi
echo "$n cases, $fails failures (table: $table)"
[ $fails -eq 0 ]
