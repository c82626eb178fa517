#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for SECONDS (default 30).
# usage: scripts/fuzz.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
dir=${2:-build-fuzz}
CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHWLEDGER_FUZZ=ON \
  -DHWLEDGER_TESTS=OFF -DHWLEDGER_BENCH=OFF >/dev/null
cmake --build "$dir" --target fuzzers -j"$(nproc)"
for bin in "$dir"/fuzz/*_fuzz; do
  name=$(basename "$bin")
  corpus="$dir/corpus-$name"
  mkdir -p "$corpus"
  echo "== $name (${secs}s)"
  "$bin" "$corpus" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
    grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|crash|Done' || true
  # libFuzzer exits non-zero on a finding; PIPESTATUS keeps that failure.
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "$name found a failure"; exit 1; }
done
