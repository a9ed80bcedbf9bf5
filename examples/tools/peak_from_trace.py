#!/usr/bin/env python3
"""Replay a log written by alloc_trace.so and print the exact peak and what was live at it.

Independent of peakprof: used only to verify the ground truth stated in examples/*.
Accounting rules (the same ones peakprof documents):
  * heap blocks count their requested size (malloc n, calloc a*b, realloc's new size, ...);
  * anonymous mmaps count their length rounded up to the page size; munmap/mremap remove
    exactly the pages they cover (a hole in the middle splits a region);
  * file-backed mmaps are ignored;
  * the peak is the first moment the total reaches its maximum.

Usage: peak_from_trace.py LOG [--all-functions]
"""
import bisect
import collections
import subprocess
import sys

PAGE = 4096
MAP_ANONYMOUS = 0x20


def page_up(n):
    return (n + PAGE - 1) // PAGE * PAGE


def parse(path):
    maps, events = [], []
    section = None
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line in ("MAPS", "MAPS_AT_EXIT"):
                section = line
                continue
            if line == "END_MAPS":
                section = None
                continue
            if section:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    maps.append((lo, hi, int(parts[2], 16), parts[5]))
                continue
            head, _, tail = line.partition(" | ")
            if not _:
                head, tail = line.rstrip(" |"), ""
            fields = head.split()
            if not fields:
                continue
            op, tid = fields[0], int(fields[1])
            args = [int(x, 16) for x in fields[2:]]
            stack = tuple(int(x, 16) for x in tail.split() if int(x, 16) != 0)
            events.append((op, tid, args, stack))
    return maps, events


class Ranges:
    """Anonymous mapped pages: address -> (stack) per page-aligned interval."""

    def __init__(self):
        self.items = []  # sorted list of [lo, hi, stack]

    def add(self, lo, hi, stack):
        self.remove(lo, hi)
        bisect.insort(self.items, [lo, hi, stack])

    def remove(self, lo, hi):
        out = []
        for a, b, s in self.items:
            if b <= lo or a >= hi:
                out.append([a, b, s])
                continue
            if a < lo:
                out.append([a, lo, s])
            if b > hi:
                out.append([hi, b, s])
        self.items = sorted(out)

    def stack_at(self, addr):
        for a, b, s in self.items:
            if a <= addr < b:
                return s
        return None

    def total(self):
        return sum(b - a for a, b, _ in self.items)


def replay(events, stop_at=None):
    """Returns (peak, peak_index, heap, ranges) where heap/ranges are the state at stop_at
    (or at the end)."""
    heap = {}  # ptr -> (size, stack)
    ranges = Ranges()
    heap_total = 0
    peak, peak_idx = -1, -1
    for i, (op, tid, a, stack) in enumerate(events):
        if op == "malloc" or op == "valloc" or op == "pvalloc":
            n, p = a
            if op == "pvalloc":
                n = page_up(n)
            if p:
                heap[p] = (n, stack)
                heap_total += n
        elif op == "calloc":
            x, y, p = a
            if p:
                heap[p] = (x * y, stack)
                heap_total += x * y
        elif op in ("posix_memalign", "aligned_alloc", "memalign"):
            _, n, p = a
            if p:
                heap[p] = (n, stack)
                heap_total += n
        elif op in ("realloc", "reallocarray"):
            if op == "realloc":
                old, n, p = a
            else:
                old, x, y, p = a
                n = x * y
            if p or n == 0:
                if old in heap:
                    heap_total -= heap.pop(old)[0]
            if p:
                heap[p] = (n, stack)
                heap_total += n
        elif op == "free":
            (p,) = a
            if p in heap:
                heap_total -= heap.pop(p)[0]
        elif op in ("mmap", "mmap64"):
            _, length, flags, fd, p = a
            if p != 0xFFFFFFFFFFFFFFFF and flags & MAP_ANONYMOUS:
                ranges.add(p, p + page_up(length), stack)
        elif op == "munmap":
            p, length, r = a
            if r == 0:
                ranges.remove(p, p + page_up(length))
        elif op == "mremap":
            old, olen, nlen, flags, p = a
            if p != 0xFFFFFFFFFFFFFFFF:
                s = ranges.stack_at(old)
                if s is not None:
                    ranges.remove(old, old + page_up(olen))
                    ranges.add(p, p + page_up(nlen), stack)
        total = heap_total + ranges.total()
        if total > peak:
            peak, peak_idx = total, i
        if stop_at is not None and i == stop_at:
            return peak, peak_idx, heap, ranges
    return peak, peak_idx, heap, ranges


class Symbolizer:
    def __init__(self, maps):
        self.maps = maps
        self.cache = {}
        self.phdrs = {}

    def _loads(self, path):
        if path not in self.phdrs:
            out = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True).stdout
            loads = []
            for line in out.splitlines():
                f = line.split()
                if f and f[0] == "LOAD":
                    loads.append((int(f[1], 16), int(f[2], 16), int(f[4], 16)))
            self.phdrs[path] = loads
        return self.phdrs[path]

    def resolve_all(self, addrs):
        todo = collections.defaultdict(list)
        for addr in addrs:
            if addr in self.cache:
                continue
            for lo, hi, off, path in self.maps:
                if lo <= addr < hi:
                    foff = addr - lo + off
                    for p_off, p_vaddr, p_filesz in self._loads(path):
                        if p_off <= foff < p_off + p_filesz:
                            todo[path].append((addr, foff - p_off + p_vaddr))
                            break
                    else:
                        self.cache[addr] = "%s+%#x" % (path, foff)
                    break
            else:
                self.cache[addr] = "%#x" % addr
        for path, items in todo.items():
            # addr - 1: a return address points after the call; its line is the call's.
            out = subprocess.run(
                ["addr2line", "-f", "-C", "-i", "-a", "-e", path] + ["%#x" % (v - 1) for _, v in items],
                capture_output=True, text=True).stdout.splitlines()
            groups, cur = [], None
            for line in out:
                if line.startswith("0x") and len(line) == 18:
                    cur = []
                    groups.append(cur)
                else:
                    cur.append(line)
            for (addr, _), g in zip(items, groups):
                names = []
                for fn, loc in zip(g[0::2], g[1::2]):
                    if fn == "??":
                        names.append("%s+%#x" % (path.rsplit("/", 1)[-1], addr))
                        continue
                    loc = loc.split(" (discriminator")[0]
                    if loc.startswith("??"):
                        names.append(fn)
                    else:
                        names.append("%s (%s)" % (fn, loc.rsplit("/", 1)[-1]))
                # addr2line -i lists innermost first; keep that order (leaf first).
                self.cache[addr] = " <- ".join(names)
        return self.cache


def main():
    maps, events = parse(sys.argv[1])
    peak, idx, _, _ = replay(events)
    _, _, heap, ranges = replay(events, stop_at=idx)
    live = collections.Counter()
    counts = collections.Counter()
    for n, stack in heap.values():
        live[stack] += n
        counts[stack] += 1
    for a, b, s in ranges.items:
        live[s] += b - a
        counts[s] += 1
    sym = Symbolizer(maps)
    cache = sym.resolve_all({a for s in live for a in s})
    print("events: %d  peak_bytes: %d  at event #%d (%s)" % (len(events), peak, idx, events[idx][0]))
    print("live at peak: %d heap blocks, %d mapped ranges" % (len(heap), len(ranges.items)))
    per_fn = collections.Counter()
    rows = []
    for stack, n in live.items():
        # root first, each frame possibly holding inlined frames "a <- b" (leaf first)
        frames = []
        for a in reversed(stack):
            frames.extend(reversed(cache[a].split(" <- ")))
        frames = [f for f in frames if "alloc_trace" not in f]
        rows.append((n, counts[stack], frames))
        for fn in {f.split(" (")[0] for f in frames}:
            per_fn[fn] += n
    rows.sort(key=lambda r: -r[0])
    limit = None if "--all" in sys.argv else 40
    for n, c, frames in rows[:limit]:
        print("%9d bytes in %d: %s" % (n, c, ";".join(frames)))
    if limit is not None and len(rows) > limit:
        print("... %d more stacks" % (len(rows) - limit))
    print("inclusive bytes per function at peak:")
    for fn, n in sorted(per_fn.items(), key=lambda kv: (-kv[1], kv[0])):
        if "--all-functions" in sys.argv or not fn.startswith(("0x", "/")):
            print("%9d %s" % (n, fn))


if __name__ == "__main__":
    main()
