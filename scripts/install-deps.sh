#!/usr/bin/env bash
# Installs the system libraries nanochat-swift links against, if they are missing:
# OpenBLAS (CBLAS sgemm), LAPACKE, Open MPI (data-parallel training), zstd, Snappy, zlib, LZ4 and Brotli
# (corpus files), and any packages named as arguments (the scripts that
# need python3 pass it). Debian/Ubuntu only; elsewhere install them by hand.
set -euo pipefail
missing=()
for pkg in libopenblas-dev liblapacke-dev libopenmpi-dev openmpi-bin libzstd-dev libsnappy-dev zlib1g-dev liblz4-dev libbrotli-dev "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
