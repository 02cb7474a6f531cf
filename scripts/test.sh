#!/usr/bin/env bash
# The test command: installs missing system libraries, then builds and runs every test in
# release mode (the gradient checks and kernel tests are slow in a debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The tests use the public API alone (no @testable imports), so they build with the same flags
# as `swift build -c release` and the scripts after them reuse that build.
# Tests run side by side: those comparing thread counts set theirs with Parallel.withThreadCount,
# which no other test sees.
swift test -c release --disable-testable-imports "$@"
