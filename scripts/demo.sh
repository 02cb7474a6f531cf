#!/usr/bin/env bash
# The main job: train a small hybrid Transformer/Mamba model on tinyshakespeare and sample
# from it. Installs missing system libraries, builds, trains a 4096-token tokenizer, writes
# the token shards, trains configs/shakespeare_d4.py (replacing an earlier demo run in
# runs/shakespeare_d4), streams a sample and, on the repository's corpus, reports the model's
# accuracy on a small CORE-style bundle made from the corpus's held-out end (data/core_shakespeare).
#
#   scripts/demo.sh                      the corpus in the repository, data/tinyshakespeare.txt
#   scripts/demo.sh --corpus FILE        any UTF-8 text file instead
#   scripts/demo.sh --num_iterations=50  extra --key=value arguments go to `nanochat train`
set -euo pipefail
cd "$(dirname "$0")/.."

corpus=""
overrides=()
while [ $# -gt 0 ]; do
    case "$1" in
        --corpus) corpus="$2"; shift 2 ;;
        --corpus=*) corpus="${1#--corpus=}"; shift ;;
        *) overrides+=("$1"); shift ;;
    esac
done
corpus=${corpus:-data/tinyshakespeare.txt}
[ -f "$corpus" ] || { echo "error: corpus $corpus not found" >&2; exit 1; }

scripts/install-deps.sh
swift build -c release --product nanochat
nanochat=.build/release/nanochat
data=data/shakespeare

# every character of a small corpus counts (nanochat caps web documents at 10,000 for the tokenizer)
$nanochat tokenizer train --input "$corpus" --vocab-size 4096 --doc-cap 1000000000 --out $data/tokenizer --overwrite
$nanochat prepare --input "$corpus" --tokenizer $data/tokenizer --out $data --overwrite
$nanochat train configs/shakespeare_d4.py --overwrite ${overrides[@]+"${overrides[@]}"}
echo
echo "--- sample (temperature 0.8, top-k 50) ---"
$nanochat sample --checkpoint runs/shakespeare_d4 --prompt "ROMEO:" --max-new-tokens 200
if [ "$corpus" = data/tinyshakespeare.txt ]; then
    echo
    echo "--- CORE-style report on the held-out end of the corpus (data/core_shakespeare) ---"
    $nanochat core --checkpoint runs/shakespeare_d4 --bundle data/core_shakespeare --max-per-task 100
fi
