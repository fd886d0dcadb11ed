#!/usr/bin/env bash
# Runs fuzz targets one after another, each until its coverage plateaus, for long runs by hand or
# a nightly job (CI runs fuzz/ci.sh, which is brief). A plateau here is a rule, not a feeling:
# the last WINDOW seconds of fuzzing added at most max(2, edges/2000) edges to libFuzzer's
# `cov:` figure (0.05 %: 10 edges a window at 20,000). A target that has not plateaued by MAX
# seconds stops there and is reported as still climbing.
#   fuzz/plateau.sh [-w WINDOW] [-m MAX] [--fold] TARGET...   (defaults: -w 600 -m 7200)
# Each target runs optimised (ASan, debug assertions) on runs/<target> (its own finds, kept
# between runs) plus corpus/<target> (only read), with its dictionary and the limits fuzz/ci.sh
# uses. Its log goes to runs/<target>.log; one summary line per target goes to stdout:
#   <target> <seconds fuzzed> <executions> <edges at start> -> <edges at end> <verdict> | <trail>
# where the trail is the edge count every WINDOW/2 seconds. --fold minimises runs/<target> into
# corpus/<target> afterwards (`cargo fuzz cmin`), keeping the committed regression inputs
# (crash-*, leak-*, oom-*, timeout-*) that unit tests read. `client_hello` is never folded: its
# corpus is captured real hellos, and a unit test reads each one as a client's.
# Exits non-zero when a target fails (crash, leak, timeout, out-of-memory): the input is in
# artifacts/<target>/, and the targets after it do not run.
set -euo pipefail
cd "$(dirname "$0")"

window=600 max=7200 fold=0
while (($#)); do
  case "$1" in
    -w) window="$2"; shift 2 ;;
    -m) max="$2"; shift 2 ;;
    --fold) fold=1; shift ;;
    -*) echo "usage: fuzz/plateau.sh [-w WINDOW] [-m MAX] [--fold] TARGET..." >&2; exit 2 ;;
    *) break ;;
  esac
done
(($#)) || { echo "name the targets (cargo +nightly fuzz list)" >&2; exit 2; }
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"
# shellcheck source=dicts.sh
source dicts.sh

# The last `cov:` figure in a log, or nothing before libFuzzer's first status line.
last_cov() { grep -o 'cov: [0-9]*' "$1" | tail -n 1 | cut -d' ' -f2 || true; }

for t in "$@"; do
  mkdir -p "runs/$t" "artifacts/$t"
  log="runs/$t.log"
  args=(-max_total_time="$max" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024
        -print_final_stats=1 -artifact_prefix="artifacts/$t/")
  dict=$(dict_arg "$t" "runs")
  [[ -n "$dict" ]] && args+=("$dict")
  cargo +nightly fuzz build "$t" >&2
  cargo +nightly fuzz run "$t" "runs/$t" "corpus/$t" -- "${args[@]}" >"$log" 2>&1 &
  runner=$!

  # Sample the edge count every 15 s from libFuzzer's INITED line (loading the corpus is not
  # fuzzing); times[i] and edges[i] are one sample.
  times=() edges=() verdict="climbing" started=""
  while kill -0 "$runner" 2>/dev/null; do
    sleep 15
    if [[ -z "$started" ]]; then
      grep -q 'INITED' "$log" || continue
      started=$SECONDS
    fi
    now=$((SECONDS - started)) cov=$(last_cov "$log")
    [[ -n "$cov" ]] || continue
    times+=("$now") edges+=("$cov")
    ((now >= window)) || continue
    # The sample from WINDOW seconds ago (the latest one at least that old).
    i=${#times[@]}
    while ((i > 0)) && ((times[i - 1] > now - window)); do i=$((i - 1)); done
    ((i > 0)) || continue
    allowed=$((cov / 2000 > 2 ? cov / 2000 : 2))
    if ((cov - edges[i - 1] <= allowed)); then
      verdict="plateau"
      # libFuzzer takes SIGTERM as an interrupt: final stats, then exit status 72 (which
      # cargo fuzz reports as its own failure).
      pkill -TERM -P "$runner" -x "$t" 2>/dev/null || true
      break
    fi
  done
  status=0
  wait "$runner" || status=$?
  if grep -qE '^==[0-9]+== ?ERROR|^SUMMARY: |libFuzzer: (deadly signal|timeout|out-of-memory)' "$log"; then
    tail -n 40 "$log" >&2
    echo "$t: failed; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  if [[ $verdict == plateau ]] && grep -q 'libFuzzer: run interrupted' "$log"; then status=0; fi
  ((status == 0)) || { tail -n 20 "$log" >&2; echo "$t: the run exited $status" >&2; exit 1; }

  trail="" step=$((window / 2)) next=0
  for i in "${!times[@]}"; do
    if ((times[i] >= next)); then trail+="${edges[i]} (${times[i]}) "; next=$((times[i] - times[i] % step + step)); fi
  done
  n=${#times[@]}
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | cut -d' ' -f2 || true)
  if ((n)); then
    echo "$t ${times[n - 1]}s ${execs:-?} execs ${edges[0]} -> ${edges[n - 1]} $verdict | ${trail}"
  else
    echo "$t: no coverage sampled (run shorter than 15 s?)"
  fi

  if ((fold)) && [[ "$t" != client_hello ]]; then
    cp -n "runs/$t"/* "corpus/$t/" 2>/dev/null || true
    cargo +nightly fuzz cmin "$t" "corpus/$t" -- -use_counters=0 -rss_limit_mb=2048 \
      -malloc_limit_mb=1024 -timeout=10 >"runs/$t.cmin.log" 2>&1
    # (grep finds none for most targets, which is not a failure)
    git ls-files -d -- "corpus/$t" | { grep -E '/(crash|leak|oom|timeout)-[0-9a-f]+$' || true; } |
      xargs -r git checkout --
    echo "$t folded: corpus/$t has $(ls "corpus/$t" | wc -l) inputs"
  fi
done
