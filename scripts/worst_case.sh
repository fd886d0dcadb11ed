#!/usr/bin/env bash
# Output that costs far more than its input ("Safe to face the internet"): imgate in front of a
# real HTTP origin on loopback, then
#   worst: 16 concurrent worst-case requests (the issue's 8192x8192 padded AVIF from a 200 KB
#          JPEG, full-size AVIF and WebP of a 16-bit 7000x7000 PNG, a 4000x4000 pad of a
#          17.9 MP JPEG...) while a cheap thumbnail is asked for every 0.5 s: peak RSS
#          (VmHWM), the thumbnails' latency, and how each worst-case request was answered;
#   burst: 64 concurrent misses spread over five distinct large originals (two copies of the
#          16 MB 17.9 MP Elephants JPEG, three 14.7 MP JPEGs made from it), every URL distinct:
#          peak RSS; then again with a distinct query on every source (64 separate downloads),
#          and with 128 such requests.
#   calibrate: one request per fresh process, peak RSS minus idle (REQUESTS overrides the list).
#   scripts/worst_case.sh [worst|burst|both|calibrate] [preset]
# BIN_DIR picks the build (default target/perf: cargo build --profile perf --bins; debug figures
# are indicative only). OVERRIDES adds `performance_overrides` (e.g. 'processing_budget: 256MiB').
# Uses ../shared/corpus; everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-both}; preset=${2:-default}
bin=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/perf}
corpus=${CORPUS:-$PWD/../shared/corpus}
source scripts/lib.sh
origin_port=$(free_port); edge_port=$(free_port); admin_port=$(free_port)
run=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$run"; }
trap cleanup EXIT
mkdir -p "$run/www"

# A 16-bit RGB PNG of 7000x7000 (smooth, so about 0.3 MB for 294 MB of samples).
python3 - "$run/www/deep.png" <<'PY'
import struct, sys, zlib
w = h = 7000
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
z = zlib.compressobj(6)
body = []
first = b"".join(struct.pack(">HHH", (x * 9) & 0xFFFF, 0, 0x8000) for x in range(w))
for y in range(h):
    # Filter "Up" (2) after the first row: every later row repeats the first, so deltas are 0.
    body.append(z.compress(b"\x00" + first if y == 0 else b"\x02" + bytes(6 * w)))
body.append(z.flush())
ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
with open(sys.argv[1], "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(body)) + chunk(b"IEND", b""))
PY
cp "$corpus/photos/Aqua.jpg" "$run/www/aqua.jpg"
cp "$corpus/photos/GreenMeadow.jpg" "$run/www/meadow.jpg"
cp "$corpus/photos/Elephants_5640x3172.jpg" "$run/www/elephants1.jpg"
cp "$corpus/photos/Elephants_5640x3172.jpg" "$run/www/elephants2.jpg"

python3 -m http.server "$origin_port" --bind 127.0.0.1 --directory "$run/www" >/dev/null 2>"$run/origin.log" &
pids+=($!)
cat >"$run/imgate.yaml" <<YAML
pingora:
  threads: 2
  # Restarts between phases need not wait for Pingora's default 5-minute grace period.
  grace_period_seconds: 0
  graceful_shutdown_timeout_seconds: 1
listen: 127.0.0.1:$edge_port
admin_listen: 127.0.0.1:$admin_port
transform_socket: $run/transform.sock
performance: $preset
performance_overrides: {${OVERRIDES:-}}
limits: {max_source_bytes: 20MiB}
sites:
  - hosts: ["*"]
    origin: http://127.0.0.1:$origin_port
YAML
start_imgate() {
  "$bin/imgate" --config "$run/imgate.yaml" >"$run/imgate.log" 2>&1 &
  imgate_pid=$!; pids+=($imgate_pid)
  wait_ready "127.0.0.1:$admin_port"
}
stop_imgate() { kill "$imgate_pid"; wait "$imgate_pid" 2>/dev/null || true; }
rss() { awk -v k="$1:" '$1==k {print int($2/1024)}' "/proc/$imgate_pid/status"; }
edge="http://127.0.0.1:$edge_port/cdn-cgi/image"
# get URL: "status seconds" of one request (60 s at most).
get() { curl -s -o /dev/null -m 60 -w '%{http_code} %{time_total}\n' "$1" || echo "000 60"; }
export -f get

for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$origin_port/aqua.jpg" && break; sleep 0.1; done

if [[ $what == calibrate ]]; then
  # One request per fresh process: peak RSS (VmHWM) minus the idle process, the measured side
  # of `cpu::cost`'s constants (compare with `cost::estimate` for the same request).
  for req in ${REQUESTS:-width=2000,height=2000,fit=pad,format=avif/meadow.jpg \
      width=4000,height=4000,fit=pad,format=avif/meadow.jpg \
      width=4000,height=4000,fit=pad,format=webp/meadow.jpg \
      width=4000,height=4000,fit=pad,format=jpeg/meadow.jpg \
      width=4000,height=4000,fit=pad,format=png/meadow.jpg \
      width=300,format=jpeg/deep.png format=jpeg/elephants1.jpg}; do
    start_imgate
    idle=$(rss VmRSS)
    res=$(get "$edge/$req")
    echo "calibrate: $req -> $res s, peak - idle = $(( $(rss VmHWM) - idle )) MiB"
    stop_imgate
  done
fi

if [[ $what == burst || $what == both ]]; then
  # Three 14.7 MP JPEGs (5120x2880) made from the elephants by imgate itself, then a fresh server.
  start_imgate
  for i in 1 2 3; do
    curl -sf -o "$run/www/large$i.jpg" "$edge/width=5120,quality=9$i,format=jpeg/elephants1.jpg"
  done
  stop_imgate
  images=(elephants1.jpg elephants2.jpg large1.jpg large2.jpg large3.jpg)
  # burst LABEL QUERY [N]: N (64) concurrent misses on a fresh server, 64 widths; QUERY
  # (with $i for the request's number) is appended to every source URL.
  burst() {
    local n=${3:-64}
    start_imgate
    idle=$(rss VmRSS)
    for i in $(seq 0 $((n - 1))); do
      echo "$edge/width=$((300 + 13 * (i % 64))),format=jpeg/${images[$((i % 5))]}${2//\$i/$i}"
    done | xargs -P "$n" -I{} bash -c 'get "$1"' _ {} >"$run/burst.txt"
    echo "$1: $(sort "$run/burst.txt" | awk '{print $1}' | uniq -c | tr '\n' ' ')"
    echo "  RSS idle ${idle} MiB, peak (VmHWM) $(rss VmHWM) MiB; slowest $(sort -k2 -n "$run/burst.txt" | tail -1 | awk '{print $2}') s"
    stop_imgate
  }
  burst "burst ($preset): 64 misses over 5 large originals" ""
  # The same with a distinct query on every source URL: 64 separate downloads of the five
  # files (nothing shared between requests: the worst case of the burst).
  burst "burst, distinct sources ($preset)" '?u=$i'
  # Twice as many (the same 64 widths twice): bounded means the peak does not grow with the
  # number of originals.
  burst "burst, 128 distinct sources ($preset)" '?u=$i' 128
fi

if [[ $what == worst || $what == both ]]; then
  start_imgate
  idle=$(rss VmRSS)
  worst=(
    "width=2048,height=2048,dpr=4,fit=pad,format=avif/aqua.jpg"
    "width=7000,format=avif/deep.png"
    "width=7000,format=webp/deep.png"
    "width=4000,height=4000,fit=pad,format=avif/elephants1.jpg"
    "width=2400,height=1600,fit=pad,format=avif/elephants2.jpg"
    "width=6000,height=4000,fit=pad,format=webp/aqua.jpg"
    "width=3000,format=png/deep.png"
    "width=2000,height=2000,dpr=2,fit=pad,format=avif/meadow.jpg"
  )
  for i in $(seq 0 15); do
    echo "$edge/${worst[$((i % 8))]}?v=$i"
  done | xargs -P 16 -I{} bash -c 'get "$1"' _ {} >"$run/worst.txt" &
  burst_pid=$!
  : >"$run/cheap.txt"
  sleep 0.5
  while kill -0 "$burst_pid" 2>/dev/null; do
    get "$edge/width=100,format=jpeg/meadow.jpg?c=$RANDOM$RANDOM" >>"$run/cheap.txt"
    sleep 0.5
  done
  echo "worst ($preset): 16 worst-case requests: $(sort "$run/worst.txt" | awk '{print $1}' | uniq -c | tr '\n' ' ')"
  echo "  slowest $(sort -k2 -n "$run/worst.txt" | tail -1 | awk '{print $2}') s; RSS idle ${idle} MiB, peak (VmHWM) $(rss VmHWM) MiB"
  echo "  cheap thumbnails during it: $(wc -l <"$run/cheap.txt"), statuses $(awk '{print $1}' "$run/cheap.txt" | sort | uniq -c | tr '\n' ' ')," \
    "latency median $(sort -k2 -n "$run/cheap.txt" | awk '{a[NR]=$2} END {print a[int((NR+1)/2)]}') s, max $(sort -k2 -n "$run/cheap.txt" | tail -1 | awk '{print $2}') s"
  stop_imgate
fi
