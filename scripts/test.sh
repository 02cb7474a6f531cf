#!/usr/bin/env bash
# The test command: installs missing system libraries, then builds and runs every test in
# release mode (the gradient checks and kernel tests are slow in a debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift test -c release "$@"
