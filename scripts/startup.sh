#!/usr/bin/env bash
# Start-up to first served request (issue 5, target 5): launch imgate on the embedded default
# config with an empty cache and poll the edge every 2 ms until a transformed image comes back;
# print the elapsed time per run and the median.
#   scripts/startup.sh [runs]     (uses target/perf/imgate; BIN_DIR overrides)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/perf}/imgate
runs=${1:-7}
source scripts/lib.sh
times=()
for _ in $(seq "$runs"); do
  port=$(free_port); admin=$(free_port)
  url="http://127.0.0.1:$port/cdn-cgi/image/width=300,format=jpeg/FreshFlower.jpg"
  start=$(date +%s%N)
  IMGATE_LISTEN=127.0.0.1:$port IMGATE_ADMIN_LISTEN=127.0.0.1:$admin "$bin" >/dev/null 2>&1 &
  pid=$!
  until curl -sf -o /dev/null "$url"; do sleep 0.002; done
  end=$(date +%s%N)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  times+=($(( (end - start) / 1000000 )))
done
echo "start-up to first transformed image, ms: ${times[*]}"
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print "median " a[int((NR+1)/2)] " ms"}'
