#!/bin/bash
# Counts what the preload library costs, where this machine's noise does not reach:
# instructions and simulated cache misses (cachegrind, 512 KiB last level) of cc1, sqlite3
# and jq running under LD_PRELOAD, for each library given (or unprofiled: "none").
#
#   benches/cachegrind/run.sh [--only cc1,sqlite,jq] LIB [LIB...]
#   e.g. benches/cachegrind/run.sh none /tmp/before.so target/release/libpeakprof_preload.so
#
# Build a library with `cargo build --release -p peakprof-preload` (a workspace build does
# not refresh target/release/libpeakprof_preload.so; the copy inside `peakprof` is built by
# a nested cargo) and copy it aside before changing the code. The inputs are those of
# benches/run.py at its smaller sizes (150 functions, 60k rows, 15k records): run
# `python3 benches/run.py --quick` once to generate them. Each count takes 30-60 s. Counts
# repeat to ~0.1% (the profiler's clock-driven paths vary a little from run to run), so
# one run per library shows changes above that.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
inputs=$root/target/bench/inputs
only=cc1,sqlite,jq
if [ "${1:-}" = --only ]; then only=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: $0 [--only cc1,sqlite,jq] LIB|none [LIB...]" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "$0: valgrind not found" >&2; exit 1; }
cc1=$(gcc -print-prog-name=cc1)
filter=$(cd "$root" && python3 -c "import sys; sys.path.insert(0, 'benches'); import run; print(run.JQ_FILTER)")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

need() { [ -e "$1" ] || { echo "$0: $1 missing: run python3 benches/run.py --quick first" >&2; exit 1; }; }

# count NAME LIB CMD...: prints instructions and simulated misses of CMD under LIB.
count() {
    local name=$1 lib=$2; shift 2
    local pre=()
    [ "$lib" = none ] || pre=(LD_PRELOAD="$(realpath "$lib")")
    mkdir -p "$work/out"
    env "${pre[@]}" PEAKPROF_OUT_DIR="$work/out" valgrind --tool=cachegrind --cache-sim=yes \
        --LL=524288,8,64 --cachegrind-out-file=/dev/null "$@" 2>&1 >/dev/null \
        | sed -n 's/^==[0-9]*== \(I *refs\|D1  misses\|LLd misses\): */\1 /p' \
        | tr -s ' ' | paste -sd ';' | sed "s|^|$name $(basename "$lib"): |"
    rm -rf "$work/out"
}

for lib in "$@"; do
    [ "$lib" = none ] || [ -f "$lib" ] || { echo "$0: $lib: no such library" >&2; exit 1; }
    case ",$only," in *,cc1,*)
        need "$inputs/gcc-150.c"
        count cc1 "$lib" "$cc1" -quiet "$inputs/gcc-150.c" -O2 -o "$work/out.s" ;;
    esac
    case ",$only," in *,sqlite,*)
        need "$inputs/sqlite-60000.sql"
        count sqlite "$lib" sqlite3 :memory: ".read $inputs/sqlite-60000.sql" ;;
    esac
    case ",$only," in *,jq,*)
        need "$inputs/jq-15000.json"
        count jq "$lib" jq -c "$filter" "$inputs/jq-15000.json" ;;
    esac
done
