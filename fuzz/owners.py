#!/usr/bin/env python3
"""Which code a fuzz corpus covers, by owner: imgate's own `src/`, each dependency, std.

libFuzzer's `cov:` figure counts edges in every instrumented crate, so a target that reaches a
large dependency (usvg's SVG and CSS parsers, serde_yaml) can keep climbing long after imgate's
own parsers have stopped gaining. This runs a target's optimised build once over the inputs
given (`-runs=0 -print_coverage=1`: each input executed once, then the covered edges of every
function with its source file) and sums the edges by owner.

    fuzz/owners.py TARGET DIR... [--before 'YYYY-MM-DD HH:MM'] [--top N]

--before keeps only the inputs whose files were written before that local time, so a
`runs/<target>` directory (whose files keep the time libFuzzer found them) gives the coverage a
run had reached at any moment. Needs `cargo +nightly fuzz build TARGET` first (fuzz/README.md).
"""

import argparse
import collections
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LINE = re.compile(r"^(?:UN)?COVERED_FUNC: hits: \d+ edges: (\d+)/(\d+) (.*) (\S+):\d+$")


def owner(path):
    """The owner of a source file: imgate, a crate by name, std, or the harness."""
    if path.startswith(os.path.join(ROOT, "src") + "/"):
        return "imgate"
    if path.startswith(HERE + "/"):
        return "fuzz harness"
    if "/registry/src/" in path:
        crate = path.split("/registry/src/", 1)[1].split("/")[1]
        return re.sub(r"-\d+\.\d+\.\d+.*$", "", crate)
    if path.startswith("/rustc/"):
        return "std"
    if "/deps/" in path:  # std's own dependencies (hashbrown) as the toolchain ships them
        return "std"
    return "other"


def covered(binary, dirs):
    """(covered, total) edges by owner for one replay of the inputs in dirs."""
    out = subprocess.run(
        [binary, "-runs=0", "-print_coverage=1", "-timeout=10", "-rss_limit_mb=2048",
         "-malloc_limit_mb=1024", *dirs],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        check=False,
    ).stdout
    cov, tot = collections.Counter(), collections.Counter()
    seen = set()
    for line in out.splitlines():
        m = LINE.match(line.strip())
        if not m:
            continue
        edges, total, func, path = int(m[1]), int(m[2]), m[3], m[4]
        if (func, path) in seen:  # the same function listed twice
            continue
        seen.add((func, path))
        cov[owner(path)] += edges
        tot[owner(path)] += total
    if not seen:
        sys.exit("no coverage printed; the replay said:\n" + out[-2000:])
    return cov, tot


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("target")
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--before", help="only inputs written before this local time")
    ap.add_argument("--top", type=int, default=12, help="owners listed (default 12)")
    a = ap.parse_args()
    target_dir = os.environ.get("FUZZ_TARGET_DIR", os.path.join(HERE, "target"))
    binary = os.path.join(target_dir, "x86_64-unknown-linux-gnu", "release", a.target)
    if not os.path.exists(binary):
        sys.exit(f"{binary} is missing: cargo +nightly fuzz build {a.target}")
    with tempfile.TemporaryDirectory() as scratch:
        dirs = a.dirs
        if a.before:
            cut = datetime.datetime.fromisoformat(a.before).timestamp()
            kept = os.path.join(scratch, "inputs")
            os.mkdir(kept)
            for d in a.dirs:
                for name in os.listdir(d):
                    p = os.path.join(d, name)
                    if os.path.isfile(p) and os.path.getmtime(p) < cut:
                        shutil.copy(p, os.path.join(kept, name))
            dirs = [kept]
        inputs = sum(len(os.listdir(d)) for d in dirs)
        cov, tot = covered(binary, dirs)
    print(f"{a.target}: {inputs} inputs, {sum(cov.values())} edges covered")
    for name, edges in cov.most_common(a.top):
        print(f"  {name:24} {edges:7} of {tot[name]}")


if __name__ == "__main__":
    main()
