#!/usr/bin/env bash
# The serving benchmark (docs/benchmarks.md, "Serving"): starts `hwledger serve` on a free port
# with MODEL, drives it with `hwledger bench http` at 1, 8 and 32 concurrent streams, prints
# the JSON report (also written to OUT), and stops the server.
#   scripts/bench_serving.sh BUILD_DIR MODEL_DIR [OUT.json] [extra bench http flags...]
# THREADS (default 2) sets the engine's threads, CONCURRENCY (default 1,8,32) the levels,
# SERVE_ARGS more flags for serve (e.g. "--ram-cache 0 --ssd-cache 0"). On a
# shared machine take the lock so that benchmarks never overlap:
#   flock /tmp/hwledger-bench.lock scripts/bench_serving.sh ...
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR MODEL_DIR [OUT.json] [bench http flags]}
model=${2:?model folder}
out=${3:-serving-bench.json}
shift $(( $# < 3 ? $# : 3 ))
bin="$build/hwledger"
log=$(mktemp /tmp/hwledger-serve-bench.XXXXXX.log)
# A fresh SSD tier: the prompts are the same from run to run (seeded), and a tier kept from an
# earlier run would serve them from the cache.
kv=$(mktemp -d /tmp/hwledger-serve-bench-kv.XXXXXX)

# shellcheck disable=SC2086  # SERVE_ARGS: more serve flags, word-split on purpose
"$bin" serve --model "$model" --threads "${THREADS:-2}" --port 0 --cache-dir "$kv" ${SERVE_ARGS:-} \
  >"$log" 2>&1 &
serve_pid=$!
stop() {
  if kill -0 "$serve_pid" 2>/dev/null; then kill -TERM "$serve_pid"; wait "$serve_pid" || true; fi
  rm -rf "$kv"
}
trap stop EXIT

for _ in $(seq 1 600); do
  grep -q "engine ready" "$log" && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.5
done
grep -q "engine ready" "$log" || { echo "the engine did not become ready" >&2; cat "$log" >&2; exit 1; }
port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$log" | head -1 | sed 's/.*://')
echo "serve pid $serve_pid on port $port ($(grep -o 'engine ready.*' "$log"))" >&2
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$bin" bench http --url "http://127.0.0.1:$port" --concurrency "${CONCURRENCY:-1,8,32}" --out "$out" "$@" >&2
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
cat "$out"
