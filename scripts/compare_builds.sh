#!/usr/bin/env bash
# compare_builds.sh BEFORE_DIR AFTER_DIR [ROUNDS]: the same miss and hit workloads on two builds
# of imgate (each DIR holds `imgate` and `benchmark`, e.g. target/perf of two checkouts), taking
# turns (before, after, before, after...) so both see the same machine noise. Prints one line
# per run and workload:
#   miss-jpeg / miss-webp: one request at a time, 300 px thumbnails of the corpus photos under
#     5 MB, each a distinct cache key (true misses from the original's bytes); server CPU ms per
#     request.
#   hit: the 4 warm variants, 64 connections; requests/s and server CPU ms per request.
# CORPUS (default ../shared/corpus) must hold photos/. Loopback only; about 1 minute per round.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
before=$1; after=$2; rounds=${3:-2}
photos=$(cd "${CORPUS:-$here/../../shared/corpus}/photos" && pwd)
imgs=$(cd "$photos" && for f in *.jpg; do [ "$(stat -c %s "$f")" -lt 5000000 ] && echo "$f"; done | paste -sd,)

run_one() { # run_one LABEL DIR
  local label=$1 dir=$2 port admin run pid
  port=$(free_port); admin=$(free_port); run=$(mktemp -d)
  cat >"$run/imgate.yaml" <<YAML
pingora:
  threads: 2
  # Restarts between runs need not wait for Pingora's default 5-minute grace period.
  grace_period_seconds: 0
  graceful_shutdown_timeout_seconds: 1
listen: 127.0.0.1:$port
admin_listen: 127.0.0.1:$admin
transform_socket: $run/transform.sock
sites:
  - hosts: ["*"]
    origin: file://$photos
YAML
  RUST_LOG=warn "$dir/imgate" --config "$run/imgate.yaml" >"$run/imgate.log" 2>&1 &
  pid=$!
  wait_ready "127.0.0.1:$admin"
  for fmt in jpeg webp; do
    "$dir/benchmark" --target "127.0.0.1:$port" --scenario miss --concurrency 1 --duration 12 \
      --images "$imgs" --template "/cdn-cgi/image/width=300,q=80,format=$fmt/{f}?v={w}-{q}-$label" \
      --pid "$pid" | awk -v l="$label" -v f="miss-$fmt" '/^requests  /{r=$2} /^cpu ms\/request/{c=$3} END{printf "%-7s %-10s requests %6d  cpu ms/request %7.3f\n", l, f, r, c}'
  done
  "$dir/benchmark" --target "127.0.0.1:$port" --scenario hit --concurrency 64 --duration 8 \
    --images FreshFlower.jpg,GreenMeadow.jpg,Aqua.jpg,Blinds.jpg --pid "$pid" |
    awk -v l="$label" '/^requests\/s/{r=$2} /^cpu ms\/request/{c=$3} END{printf "%-7s %-10s requests/s %8.0f  cpu ms/request %7.3f\n", l, "hit", r, c}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$run"
}

for i in $(seq "$rounds"); do
  run_one before "$before"
  run_one after "$after"
done
