#!/usr/bin/env python3
"""Interleaved A/B runs of preload library builds on one benchmark workload.

    python3 benches/ab.py [--rounds N] [--sample-rate BYTES] [--size S] WORKLOAD LIB [LIB...]

A change of a few percent does not show from one full run of `run.py` to the next on a
shared machine (single rounds move by 10-20%), so each change to the library is measured
like this: the workload unprofiled, then under `peakprof run` with each library in turn
(PEAKPROF_PRELOAD), round after round, the order of the libraries reversed every other
round so that neither always runs right after the unprofiled one. It prints every round's
ratios (profiled / unprofiled wall time of that round) and each library's median and
minimum.

WORKLOAD is one of run.py's (churn, churn_mt, large, python, sqlite, gcc, jq), at its full
size unless --size says otherwise; run `python3 benches/run.py --quick` (or a full run)
once first, which builds the C workloads and generates the inputs. LIB is a built copy of
the preload library (`cargo build --release -p peakprof-preload`, then copy
target/release/libpeakprof_preload.so aside before changing the code). The peakprof
binary is target/release/peakprof; it only launches, the library given does the recording.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the workload definitions)


def wall(argv, env):
    """Wall time of one run; exits with a one-line error when the run fails."""
    t0 = time.monotonic()
    r = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        last = r.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        sys.exit("ab.py: %s exited with %d: %s" % (argv[0], r.returncode, last[0]))
    return elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    ap.add_argument("--sample-rate", type=int, help="sampled mode with this mean interval in bytes")
    ap.add_argument("--size", help="the workload's size (default: run.py's full size)")
    ap.add_argument("workload", choices=[w.name for w in run.WORKLOADS])
    ap.add_argument("libs", nargs="+", metavar="LIB")
    args = ap.parse_args()

    w = next(w for w in run.WORKLOADS if w.name == args.workload)
    size = type(w.full)(args.size) if args.size else w.full
    for lib in args.libs:
        if not os.path.isfile(lib):
            sys.exit("ab.py: %s is not a file" % lib)
    if not os.access(run.PEAKPROF, os.X_OK):
        sys.exit("ab.py: %s missing: cargo build --release first" % run.PEAKPROF)
    if w.prepare:
        w.prepare(size)
    cmd = w.command(size)
    if os.path.isabs(cmd[0]) and not os.path.exists(cmd[0]):
        sys.exit("ab.py: %s missing: run python3 benches/run.py --quick first" % cmd[0])

    mode = ["--sample-rate", str(args.sample_rate)] if args.sample_rate else []
    names = [os.path.basename(lib) for lib in args.libs]
    ratios = {lib: [] for lib in args.libs}
    scratch = tempfile.mkdtemp(prefix="ab-")
    try:
        for r in range(args.rounds):
            base = wall(cmd, dict(os.environ))
            order = args.libs if r % 2 == 0 else args.libs[::-1]
            line = "round %d: base %.3f s" % (r + 1, base)
            for lib in order:
                out = os.path.join(scratch, "out")
                shutil.rmtree(out, ignore_errors=True)
                env = dict(os.environ, PEAKPROF_PRELOAD=os.path.abspath(lib))
                t = wall([run.PEAKPROF, "run", "-q", "-o", out] + mode + ["--"] + cmd, env)
                ratios[lib].append(t / base)
                line += "  %s %.3fx" % (os.path.basename(lib), t / base)
            print(line, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    width = max(len(n) for n in names)
    for lib, name in zip(args.libs, names):
        xs = ratios[lib]
        print("%-*s  median %.3fx  min %.3fx" % (width, name, statistics.median(xs), min(xs)))


if __name__ == "__main__":
    main()
