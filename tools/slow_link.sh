#!/usr/bin/env bash
# Two "hosts" on this machine joined by a link of a chosen speed, for measuring the gradient
# exchange between hosts: two network namespaces, a veth pair between them whose sending
# side is held to RATE by a token-bucket filter (tc), and `bench distributed --route tcp`
# run with one rank in each namespace (mpirun reaches the second through a stand-in for ssh).
#
#   sudo tools/slow_link.sh 1gbit --depths 6 --steps 8
#
# RATE is tc's (1gbit, 500mbit, ...); the rest goes to `bench distributed` (its --ranks is 2:
# one rank per namespace; --threads is the two ranks' threads together). MPIRUN_OPTIONS in the
# environment adds options of mpirun's (`--mca btl_tcp_progress_thread 1`, say). Needs root (network
# namespaces), iproute2, Open MPI, and `swift build -c release` done.
set -euo pipefail
rate=${1:?usage: tools/slow_link.sh RATE [bench distributed options]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
bench=$here/.build/release/bench
[ -x "$bench" ] || { echo "no $bench: run swift build -c release first" >&2; exit 1; }
a=slow$$a b=slow$$b
W=$(mktemp -d)
trap 'ip netns del "$a" 2> /dev/null || true; ip netns del "$b" 2> /dev/null || true; rm -rf "$W"' EXIT
ip netns add "$a" && ip netns add "$b"
ip link add "v$a" type veth peer name "v$b"
ip link set "v$a" netns "$a" && ip link set "v$b" netns "$b"
ip -n "$a" addr add 10.78.0.1/24 dev "v$a" && ip -n "$b" addr add 10.78.0.2/24 dev "v$b"
for ns in "$a" "$b"; do
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "v$ns" up
    # Each side sends at RATE at most, as over a link of that speed.
    tc -n "$ns" qdisc add dev "v$ns" root tbf rate "$rate" burst 1mbit latency 100ms
done
cat > "$W/enter" <<SH
#!/bin/sh
# enter HOST COMMAND, in place of ssh: runs COMMAND in the namespace holding HOST's address
case "\$1" in 10.78.0.1) ns=$a ;; 10.78.0.2) ns=$b ;; *) echo "no host \$1" >&2; exit 255 ;; esac
shift
exec ip netns exec "\$ns" sh -c "\$*"
SH
chmod +x "$W/enter"
printf '10.78.0.1 slots=1\n10.78.0.2 slots=1\n' > "$W/hosts"
echo "two namespaces joined by a veth pair sending at most $rate each way"
cd "$here"
ip netns exec "$a" "$bench" distributed --route tcp --ranks 2 "$@" \
    "--mpirun-options=${MPIRUN_OPTIONS:+$MPIRUN_OPTIONS }--hostfile $W/hosts --mca plm_rsh_agent $W/enter --mca oob_tcp_if_include 10.78.0.0/24 --mca btl_tcp_if_include 10.78.0.0/24"
