#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a short time on its committed corpus and fails
# on any crash, panic, timeout or out-of-memory. The committed corpus is only read: what a run
# finds goes to a scratch directory, and a failing input to fuzz/artifacts/<target>/.
#   fuzz/ci.sh [--dev] [-t SECONDS_PER_TARGET] [TARGET...]   (default 30 s each; env FUZZ_SECONDS)
# --dev builds without optimisation (a cold build in minutes instead of a quarter of an hour,
# for CI; runs are slower); the default is cargo-fuzz's optimised build, for long runs.
# Needs a nightly toolchain and cargo-fuzz (`./dev fuzz` installs it). Builds into
# fuzz/target (or $FUZZ_TARGET_DIR), never into the main build's target directory.
# FUZZ_LEAN=1 (CI) builds one target at a time and deletes its binary after its run, so only
# one statically linked binary is on disk at once.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-30}"
mode=()
if [[ "${1:-}" == --dev ]]; then mode=(--dev); shift; fi
if [[ "${1:-}" == -t ]]; then seconds="$2"; shift 2; fi
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"
# shellcheck source=dicts.sh
source dicts.sh

targets=("$@")
if ((${#targets[@]} == 0)); then mapfile -t targets < <(cargo +nightly fuzz list); fi

# One build for every target (debug assertions, overflow checks and AddressSanitizer on).
lean="${FUZZ_LEAN:-}"
[[ "$lean" == 1 ]] || cargo +nightly fuzz build "${mode[@]}"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "artifacts/$t"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024
        -print_final_stats=1 -artifact_prefix="artifacts/$t/")
  dict=$(dict_arg "$t" "$scratch")
  [[ -n "$dict" ]] && args+=("$dict")
  start=$SECONDS
  [[ "$lean" == 1 ]] && cargo +nightly fuzz build "${mode[@]}" "$t"
  echo "== fuzz $t for ${seconds}s" >&2
  if ! cargo +nightly fuzz run "${mode[@]}" "$t" "$scratch/$t" "corpus/$t" -- "${args[@]}" \
      >"$scratch/$t.log" 2>&1; then
    failed+=("$t")
    tail -n 60 "$scratch/$t.log" >&2
  fi
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units)' "$scratch/$t.log" | tail -n 2 >&2 || true
  echo "== $t: $((SECONDS - start))s" >&2
  if [[ "$lean" == 1 ]]; then
    profile=release; [[ ${#mode[@]} -gt 0 ]] && profile=debug
    rm -f "$CARGO_TARGET_DIR"/*/"$profile/$t" "$CARGO_TARGET_DIR"/*/"$profile"/deps/"$t"-*
  fi
done
if ((${#failed[@]})); then
  echo "fuzz targets failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a failure" >&2
