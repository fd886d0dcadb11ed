#!/usr/bin/env bash
# Run the HTTP caching conformance suite (http-tests/cache-tests, npm package http-cache-tests)
# against imgate's passthrough route and print the counts cache-tests.fyi shows.
#   conformance/cache-tests.sh [path/to/imgate]     (default: target/debug/imgate)
# Exits non-zero when imgate does not beat every published reverse-proxy result: more passes
# than 202 (Apache Traffic Server, the best) and fewer required failures than 12 (httpd).
set -euo pipefail
cd "$(dirname "$0")/.."
imgate="${1:-${CARGO_TARGET_DIR:-target}/debug/imgate}"
suite_version="0.4.5"
work="${CACHE_TESTS_WORK:-$PWD/conformance/.work}"
mkdir -p "$work"
pkg="$work/node_modules/http-cache-tests"
if [[ ! -f "$pkg/package.json" ]] || ! grep -q "\"version\": \"$suite_version\"" "$pkg/package.json"; then
  echo "installing http-cache-tests@$suite_version" >&2
  npm install --silent --no-audit --no-fund --omit=dev --prefix "$work" "http-cache-tests@$suite_version" >&2
fi

source benches/lib.sh
origin_port=$(free_port); edge_port=$(free_port); admin_port=$(free_port)
run="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$run"; }
trap cleanup EXIT

# The suite's origin server reads its settings from npm's environment variables.
(cd "$pkg" && exec env npm_config_protocol=http npm_config_port="$origin_port" \
  npm_config_pidfile="$run/origin.pid" node server/server.mjs) >"$run/origin.log" 2>&1 &
pids+=($!)
cat >"$run/imgate.yaml" <<YAML
pingora:
  threads: 2
  grace_period_seconds: 1
  graceful_shutdown_timeout_seconds: 1
listen: 127.0.0.1:$edge_port
admin_listen: 127.0.0.1:$admin_port
transform_socket: $run/transform.sock
sites:
  - hosts: ["*"]
    origin: http://127.0.0.1:$origin_port
YAML
"$imgate" --config "$run/imgate.yaml" >"$run/imgate.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$edge_port/" && break
  sleep 0.1
done

results="$work/imgate.json"
(cd "$pkg" && env npm_config_base="http://127.0.0.1:$edge_port" npm_config_id= npm_package_config_id= \
  timeout 900 node --no-warnings cli.mjs) >"$results"
node conformance/count.mjs "$pkg" "$results" --check
