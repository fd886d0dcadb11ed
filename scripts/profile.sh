#!/usr/bin/env bash
# Where imgate spends its CPU under load (issue 5): imgate (perf build) on a file origin of the
# corpus photos under 5 MB, wrk over keep-alive connections, `perf record` sampling the server
# meanwhile (cpu-clock, so it works where hardware counters are not exposed). Prints
# requests/s, the server's CPU per request (from /proc) and the hottest symbols.
#   hit:  4 warm variants (width 300) of the same photos as peers.sh's hit row
#   miss: a random width 200-1200 of a random photo per request, peers.sh's miss row
#   scripts/profile.sh hit|miss [seconds] [connections]
# KEEP=file keeps perf.data; FREQ (default 2000 Hz) and CALLGRAPH (default -g; e.g.
# '--call-graph dwarf,16384' for call graphs through inlined async code) tune the sampling.
# Needs wrk and perf (Debian: wrk, linux-perf); uses target/perf/imgate (BIN_DIR to override).
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-hit}; secs=${2:-10}; conns=${3:-$([[ $scenario == hit ]] && echo 64 || echo 8)}
bin=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/perf}
photos=${PHOTO_DIR:-$PWD/../shared/corpus/photos}
files=$(cd "$photos" && ls *.jpg | while read -r f; do [[ $(stat -c %s "$f") -lt 5000000 ]] && echo "$f"; done | paste -sd, -)
[[ $scenario == hit ]] && files=$(cut -d, -f1-4 <<<"$files")  # peers.sh's hit set
source scripts/lib.sh
edge=$(free_port); admin=$(free_port)
run=$(mktemp -d); pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; [[ -n ${KEEP:-} ]] && cp "$run/perf.data" "$KEEP"; rm -rf "$run"; }
trap cleanup EXIT

IMGATE_ORIGIN=file://$photos IMGATE_LISTEN=127.0.0.1:$edge IMGATE_ADMIN_LISTEN=127.0.0.1:$admin \
  RUST_LOG=warn "$bin/imgate" ${CONFIG:+--config "$CONFIG"} >"$run/imgate.log" 2>&1 &
pid=$!
wait_ready "127.0.0.1:$admin"
template='/cdn-cgi/image/width={w},quality=80,format=jpeg/{f}'
[[ $scenario == hit ]] && for f in ${files//,/ }; do
  curl -sf -o /dev/null "http://127.0.0.1:$edge$(sed "s/{w}/300/;s/{f}/$f/" <<<"$template")"
done
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
faults() { awk '{print $10}' "/proc/$pid/stat"; }  # minor page faults: memory the kernel had to hand out
tick=$(getconf CLK_TCK)
before=$(cpu); faults_before=$(faults)
perf record -q -e cpu-clock -F ${FREQ:-2000} ${CALLGRAPH:--g} -p "$pid" -o "$run/perf.data" -- sleep "$secs" &
perf_pid=$!
out=$(FILES=$files TEMPLATE=$template wrk -t2 -c"$conns" -d"${secs}s" --latency \
  -s "../shared/bench/$scenario.lua" "http://127.0.0.1:$edge")
wait "$perf_pid"
after=$(cpu); faults_after=$(faults)
requests=$(awk '/requests in/ {print $1}' <<<"$out")
echo "$out" | grep -E "Requests/sec|50%|99%|Non-2xx" || true
awk -v c=$((after - before)) -v t="$tick" -v n="$requests" \
  'BEGIN {printf "server CPU: %.1f s for %d requests = %.1f us/request\n", c / t, n, c / t / n * 1e6}'
awk -v f=$((faults_after - faults_before)) -v n="$requests" \
  'BEGIN {printf "server minor page faults: %d = %.1f/request\n", f, f / n}'
perf report -i "$run/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep "%" | head -8
perf report -i "$run/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -v "^#" | grep "%" | head -${TOP:-40}
