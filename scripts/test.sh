#!/usr/bin/env bash
# The test command: installs missing system libraries, then builds and runs every test in
# release mode (the gradient checks and kernel tests are slow in a debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# --no-parallel: the thread count (ours and OpenBLAS's) is process-wide and some tests change it.
swift test -c release --no-parallel "$@"
