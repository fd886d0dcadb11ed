#!/usr/bin/env bash
# What drawing SVG in a child process costs a miss: the same binary run twice, SVG drawn by
# `imgate --svg-worker` children (the default) and in the gateway's process
# (IMGATE_SVG_WORKER=off), each answering N distinct misses for tests/fixtures/logo.svg (widths
# 100 to 100+N-1, PNG) one after another. Prints the mean wall time per miss of each and their
# ratio; the two alternate twice, so drift on a noisy machine lands on both.
#   scripts/svg_worker.sh [N]     (uses target/perf/imgate; BIN_DIR overrides)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/perf}/imgate
n=${1:-200}
source scripts/lib.sh
declare -A total=([child]=0 [off]=0)
for round in 1 2; do
  for mode in off child; do
    port=$(free_port); admin=$(free_port); cache=$(mktemp -d)
    worker=()
    [ "$mode" = off ] && worker=(IMGATE_SVG_WORKER=off)
    env "${worker[@]}" IMGATE_LISTEN=127.0.0.1:$port IMGATE_ADMIN_LISTEN=127.0.0.1:$admin \
      IMGATE_ORIGIN="file://$PWD/tests/fixtures" IMGATE_CACHE_DIR="$cache" RUST_LOG=warn \
      "$bin" >/dev/null 2>&1 &
    pid=$!
    until curl -sf -o /dev/null "http://127.0.0.1:$admin/readyz"; do sleep 0.02; done
    start=$(date +%s%N)
    for i in $(seq 0 $((n - 1))); do
      code=$(curl -s -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$port/cdn-cgi/image/width=$((100 + i + (round - 1) * n)),format=png/logo.svg")
      [ "$code" = 200 ] || { echo "$mode: $code" >&2; exit 1; }
    done
    end=$(date +%s%N)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$cache"
    total[$mode]=$(( total[$mode] + end - start ))
  done
done
child=$(awk -v t="${total[child]}" -v n="$n" 'BEGIN {printf "%.2f", t / (2 * n) / 1e6}')
off=$(awk -v t="${total[off]}" -v n="$n" 'BEGIN {printf "%.2f", t / (2 * n) / 1e6}')
echo "SVG miss, mean over $((2 * n)): in a child process $child ms, in the gateway $off ms, ratio $(awk -v a="$child" -v b="$off" 'BEGIN {printf "%.2f", a / b}')"
