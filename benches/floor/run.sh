#!/usr/bin/env bash
# Floor cost of LD_PRELOAD allocation tracking on churn / churn_mt (see floor_preload.c).
# usage: benches/floor/run.sh [ROUNDS=5] [N=10000000]
#   PEAKPROF_SO=/path/to/peakprof-preload.so  also times peakprof's sampled mode.
# Runs are interleaved (each round runs every config once) so drift hits all alike;
# the table shows median (and min) wall time and the ratio to the unprofiled run's.
# churn_mt on a shared 2-core box is bimodal (other load takes a core): see the min rows.
set -euo pipefail
ROUNDS=${1:-5}
N=${2:-10000000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/target/bench
OUT=$ROOT/target/bench/floor
mkdir -p "$OUT"

for w in churn churn_mt; do
  if [[ ! -x $BIN/$w ]]; then
    echo "missing $BIN/$w; build it with: python3 benches/run.py --only churn" >&2
    exit 1
  fi
done

for l in 0 1 2; do
  gcc -O2 -Wall -shared -fPIC -DLEVEL=$l -o "$OUT/floor_$l.so" "$ROOT/benches/floor/floor_preload.c" -ldl
done

CONFIGS=(none floor_0 floor_1 floor_2)
[[ -n ${PEAKPROF_SO:-} ]] && CONFIGS+=(peakprof_sampled)
TSV=$OUT/times.tsv
: >"$TSV"

now() { date +%s%N; }
for ((r = 1; r <= ROUNDS; r++)); do
  for w in churn churn_mt; do
    for c in "${CONFIGS[@]}"; do
      case $c in
        none) pre=() ;;
        floor_*) pre=(env "LD_PRELOAD=$OUT/$c.so") ;;
        peakprof_sampled)
          d=$(mktemp -d)
          pre=(env "LD_PRELOAD=$PEAKPROF_SO" "PEAKPROF_OUT_DIR=$d" PEAKPROF_SAMPLE_RATE=524288) ;;
      esac
      t0=$(now)
      "${pre[@]}" "$BIN/$w" "$N" >/dev/null
      t1=$(now)
      [[ $c == peakprof_sampled ]] && rm -rf "$d"
      printf '%s\t%s\t%s\n' "$w" "$c" "$(((t1 - t0) / 1000))" >>"$TSV"
    done
  done
  echo "round $r/$ROUNDS done" >&2
done

python3 - "$TSV" "$ROUNDS" <<'PY'
import sys, statistics as st, collections
t = collections.defaultdict(list)
for line in open(sys.argv[1]):
    w, c, us = line.split("\t"); t[w, c].append(int(us) / 1e6)
confs = list(dict.fromkeys(c for _, c in t))
print(f"{sys.argv[2]} interleaved rounds; ratio = stat / same stat of unprofiled (none)\n")
print("| workload | " + " | ".join(confs) + " |")
print("|---" * (len(confs) + 1) + "|")
for name, f in (("median", st.median), ("min (least disturbed)", min)):
    for w in dict.fromkeys(w for w, _ in t):
        base = f(t[w, "none"])
        cells = [f"{f(t[w, c]):.3f}s ({f(t[w, c]) / base:.2f}x)" for c in confs]
        print(f"| {w} {name} | " + " | ".join(cells) + " |")
PY
