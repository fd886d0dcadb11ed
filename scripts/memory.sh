#!/usr/bin/env bash
# Memory under a burst of misses on one huge original (issue 5, target 4): imgate in front of a
# real HTTP origin on loopback, N concurrent misses (distinct widths, so no cache entry or lock
# is shared) on the 17.9 MP Elephants_5640x3172.jpg, then the server's RSS: idle before, peak
# (VmHWM) during, and settled after.
#   scripts/memory.sh [preset] [concurrency] [waves]
#   e.g. scripts/memory.sh default 64 3; scripts/memory.sh memory_efficient 64 3
# FORMAT=avif (or webp) changes the output format from jpeg; SETTLE (default 3) is how many
# seconds after the last job "settled" is read.
# OVERRIDES='max_image_bytes: 20MB' adds `performance_overrides` (memory_efficient's 10 MB
# source limit refuses this 16 MB photo with 413).
# Uses target/perf/{imgate,benchmark} (cargo build --profile perf --bins; BIN_DIR=target/debug for
# the debug build) and ../shared/corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-default}; conc=${2:-64}; waves=${3:-3}
bin=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/perf}
photos=${PHOTO_DIR:-$PWD/../shared/corpus/photos}
image=Elephants_5640x3172.jpg
source scripts/lib.sh
origin_port=$(free_port); edge_port=$(free_port); admin_port=$(free_port)
run=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$run"; }
trap cleanup EXIT

python3 -m http.server "$origin_port" --bind 127.0.0.1 --directory "$photos" >/dev/null 2>"$run/origin.log" &
pids+=($!)
cat >"$run/imgate.yaml" <<YAML
pingora:
  threads: 2
listen: 127.0.0.1:$edge_port
admin_listen: 127.0.0.1:$admin_port
transform_socket: $run/transform.sock
performance: $preset
performance_overrides: {${OVERRIDES:-}}
sites:
  - hosts: ["*"]
    origin: http://127.0.0.1:$origin_port
YAML
"$bin/imgate" --config "$run/imgate.yaml" >"$run/imgate.log" 2>&1 &
imgate_pid=$!; pids+=($imgate_pid)
wait_ready "127.0.0.1:$admin_port"
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$origin_port/$image" && break; sleep 0.1; done
rss() { awk -v k="$1:" '$1==k {print int($2/1024)}' "/proc/$imgate_pid/status"; }
idle=$(rss VmRSS)
"$bin/benchmark" --target "127.0.0.1:$edge_port" --scenario miss --concurrency "$conc" \
  --max-requests $((conc * waves)) --duration 120 --images "$image" \
  --template "/cdn-cgi/image/width={w},quality={q},format=${FORMAT:-jpeg}/{f}" --pid "$imgate_pid"
# Settled: no job running or queued (requests the client gave up on still finish), then 3 s.
busy() { curl -s "http://127.0.0.1:$admin_port/metrics" | awk '/^imgate_(active_processing_jobs|processing_queue_length|active_downloads) / {n += $2} END {print n + 0}'; }
for _ in $(seq 300); do [[ $(busy) == 0 ]] && break; sleep 0.5; done
sleep "${SETTLE:-3}"
echo "preset $preset: $conc concurrent misses x $waves waves on $image"
echo "origin requests for $image during the run: $(($(grep -c "GET /$image" "$run/origin.log") - 1))"
echo "RSS idle ${idle} MiB, peak (VmHWM) $(rss VmHWM) MiB, settled $(rss VmRSS) MiB (${SETTLE:-3} s after the last job)"
