#!/usr/bin/env bash
# Builds hwledger and runs the whole test suite: scripts/test.sh [BUILD_DIR]
#   1. every GoogleTest suite through ctest;
#   2. the official OpenAI and Anthropic SDKs against a live server (tests/sdk, Node's test runner).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
case "$dir" in /*) build="$dir" ;; *) build="$PWD/$dir" ;; esac
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" --timeout 1200

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "the SDK suite (tests/sdk) needs Node.js and npm: run scripts/setup.sh" >&2
  exit 1
fi
cd tests/sdk
npm ci --no-audit --no-fund --loglevel=error
HWLEDGER_BIN="$build/hwledger" HWLEDGER_TEST_SERVER="$build/tests/server/hwledger_test_server" \
  node --test --test-concurrency=1
