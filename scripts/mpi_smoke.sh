#!/usr/bin/env bash
# Data-parallel training under mpirun, on this machine: 2 ranks × 1 micro-batch against 1
# process × 2 micro-batches (per-step losses to 1e-5), repeatability (same N, same bits),
# resuming across world sizes, a rank killed with SIGKILL, an error on one rank, ranks
# started with different settings, and the CORE evaluation split over ranks. Needs Open MPI (scripts/install-deps.sh) and a release
# build. As root, Open MPI needs OMPI_ALLOW_RUN_AS_ROOT; this script sets it.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_nanochat
command -v python3 > /dev/null || scripts/install-deps.sh python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
workdir
tiny_data "$W"
cat > "$W/run.py" <<EOF
depth = 2
block_pattern = ["T", "M"]
max_seq_len = 64
device_batch_size = 4
total_batch_size = 512
num_iterations = 20
eval_every = 10
eval_tokens = 1024
sample_every = 0
save_every = 10
threads = 1
data_dir = "$W/data"
tokenizer_dir = "$W/tok"
# fp32 products wherever this runs: the agreements below are of the exchange's fp32 sums. In
# bf16 (the default where the CPU multiplies bf16) 2 ranks and 1 process round the slightly
# different weights of later steps differently, by more than the 1e-5 checked here.
dtype = "float32"
EOF
# losses A B [FROM]: the per-step train losses of two runs agree to 1e-5 relative.
losses() {
    python3 - "$1" "$2" "${3:-0}" <<'EOF'
import json, sys
def rows(p):
    return {r["step"]: r["loss"] for r in map(json.loads, open(p)) if r.get("loss") is not None}
a, b, start = rows(sys.argv[1]), rows(sys.argv[2]), int(sys.argv[3])
steps = sorted(s for s in a if s > start)
assert steps and all(s in b for s in steps), "the runs have different steps"
worst = max(abs(a[s] - b[s]) / abs(a[s]) for s in steps)
print(f"{len(steps)} steps, largest relative difference {worst:.2e}")
sys.exit(0 if worst <= 1e-5 else 1)
EOF
}
run2() { mpirun -np 2 "$nc" train "$W/run.py" "$@"; }

$nc train "$W/run.py" --output_dir="$W/one" > "$W/one.log" 2>&1 || { cat "$W/one.log"; fail "1 process"; }
run2 --output_dir="$W/two" > "$W/two.log" 2>&1 || { cat "$W/two.log"; fail "2 ranks"; }
grep -q "ranks: 2 × 1 threads" "$W/two.log" || fail "the 2-rank run did not say it ran on 2 ranks"
echo -n "2 ranks × 1 micro-batch against 1 process × 2: "
losses "$W/one/metrics.jsonl" "$W/two/metrics.jsonl" || fail "losses differ"

run2 --output_dir="$W/two-again" > /dev/null 2>&1 || fail "2 ranks, again"
cmp -s "$W/two/model_000020.safetensors" "$W/two-again/model_000020.safetensors" \
    && cmp -s "$W/two/optim_000020.safetensors" "$W/two-again/optim_000020.safetensors" \
    && echo "two 2-rank runs: the same bits" || fail "two 2-rank runs differ"

# Two hosts talk over TCP: with shared memory turned off (and the loopback interface, which
# Open MPI leaves out by default, as the link), the same bits.
mpirun -np 2 --mca btl tcp,self --mca btl_tcp_if_include lo "$nc" train "$W/run.py" --output_dir="$W/tcp" > /dev/null 2>&1 || fail "2 ranks over TCP"
cmp -s "$W/two/model_000020.safetensors" "$W/tcp/model_000020.safetensors" \
    && echo "2 ranks over TCP only (--mca btl tcp,self): the same bits as over shared memory" || fail "TCP and shared memory differ"

# On one host the ranks exchange through a shared-memory window; without one (several hosts,
# or here Open MPI's shared-memory windows turned off) through MPI_Reduce_scatter and
# MPI_Allgatherv. Three ranks, so that the two add in different orders: the same losses.
mpirun -np 3 "$nc" train "$W/run.py" --total_batch_size=768 --output_dir="$W/three" > "$W/three.log" 2>&1 \
    || { cat "$W/three.log"; fail "3 ranks"; }
grep -q "exchange: shared memory" "$W/three.log" || fail "3 ranks on one host did not exchange through shared memory"
mpirun -np 3 --mca osc ^sm "$nc" train "$W/run.py" --total_batch_size=768 --output_dir="$W/three-mpi" > "$W/three-mpi.log" 2>&1 \
    || { cat "$W/three-mpi.log"; fail "3 ranks without shared windows"; }
grep -q "exchange: each gradient sent to its owner during the backward pass" "$W/three-mpi.log" \
    || fail "3 ranks without shared windows did not send the gradients during the backward pass"
grep -q "each updated weight to every rank during the next forward pass" "$W/three-mpi.log" \
    || fail "3 ranks without shared windows did not send the weights during the forward pass"
# Both add each gradient's copies in rank order, and the weights sent during the forward pass
# (evaluated and checkpointed along the way) are the owners' bits: the same model.
cmp -s "$W/three/model_000020.safetensors" "$W/three-mpi/model_000020.safetensors" \
    && echo "3 ranks, gradients sent during the backward pass and weights during the forward pass: the same bits as the shared-memory exchange" \
    || fail "3 ranks: the exchange overlapped with compute and the shared-memory exchange give different bits"
# Summed after the backward pass by MPI_Reduce_scatter, which adds in its own order: the same losses.
mpirun -np 3 --mca osc ^sm "$nc" train "$W/run.py" --total_batch_size=768 --overlap_exchange=False --output_dir="$W/three-after" \
    > "$W/three-after.log" 2>&1 || { cat "$W/three-after.log"; fail "3 ranks, exchange after the backward pass"; }
grep -q "exchange: MPI_Reduce_scatter and" "$W/three-after.log" || fail "overlap_exchange=False still overlapped"
echo -n "3 ranks, the exchange overlapped with compute against MPI_Reduce_scatter and MPI_Allgatherv after it: "
losses "$W/three-mpi/metrics.jsonl" "$W/three-after/metrics.jsonl" || fail "the exchange overlapped with compute and after it give different losses"

# Two hosts as two network namespaces of this machine joined by a veth pair: each rank sees
# only its own address, Open MPI starts the second rank through a stand-in for ssh that enters
# the other namespace, and every byte between the ranks crosses the link: the same bits.
a=nc$$a b=nc$$b
if ip netns add "$a" 2> /dev/null; then
    trap 'ip netns del "$a" 2> /dev/null; ip netns del "$b" 2> /dev/null; rm -rf "$W"' EXIT
    ip netns add "$b" && ip link add "v$a" type veth peer name "v$b" \
        && ip link set "v$a" netns "$a" && ip link set "v$b" netns "$b" \
        && ip -n "$a" addr add 10.77.0.1/24 dev "v$a" && ip -n "$b" addr add 10.77.0.2/24 dev "v$b" \
        && ip -n "$a" link set "v$a" up && ip -n "$b" link set "v$b" up \
        && ip -n "$a" link set lo up && ip -n "$b" link set lo up || fail "setting up the veth pair"
    cat > "$W/enter" <<EOF
#!/bin/sh
# enter HOST COMMAND (in place of ssh): runs COMMAND in the network namespace that holds HOST's address
case "\$1" in 10.77.0.1) ns=$a ;; 10.77.0.2) ns=$b ;; *) echo "no host \$1" >&2; exit 255 ;; esac
shift
exec ip netns exec "\$ns" sh -c "\$*"
EOF
    chmod +x "$W/enter"
    printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' > "$W/hosts"
    ip netns exec "$a" mpirun -np 2 --hostfile "$W/hosts" --mca plm_rsh_agent "$W/enter" \
        --mca oob_tcp_if_include 10.77.0.0/24 --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 \
        "$nc" train "$W/run.py" --output_dir="$W/veth" > "$W/veth.log" 2>&1 || { cat "$W/veth.log"; fail "2 ranks over a veth pair"; }
    cmp -s "$W/two/model_000020.safetensors" "$W/veth/model_000020.safetensors" \
        && echo "2 ranks in two network namespaces joined by a veth pair: the same bits as over shared memory" \
        || fail "the veth run differs"
else
    echo "SKIPPED: 2 ranks over a veth pair (creating a network namespace needs root and CAP_SYS_ADMIN)"
fi

# Resume: keep step 10 of each run and continue with the other world size, and with the same.
keep10() { mkdir -p "$2"; cp "$1"/*_000010.* "$2"/; }
keep10 "$W/two" "$W/two-to-one"; keep10 "$W/one" "$W/one-to-two"; keep10 "$W/two" "$W/two-to-two"
$nc train "$W/run.py" --output_dir="$W/two-to-one" --resume > /dev/null 2>&1 || fail "resuming a 2-rank checkpoint in 1 process"
run2 --output_dir="$W/one-to-two" --resume > /dev/null 2>&1 || fail "resuming a 1-process checkpoint on 2 ranks"
run2 --output_dir="$W/two-to-two" --resume > /dev/null 2>&1 || fail "resuming a 2-rank checkpoint on 2 ranks"
echo -n "2-rank checkpoint resumed in 1 process: "; losses "$W/two/metrics.jsonl" "$W/two-to-one/metrics.jsonl" 10 || fail "2 → 1 losses"
echo -n "1-process checkpoint resumed on 2 ranks: "; losses "$W/one/metrics.jsonl" "$W/one-to-two/metrics.jsonl" 10 || fail "1 → 2 losses"
cmp -s "$W/two/model_000020.safetensors" "$W/two-to-two/model_000020.safetensors" \
    && echo "2-rank checkpoint resumed on 2 ranks: the same bits as the uninterrupted run" || fail "same-N resume differs"

# A rank killed with SIGKILL mid-run: every rank ends, non-zero, within 30 s.
mpirun -np 2 "$nc" train "$W/run.py" --output_dir="$W/kill" --num_iterations=100000 --save_every=5 --eval_every=0 > "$W/kill.log" 2>&1 &
job=$!
for _ in $(seq 300); do [ -f "$W/kill/meta_000005.json" ] && break; sleep 0.1; done
victim=$(pgrep -P "$job" | tail -1)   # a rank: a child of mpirun
start=$(date +%s)
kill -9 "$victim"
for _ in $(seq 300); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
wait "$job"; rc=$?
took=$(( $(date +%s) - start ))
left=$(pgrep -f "output_dir=$W/kill" | wc -l)
if [ "$rc" -ne 0 ] && [ "$took" -le 30 ] && [ "$left" -eq 0 ]; then
    echo "a rank killed with SIGKILL: the job ended in ${took} s, exit $rc: $(grep -m1 -iE 'exited on signal|killed' "$W/kill.log")"
else
    fail "after a SIGKILL: exit $rc after ${took} s, $left processes left"; tail -5 "$W/kill.log"
fi
last=$(ls "$W/kill"/meta_*.json | sort | tail -1); last=$(basename "$last" .json); last=$((10#${last#meta_}))
$nc train "$W/run.py" --output_dir="$W/kill" --resume --save_every=5 --eval_every=0 --num_iterations=$((last + 2)) > /dev/null 2>&1 \
    && echo "  its last checkpoint (step $last) resumes" || fail "the killed job's last checkpoint (step $last) does not resume"

# An error on one rank (its data directory is wrong) stops every rank with its message,
# which names the rank and its host, whole: under a long host name of its own (a UTS
# namespace) where the machine allows one.
start=$(date +%s)
err_job=(mpirun -np 1 "$nc" train "$W/run.py" --output_dir="$W/err" : -np 1 "$nc" train "$W/run.py" --output_dir="$W/err" --data_dir="$W/typo")
if unshare --uts true 2> /dev/null; then
    host=nanochat-mpi-smoke-host
    unshare --uts sh -c 'hostname "$0" && exec "$@"' "$host" "${err_job[@]}" > "$W/err.log" 2>&1
else
    host=$(hostname)
    "${err_job[@]}" > "$W/err.log" 2>&1
fi
rc=$?; took=$(( $(date +%s) - start ))
if [ $rc -ne 0 ] && [ "$took" -le 30 ] && grep -q "^Error: rank 1 of 2 ($host): .*typo/data.json: cannot open" "$W/err.log"; then
    echo "an error on rank 1: every rank stopped in ${took} s: $(grep -m1 'rank 1 of 2' "$W/err.log" | cut -c1-160)"
else
    fail "an error on one rank: exit $rc after ${took} s"; tail -5 "$W/err.log"
fi

# Ranks started with different settings are refused at start-up.
mpirun -np 1 "$nc" train "$W/run.py" --output_dir="$W/mix" : -np 1 "$nc" train "$W/run.py" --output_dir="$W/mix" --matrix_lr=0.03 > "$W/mix.log" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q "the ranks do not agree: rank(s) 1 resolved other settings" "$W/mix.log"; then
    echo "ranks with different settings: refused: $(grep -m1 'do not agree' "$W/mix.log" | cut -c1-160)"
else
    fail "ranks with different settings were not refused (exit $rc)"; tail -5 "$W/mix.log"
fi
[ ! -f "$W/mix/model_000010.safetensors" ] || fail "the refused job trained"

# The CORE evaluation split over 2 ranks (each every other example, the counts summed) gives
# one process's report.
core_args=(core --checkpoint "$W/one" --bundle data/core_shakespeare --max-per-task 12 --json --threads 1)
"$nc" "${core_args[@]}" > "$W/core1.json" 2> /dev/null || fail "core, 1 process"
mpirun -np 2 "$nc" "${core_args[@]}" > "$W/core2.json" 2> "$W/core2.err" || { cat "$W/core2.err"; fail "core, 2 ranks"; }
if cmp -s "$W/core1.json" "$W/core2.json" && grep -q "2 ranks" "$W/core2.err"; then
    echo "core on 2 ranks: the same report as 1 process ($(python3 -c 'import json,sys; print("CORE", json.load(open(sys.argv[1]))["core_metric"])' "$W/core1.json"))"
else
    fail "core on 2 ranks differs from 1 process"; cat "$W/core1.json" "$W/core2.json"
fi

# The chat benchmarks split over 2 ranks (each every other batch, the outcomes summed): the
# same outcome for every problem as one process.
tasks=Tests/EvaluationTests/Fixtures/chat_tasks
ce_args=(chat-eval --checkpoint "$W/one" --benchmark ARC-Easy=$tasks/arc.jsonl --benchmark GSM8K=$tasks/gsm8k.jsonl
         --max-tokens 12 --batch-size 3 --json --threads 1)
"$nc" "${ce_args[@]}" > "$W/ce1.json" 2> /dev/null || fail "chat-eval, 1 process"
mpirun -np 2 "$nc" "${ce_args[@]}" > "$W/ce2.json" 2> "$W/ce2.err" || { cat "$W/ce2.err"; fail "chat-eval, 2 ranks"; }
outcomes='import json, sys
r = json.load(open(sys.argv[1]))
print([(b["benchmark"], b["correct"], b["total"], [p["correct"] for p in b["problems"]]) for b in r["benchmarks"]], r["mean_centered"])'
if [ "$(python3 -c "$outcomes" "$W/ce1.json")" = "$(python3 -c "$outcomes" "$W/ce2.json")" ] && grep -q "2 ranks" "$W/ce2.err"; then
    echo "chat-eval on 2 ranks: every problem's outcome as in 1 process ($(python3 -c 'import json,sys; print([(b["benchmark"], b["correct"], b["total"]) for b in json.load(open(sys.argv[1]))["benchmarks"]])' "$W/ce1.json"))"
else
    fail "chat-eval on 2 ranks differs from 1 process"; cat "$W/ce1.json" "$W/ce2.json"
fi

finish mpi_smoke
