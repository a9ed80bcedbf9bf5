"""Allocation-heavy pure-Python workload for the peakprof benchmarks.

usage: python3 alloc_heavy.py [SCALE]      SCALE defaults to 1.0 (~2-3 s on the bench machine)

CPython allocates every object through pymalloc (small objects, served from 256 KiB arenas
that pymalloc mmaps itself) or through malloc (anything over 512 bytes: big strings, the
backing arrays of lists and dicts). So a profiler sees a moderate number of malloc/free and
mmap/munmap calls made from very deep interpreter stacks (_PyEval_EvalFrameDefault
recursion), which is what makes Python a good "real program" test: stacks are deep and
mostly identical, the binary is a distro build without frame pointers.

The phases build up and drop several large structures, so the peak is a definite moment
(during phase 3, when the index and the grouped lists are both alive).
"""

import sys


def make_records(n):
    # Many small dicts with short strings: pymalloc-heavy.
    out = []
    for i in range(n):
        out.append({
            "id": i,
            "name": "user%07d" % i,
            "group": "g%03d" % (i % 997),
            "score": (i * 7919) % 10007,
            "tags": ["t%d" % (i % 13), "t%d" % (i % 7)],
        })
    return out


def build_index(records):
    # A dict of lists, and big joined strings (malloc, not pymalloc: > 512 bytes).
    index = {}
    for r in records:
        index.setdefault(r["group"], []).append(r)
    blobs = {g: ",".join(x["name"] for x in rs) for g, rs in index.items()}
    return index, blobs


def churn_strings(n):
    # Short-lived temporaries: allocate and drop at once (pymalloc free lists).
    total = 0
    for i in range(n):
        s = ("k%d" % i) * (1 + i % 40)
        total += len(s.upper())
    return total


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    n = int(300_000 * scale)
    records = make_records(n)                       # phase 1
    index, blobs = build_index(records)             # phase 2
    ranked = sorted(records, key=lambda r: (r["score"], r["id"]))   # phase 3: peak
    top = [r["name"] for r in ranked[: max(1, n // 100)]]
    total_blob = sum(len(b) for b in blobs.values())
    del index, blobs, ranked
    tmp = churn_strings(int(600_000 * scale))      # phase 4: temporaries only
    records.clear()
    # A checksum, so the output depends on all the work; the runner discards it.
    print("alloc_heavy: n=%d top=%s blob=%d churn=%d" % (n, top[0], total_blob, tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
