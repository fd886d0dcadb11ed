#!/usr/bin/env bash
# Run the HTTP caching conformance suite (http-tests/cache-tests, the test set the published
# results were recorded with, kept in shared/cache-tests) against imgate's passthrough route,
# and count it the way cache-tests.fyi does, next to the published results counted the same way.
#   conformance/cache-tests.sh [path/to/imgate]     (default: $CARGO_TARGET_DIR or target/debug/imgate)
# The suite is read from ../shared/cache-tests beside the repository (CACHE_TESTS_SRC overrides)
# and copied once into conformance/.work (keyed by a hash of its files), where its npm
# dependencies are installed: shared/ is read-only.
# Exits non-zero unless imgate has no required failure and more passes than every published
# shared cache (see count.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
imgate="${1:-${CARGO_TARGET_DIR:-target}/debug/imgate}"
src="${CACHE_TESTS_SRC:-../shared/cache-tests}"
work="${CACHE_TESTS_WORK:-$PWD/conformance/.work}"

die() { echo "cache-tests: $*" >&2; exit 1; }
[[ -x "$imgate" ]] || die "no imgate binary at $imgate (build it with: cargo build --bin imgate)"
[[ -f "$src/tests/index.mjs" && -f "$src/test-engine/cli.mjs" && -f "$src/results/index.mjs" ]] ||
  die "the cache-tests suite is missing: expected it at $src (shared/cache-tests beside the repository; set CACHE_TESTS_SRC to use another copy)"
command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed"

# One work copy per version of the suite: a changed shared/cache-tests gets a fresh install.
key=$(cd "$src" && find . -path ./node_modules -prune -o -type f -print | LC_ALL=C sort |
  xargs -d '\n' sha256sum | sha256sum | cut -c1-12)
suite="$work/cache-tests-$key"
if [[ ! -f "$suite/.installed" ]]; then
  echo "cache-tests: copying $src to $suite and installing its dependencies" >&2
  rm -rf "$suite" "$suite.tmp"
  mkdir -p "$work"
  cp -r "$src" "$suite.tmp"
  chmod -R u+w "$suite.tmp"
  # Only the runtime dependencies (undici for the interim-response tests); the dev ones are
  # the suite's linters. Bounded, so a registry that hangs fails the run instead of stalling it.
  (cd "$suite.tmp" && timeout 300 npm install --no-audit --no-fund --omit=dev --loglevel=error) >&2 ||
    die "npm install failed in $suite.tmp"
  touch "$suite.tmp/.installed"
  mv "$suite.tmp" "$suite"
fi

source scripts/lib.sh
origin_port=$(free_port); edge_port=$(free_port); admin_port=$(free_port)
run="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$run"
}
trap cleanup EXIT
show_logs() { tail -n 20 "$run"/*.log >&2 || true; }

# The suite's origin server (`npm run server`), started with node directly so the pid we hold is
# the server's own; it reads its settings from the variables npm would set.
(cd "$suite" && exec env npm_config_protocol=http npm_config_port="$origin_port" \
  npm_config_pidfile="$run/origin.pid" node test-engine/server/server.mjs) >"$run/origin.log" 2>&1 &
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
ready=""
for _ in $(seq 100); do
  if curl -s -o /dev/null "http://127.0.0.1:$origin_port/" && curl -s -o /dev/null "http://127.0.0.1:$edge_port/"; then
    ready=1; break
  fi
  sleep 0.1
done
[[ -n "$ready" ]] || { show_logs; die "origin or imgate did not start within 10 s"; }

# The suite's client (`npm run --silent cli --base=...`): every test, results JSON on stdout.
# A full run takes about a minute (the tests pause for freshness to lapse).
results="$work/imgate.json"
(cd "$suite" && env npm_config_base="http://127.0.0.1:$edge_port" npm_config_id= npm_package_config_id= \
  timeout 240 node --no-warnings test-engine/cli.mjs) >"$results.tmp" 2>"$run/cli.log" ||
  { show_logs; die "the suite's client failed or timed out"; }
mv "$results.tmp" "$results"
node conformance/count.mjs "$suite" "$results" --check
