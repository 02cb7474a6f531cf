#!/usr/bin/env bash
# The test command: installs missing system libraries, then builds and runs every test in
# release mode (the gradient checks and kernel tests are slow in a debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Tests run side by side: those comparing thread counts set theirs with Parallel.withThreadCount,
# which no other test sees.
NANOCHAT_LIBRARIES_ONLY=1 swift test -c release "$@"
