#!/usr/bin/env python3
"""peakprof benchmark suite: overhead of peakprof (exact and sampled) against heaptrack.

    python3 benches/run.py [--runs N] [--quick] [--only NAME,...] [--out FILE]

Builds peakprof (release) and the C workloads, generates the inputs of the real-program
workloads (cached in target/bench/inputs), then for every workload runs, round after round,
the unprofiled program, `peakprof run` (exact), `peakprof run --sample-rate` (sampled, when
this build has it) and `heaptrack` (record only), measuring wall time, peak RSS of the whole
process tree and the size of what each tool wrote. Prints a markdown table of medians.

Standard library only, so it runs on a bare machine. See benches/README.md for what the
numbers mean and their caveats.
"""

import argparse
import collections
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCHES = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCHES)
WORKLOADS_SRC = os.path.join(BENCHES, "workloads")
TARGET = os.path.join(REPO, "target", "bench")
INPUTS = os.path.join(TARGET, "inputs")
SCRATCH = os.path.join(TARGET, "scratch")
PEAKPROF = os.path.join(REPO, "target", "release", "peakprof")

SAMPLE_RATE = 524288          # bytes between samples in sampled mode (512 KiB)
POLL_INTERVAL = 0.005         # /proc polling period for the tree RSS fallback
MiB = 1024 * 1024
VARIANTS = ("base", "exact", "sampled", "heaptrack")


def log(msg=""):
    # Progress goes to stderr so that stdout carries only the final report.
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Workloads. Sizes: "full" is what the default run uses (chosen so that 7 interleaved rounds
# of everything fit in ~15 minutes on the 2-core bench machine, see README), "quick" ~10x
# smaller for smoke runs.
# --------------------------------------------------------------------------------------------

class Workload:
    def __init__(self, name, what, tools, full, quick, command, prepare=None):
        self.name = name
        self.what = what
        self.tools = tools        # external programs it needs (skipped with a note if missing)
        self.full = full
        self.quick = quick
        self.command = command    # size -> argv
        self.prepare = prepare    # size -> None: generate cached inputs


def cmd_churn(n):
    return [os.path.join(TARGET, "churn"), str(n)]


def cmd_churn_mt(n):
    return [os.path.join(TARGET, "churn_mt"), str(n)]


def cmd_large(mib):
    return [os.path.join(TARGET, "large"), str(mib)]


def python_binary():
    # The distribution's interpreter, not a pyenv/venv shim: the point is a real program built
    # the way distros build it (no frame pointers), and a shim would be a shell script that
    # adds a process and its own cost.
    for cand in ("/usr/bin/python3", sys.executable):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.realpath(cand)
    return None


def cmd_python(scale):
    return [python_binary(), os.path.join(WORKLOADS_SRC, "alloc_heavy.py"), str(scale)]


def sql_path(rows):
    return os.path.join(INPUTS, "sqlite-%d.sql" % rows)


def gen_sql(rows):
    # Inserts `rows` rows through a recursive CTE (so the SQL file is tiny and sqlite does
    # all the allocating), builds two indexes, then runs group-by, distinct, join, update and
    # delete statements: b-tree pages, sorter memory and temporary b-trees, all malloc'd.
    sql = """\
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL, payload TEXT);
INSERT INTO t(id, grp, name, val, payload)
  WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
  SELECT x, (x * 7919) % 1000, 'name-' || (x * 31 % 100003), (x % 997) * 1.5,
         printf('%.*c', 20 + x % 60, 'x') FROM c;
CREATE INDEX t_grp ON t(grp);
CREATE INDEX t_name ON t(name);
SELECT grp, count(*), sum(val), max(length(payload)) FROM t GROUP BY grp ORDER BY 3 DESC LIMIT 5;
SELECT name, count(*) AS n FROM t GROUP BY name ORDER BY n DESC, name LIMIT 5;
SELECT count(DISTINCT payload) FROM t;
SELECT count(*), sum(a.val - b.val) FROM t AS a JOIN t AS b ON b.id = a.id + 1 WHERE a.grp < 100;
UPDATE t SET payload = upper(payload) WHERE grp % 10 = 0;
DELETE FROM t WHERE grp % 3 = 0;
SELECT count(*), total(val) FROM t;
""".format(rows=rows)
    write_cached(sql_path(rows), lambda f: f.write(sql))


def cmd_sqlite(rows):
    # The SQL is given as a dot-command argument rather than on stdin, so every variant gets
    # the same argv and stdin can stay /dev/null for all runs.
    return ["sqlite3", ":memory:", ".read " + sql_path(rows)]


def c_path(nfuncs):
    return os.path.join(INPUTS, "gcc-%d.c" % nfuncs)


def gen_c(nfuncs):
    # Many small functions (gcc's per-function pipeline dominates: ~2 ms each at -O2 on the
    # bench machine), each calling the previous one so the call graph is connected, every
    # fourth with a loop. noinline keeps gcc from inlining the chain into quadratic work.
    def write(f):
        f.write("/* generated by benches/run.py */\n")
        f.write("struct node { long key; double w; struct node *next; int tag[8]; };\n\n")
        for i in range(nfuncs):
            call = "f%d(p, x - %d)" % (i - 1, 1 + i % 5) if i else "x"
            f.write("__attribute__((noinline)) long f%d(struct node *p, long x)\n{\n" % i)
            f.write("    long acc = x * %d + p->tag[%d];\n" % ((i * 7919) % 1000, i % 8))
            if i % 4 == 0:
                f.write("    for (struct node *q = p->next; q; q = q->next)\n")
                f.write("        acc += q->key * %d + (long)(q->w * %d.5);\n" % (3 + i % 11, i % 9))
            f.write("    if (x %% %d == 0)\n        acc += %s;\n" % (3 + i % 5, call))
            f.write("    return acc ^ p->key;\n}\n\n")
    write_cached(c_path(nfuncs), write)


def cmd_gcc(nfuncs):
    # gcc is a driver: it runs cc1 (the compiler proper, where the memory goes) and as.
    # peakprof follows children; heaptrack does not (it drops itself from LD_PRELOAD), so
    # on this workload heaptrack records only the small driver process. See README.
    return ["gcc", "-O2", "-c", c_path(nfuncs), "-o", os.path.join(SCRATCH, "gcc-out.o")]


def json_path(records):
    return os.path.join(INPUTS, "jq-%d.json" % records)


def gen_json(records):
    import random
    rnd = random.Random(42)  # fixed seed: the same file on every machine

    def write(f):
        f.write("[")
        for i in range(records):
            rec = {
                "id": i,
                "name": "user%07d" % i,
                "group": "g%03d" % (i % 211),
                "score": rnd.randint(0, 1000),
                "tags": ["t%d" % rnd.randint(0, 50) for _ in range(rnd.randint(1, 6))],
                "geo": {"lat": round(rnd.uniform(-90, 90), 5), "lon": round(rnd.uniform(-180, 180), 5)},
                "bio": "lorem ipsum " * rnd.randint(1, 8),
            }
            if i:
                f.write(",")
            f.write(json.dumps(rec))
        f.write("]\n")
    write_cached(json_path(records), write)


JQ_FILTER = ("[.[] | select(.score > 300)] | group_by(.group)"
             " | map({g: .[0].group, n: length, s: (map(.score) | add), t: (map(.tags[]) | unique | length)})"
             " | sort_by(-.s) | .[:3]")


def cmd_jq(records):
    return ["jq", "-c", JQ_FILTER, json_path(records)]


WORKLOADS = [
    Workload("churn", "C, 1 thread: N small malloc/free pairs from 21-41-frame stacks (352 distinct)",
             ["gcc"], 10_000_000, 1_000_000, cmd_churn),
    Workload("churn_mt", "C, 4 threads: N pairs in total (N/4 per thread), same stacks as churn",
             ["gcc"], 10_000_000, 1_000_000, cmd_churn_mt),
    Workload("large", "C: MiB MiB live at the peak (held 100 ms) in 20 big blocks (malloc, realloc growth, mmap, calloc)",
             ["gcc"], 280, 28, cmd_large),
    Workload("python", "python3 (Debian build) running benches/workloads/alloc_heavy.py SCALE",
             [], 2.0, 0.2, cmd_python),
    Workload("sqlite", "sqlite3 :memory: with a generated SQL script (ROWS rows via recursive CTE)",
             ["sqlite3"], 600_000, 60_000, cmd_sqlite, gen_sql),
    Workload("gcc", "gcc -O2 -c of a generated C file with N functions (children: cc1, as)",
             ["gcc"], 1500, 150, cmd_gcc, gen_c),
    Workload("jq", "jq group_by/unique over a generated JSON array of N records",
             ["jq"], 150_000, 15_000, cmd_jq, gen_json),
]


def write_cached(path, writer):
    """Writes `path` once: inputs are keyed by their size in the name, so an existing file is
    the right one. Written to a temporary name and renamed, so an interrupted generation
    never leaves a truncated input behind to be reused."""
    if os.path.exists(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    log("  generating %s" % os.path.relpath(path, REPO))
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "w") as f:
        writer(f)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Setup: build, tools.
# --------------------------------------------------------------------------------------------

def sh(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def apt_install(packages, notes):
    """Installs Debian packages; returns True on success. Tries without `apt-get update`
    first (fast when the package lists are fresh), then once more after an update."""
    if not shutil.which("apt-get"):
        notes.append("cannot install %s: no apt-get" % " ".join(packages))
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log("  apt-get install -y %s" % " ".join(packages))
    if sh(["apt-get", "install", "-y"] + packages, env=env).returncode == 0:
        return True
    sh(["apt-get", "update"], env=env)
    r = sh(["apt-get", "install", "-y"] + packages, env=env)
    if r.returncode != 0:
        notes.append("apt-get install %s failed: %s" % (" ".join(packages), r.stdout.strip()[-300:]))
        return False
    return True


def ensure_tools(needed, notes):
    missing = [t for t in needed if not shutil.which(t)]
    # Package names equal the command names for everything we install.
    if missing:
        apt_install(missing, notes)


def build_peakprof(notes):
    """cargo build --release. Others may be mid-edit: if the build fails but a binary from an
    earlier build exists, benchmark that one and say so, rather than giving up."""
    log("building peakprof (cargo build --release)...")
    t0 = time.monotonic()
    r = sh(["cargo", "build", "--release"], cwd=REPO)
    if r.returncode != 0:
        tail = "\n".join(r.stdout.strip().splitlines()[-15:])
        log(tail)
        if os.path.exists(PEAKPROF):
            notes.append("cargo build --release FAILED; benchmarked the existing (older) %s" %
                         os.path.relpath(PEAKPROF, REPO))
            return True
        notes.append("cargo build --release failed and there is no binary: peakprof columns empty")
        return False
    log("  built in %.0f s" % (time.monotonic() - t0))
    return True


def peakprof_has_sample_rate():
    try:
        r = sh([PEAKPROF, "run", "--help"], timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--sample-rate" in r.stdout


def build_c(name, extra, notes):
    """Compiles benches/workloads/NAME.c into target/bench/NAME when the source is newer.
    -O2 -g and no -fno-omit-frame-pointer: like a distribution build, so profilers have to
    unwind from DWARF CFI like they would on real binaries."""
    src = os.path.join(WORKLOADS_SRC, name + ".c")
    out = os.path.join(TARGET, name)
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
        return True
    r = sh(["gcc", "-O2", "-g", "-Wall", "-o", out, src] + extra)
    if r.returncode != 0:
        notes.append("compiling %s failed: %s" % (name, r.stdout.strip()[-300:]))
        return False
    return True


# --------------------------------------------------------------------------------------------
# Measuring one run: wall time, exit code, peak RSS of the process tree.
# --------------------------------------------------------------------------------------------

def read_stat(pid):
    """(ppid, cpu ticks, rss bytes) from /proc/PID/stat, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(b")") + 2:].split()
    try:
        # Fields 4 (ppid), 14+15 (utime+stime), 24 (rss in pages), counted from 1.
        return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[21]) * PAGE
    except (IndexError, ValueError):
        return None


PAGE = os.sysconf("SC_PAGE_SIZE")


class TreeSampler(threading.Thread):
    """Watches a process and all its descendants while a run lasts.

    - Peak RSS (when `count_rss`): the summed RSS of the tree, polled every POLL_INTERVAL.
    - A memory cap: if the tree grows past `cap` bytes, the whole process group is killed.
      heaptrack 1.4.0's interpreter has been seen growing to 20 GB on this machine (see
      README); a benchmark must not take the shared machine down with it.
    - Hang detection: if no process of the tree has used any CPU for `stall` seconds, the
      group is killed. Every workload here is CPU-bound, so that is a deadlock (seen: a
      peakprof build whose malloc hook deadlocked in the target's first malloc), and
      waiting for the full timeout would eat the time budget of the whole suite.

    The kernel here has no /proc/PID/task/TID/children, so descendants are found from the
    parent pid of every process. Reading /proc/*/stat of all processes every 5 ms would cost
    a good part of a core on this 2-core machine (slowing the very runs we measure), so a
    pid's parent is read once, when the pid first appears, and forgotten when it disappears;
    only the tree's own processes are read on each poll. (A parent changes only by
    reparenting to init/a subreaper, which takes the process out of the tree anyway; pid
    reuse within one 5 ms period is not a practical concern.)"""

    def __init__(self, root, pgid, cap, stall, count_rss=True, interval=POLL_INTERVAL):
        super().__init__(daemon=True)
        self.root = root
        self.pgid = pgid
        self.cap = cap
        self.stall = stall
        self.count_rss = count_rss
        self.interval = interval
        self.peak = 0
        self.killed_for = None
        self.parent = {}
        self.cpu = {}
        self.last_progress = time.monotonic()
        self._halt = threading.Event()

    def poll(self):
        try:
            names = os.listdir("/proc")
        except OSError:
            return
        alive = set()
        for name in names:
            if not name.isdigit():
                continue
            pid = int(name)
            alive.add(pid)
            if pid not in self.parent:
                st = read_stat(pid)
                if st is not None:
                    self.parent[pid] = st[0]
        for pid in [p for p in self.parent if p not in alive]:
            del self.parent[pid]
            self.cpu.pop(pid, None)
        children = collections.defaultdict(list)
        for pid, ppid in self.parent.items():
            children[ppid].append(pid)
        total, todo, seen, progress = 0, [self.root], set(), False
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            st = read_stat(pid)
            if st is not None:
                total += st[2]
                if st[1] > self.cpu.get(pid, -1):
                    progress = True
                    self.cpu[pid] = st[1]
            todo.extend(children.get(pid, ()))
        now = time.monotonic()
        if progress:
            self.last_progress = now
        if self.count_rss and total > self.peak:
            self.peak = total
        if self.killed_for:
            return
        if self.count_rss and self.cap and total > self.cap:
            self.killed_for = ("killed: process tree exceeded the memory cap of %.1f GiB"
                               % (self.cap / 1024 ** 3))
            kill_group(self.pgid)
        elif self.stall and now - self.last_progress > self.stall:
            self.killed_for = "hung: killed after %.0f s without using any CPU" % self.stall
            kill_group(self.pgid)

    def run(self):
        while not self._halt.is_set():
            self.poll()
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join()


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class CgroupV2:
    """Per-run child cgroup with memory.peak (exact, no polling). Usable only where the
    memory controller is enabled for children of our own cgroup in a cgroup v2 hierarchy,
    e.g. a pure-v2 host running this as root in the root cgroup. On the hybrid v1/v2
    hierarchy of the bench machine the memory controller belongs to v1, so this returns
    unavailable and the /proc poller is used. We never change existing cgroups' settings:
    the machine's own cgroups are not ours to reconfigure."""

    def __init__(self):
        self.base = None
        self.reason = ""
        self.counter = 0
        try:
            mount = None
            with open("/proc/mounts") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) > 2 and parts[2] == "cgroup2":
                        mount = parts[1]
                        break
            if mount is None:
                self.reason = "no cgroup2 mount"
                return
            rel = None
            with open("/proc/self/cgroup") as f:
                for line in f:
                    if line.startswith("0::"):
                        rel = line[3:].strip()
            if rel is None:
                self.reason = "not in a cgroup v2 hierarchy"
                return
            base = os.path.join(mount, rel.lstrip("/"))
            with open(os.path.join(base, "cgroup.subtree_control")) as f:
                if "memory" not in f.read().split():
                    self.reason = "memory controller not enabled for children of %s" % base
                    return
            probe = os.path.join(base, "peakprof-bench-%d-probe" % os.getpid())
            os.mkdir(probe)
            ok = os.path.exists(os.path.join(probe, "memory.peak"))
            os.rmdir(probe)
            if not ok:
                self.reason = "no memory.peak (kernel older than 5.19)"
                return
            self.base = base
        except OSError as e:
            self.reason = "cannot use cgroup v2: %s" % e

    def new(self, cap):
        self.counter += 1
        path = os.path.join(self.base, "peakprof-bench-%d-%d" % (os.getpid(), self.counter))
        os.mkdir(path)
        if cap:
            try:
                with open(os.path.join(path, "memory.max"), "w") as f:
                    f.write(str(cap))
            except OSError:
                pass
        return path

    @staticmethod
    def read(path, name):
        try:
            with open(os.path.join(path, name)) as f:
                return f.read()
        except OSError:
            return ""

    def finish(self, path):
        peak = int(self.read(path, "memory.peak").strip() or 0)
        oom = 0
        for line in self.read(path, "memory.events").splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                oom = int(v)
        # Strays (daemonized grandchildren) keep the cgroup populated: kill them, then remove.
        for _ in range(50):
            try:
                os.rmdir(path)
                break
            except OSError:
                try:
                    with open(os.path.join(path, "cgroup.kill"), "w") as f:
                        f.write("1")
                except OSError:
                    pass
                time.sleep(0.02)
        return peak, oom


def tree_size(path):
    """Bytes of a file, or of all regular files under a directory."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def normalize_rc(rc):
    # Popen reports death by signal N as -N; peakprof and heaptrack's shell script report it
    # as 128+N the way a shell does. Compare in the shell's form.
    return 128 - rc if rc < 0 else rc


class Runner:
    def __init__(self, args, cgroup, cap):
        self.args = args
        self.cgroup = cgroup
        self.cap = cap
        self.method = ("cgroup v2 memory.peak" if cgroup.base else
                       "/proc polling every %d ms (sum of RSS over the process tree), "
                       "floored by wait4 ru_maxrss" % int(POLL_INTERVAL * 1000))

    def measure(self, argv, timeout):
        """Runs argv once; returns wall time, exit code, peak tree memory, failure notes."""
        res = {"argv": argv}
        errf = tempfile.TemporaryFile(dir=SCRATCH)
        cg = None
        preexec = None
        if self.cgroup.base:
            cg = self.cgroup.new(self.cap)
            procs = os.path.join(cg, "cgroup.procs")

            def enter_cgroup():
                # Runs in the child between fork and exec: "0" moves the writing process.
                with open(procs, "w") as f:
                    f.write("0")
            preexec = enter_cgroup
        t0 = time.monotonic()
        try:
            # A session of its own so that a timeout or the memory cap can kill the whole
            # tree (heaptrack's interpreter, gcc's cc1...) with one killpg.
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=errf, start_new_session=True, preexec_fn=preexec,
                                 cwd=SCRATCH)
        except OSError as e:
            res.update(ok=False, error="cannot start: %s" % e)
            if cg:
                self.cgroup.finish(cg)
            return res
        # With a cgroup the sampler only watches for hangs, at a leisurely pace.
        sampler = TreeSampler(p.pid, p.pid, self.cap, self.args.stall, count_rss=cg is None,
                              interval=POLL_INTERVAL if cg is None else 0.5)
        sampler.start()
        timed_out = threading.Event()

        def on_timeout():
            timed_out.set()
            kill_group(p.pid)
        timer = threading.Timer(timeout, on_timeout)
        timer.start()
        try:
            # wait4 rather than Popen.wait: it also returns the child's rusage, whose
            # ru_maxrss (largest single process of the tree that was waited for) is a floor
            # for the tree's peak that a 5 ms poll can miss for short spikes.
            _, status, ru = os.wait4(p.pid, 0)
        except KeyboardInterrupt:
            kill_group(p.pid)
            p.wait()
            raise
        finally:
            timer.cancel()
        wall = time.monotonic() - t0
        rc = os.waitstatus_to_exitcode(status)
        p.returncode = rc  # we reaped it ourselves; tell Popen so it does not try again
        kill_group(p.pid)  # nothing of the run may outlive it (e.g. a stray interpreter)
        sampler.stop()
        killed_for = sampler.killed_for
        if cg is None:
            peak = max(sampler.peak, ru.ru_maxrss * 1024)
        else:
            peak, oom = self.cgroup.finish(cg)
            if oom and not killed_for:
                killed_for = ("killed: process tree exceeded the memory cap of %.1f GiB"
                              % (self.cap / 1024 ** 3))
        errf.seek(0, os.SEEK_END)
        size = errf.tell()
        errf.seek(max(0, size - 1500))
        err_tail = errf.read().decode("utf-8", "replace")
        errf.close()
        res.update(wall_s=wall, rc=rc, rc_norm=normalize_rc(rc), peak_rss_bytes=peak,
                   ru_maxrss_bytes=ru.ru_maxrss * 1024, ok=True)
        if timed_out.is_set():
            res.update(ok=False, error="timed out after %.0f s" % timeout)
        elif killed_for:
            res.update(ok=False, error=killed_for)
        if not res["ok"] or rc != 0:
            res["stderr_tail"] = err_tail
        return res


def heaptrack_print(path, timeout):
    """Times heaptrack's separate analysis step on a recorded file (output to a scratch
    file) and picks the 'peak heap memory consumption' line out of it for cross-checking."""
    out = os.path.join(SCRATCH, "heaptrack_print.txt")
    t0 = time.monotonic()
    try:
        with open(out, "w") as f:
            r = subprocess.run(["heaptrack_print", path], stdout=f, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"ok": False, "error": str(e)}
    wall = time.monotonic() - t0
    peak = None
    try:
        with open(out, errors="replace") as f:
            for line in f:
                if line.startswith("peak heap memory consumption:"):
                    peak = line.split(":", 1)[1].strip()
    except OSError:
        pass
    os.unlink(out)
    return {"ok": r.returncode == 0, "wall_s": wall, "rc": r.returncode, "peak_heap": peak}


def peakprof_peaks(outdir):
    """From peakprof's summary.json, for a sanity check against heaptrack: the root process's
    peak_bytes, and the largest peak of any process with its program name (for gcc that is
    cc1, which heaptrack does not see)."""
    try:
        with open(os.path.join(outdir, "summary.json")) as f:
            d = json.load(f)
    except (OSError, ValueError):
        return None, None
    if not isinstance(d, dict):
        return None, None
    best = None
    for p in d.get("processes") or []:
        if isinstance(p, dict) and isinstance(p.get("peak_bytes"), int):
            if best is None or p["peak_bytes"] > best[0]:
                prog = os.path.basename((p.get("command") or "?").split()[0])
                best = (p["peak_bytes"], prog)
    return d.get("peak_bytes"), best


# --------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_bytes(n):
    if n is None:
        return "–"
    for unit, size in (("GiB", 1024 ** 3), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            return "%.1f %s" % (n / size, unit)
    return "%d B" % n


def fmt_ratio(r):
    return "–" if r is None else "%.2f×" % r


def rounds_of(wl_result):
    """The workload's runs by round, then by variant."""
    by = collections.defaultdict(dict)
    for r in wl_result["runs"]:
        by[r["round"]][r["variant"]] = r
    return by


def valid_pairs(by, variant):
    """(run of `variant`, unprofiled run) of each round where both were valid, in round
    order (`by` as from rounds_of)."""
    return [(by[k][variant], by[k]["base"]) for k in sorted(by)
            if variant in by[k] and "base" in by[k]
            and by[k][variant].get("valid") and by[k]["base"].get("valid")]


def wall_ratios(pairs):
    """Profiled / unprofiled wall time of each pair."""
    return [a["wall_s"] / b["wall_s"] for a, b in pairs if b["wall_s"] > 0]


def summarize(wl_result, variants):
    """Medians over rounds. Ratios are the median of per-round ratios (each profiled run
    divided by the unprofiled run of the same round), which is what interleaving is for:
    a slow spell on the shared machine hits both sides of a pair."""
    runs = wl_result["runs"]
    by = rounds_of(wl_result)
    s = {}
    for v in variants:
        ok = [by[k][v] for k in sorted(by) if v in by[k] and by[k][v].get("valid")]
        s[v] = {
            "n_ok": len(ok),
            "n": sum(1 for k in by if v in by[k]),
            "wall_s": median([r["wall_s"] for r in ok]),
            "wall_min": min((r["wall_s"] for r in ok), default=None),
            "wall_max": max((r["wall_s"] for r in ok), default=None),
            "rss": median([r["peak_rss_bytes"] for r in ok]),
            "out": median([r.get("out_bytes") for r in ok]),
        }
        if v != "base":
            pairs = valid_pairs(by, v)
            s[v]["ratio"] = median(wall_ratios(pairs))
            s[v]["rss_ratio"] = median([a["peak_rss_bytes"] / b["peak_rss_bytes"]
                                        for a, b in pairs if b["peak_rss_bytes"] > 0])
    s["ht_print_s"] = median([r.get("ht_print", {}).get("wall_s") for r in runs
                              if r["variant"] == "heaptrack" and r.get("ht_print", {}).get("ok")])
    peaks = [r.get("peak_bytes") for r in runs if r["variant"] == "exact" and r.get("valid")]
    s["exact_peak_bytes"] = median(peaks)
    largest = [r.get("largest_process_peak") for r in runs if r["variant"] == "exact" and r.get("valid")]
    largest = [x for x in largest if x]
    s["exact_largest_process"] = sorted(largest)[len(largest) // 2] if largest else None
    hp = [r.get("ht_print", {}).get("peak_heap") for r in runs if r["variant"] == "heaptrack"]
    s["ht_peak_heap"] = next((x for x in hp if x), None)
    return s


def round_ratios(wl_result, variant):
    """Per-round ratios of `variant` (profiled wall time / the same round's unprofiled
    one), in round order, for the rounds where both runs were valid."""
    return wall_ratios(valid_pairs(rounds_of(wl_result), variant))


def rounds_table(results):
    """The per-round ratios behind the medians: on a shared machine single rounds move by
    10-20%, and a reader judging a median against a target needs that spread."""
    lines = ["Per-round ratios (round order; the medians above are of these):", "",
             "| workload | exact | sampled | heaptrack |", "|---|---|---|---|"]
    for name, wl in results.items():
        if wl.get("skipped"):
            continue
        cells = [" ".join("%.2f" % x for x in round_ratios(wl, v)) or "–"
                 for v in ("exact", "sampled", "heaptrack")]
        lines.append("| %s | %s |" % (name, " | ".join(cells)))
    lines.append("")
    return lines


def exact_peak_cell(s):
    txt = fmt_bytes(s.get("exact_peak_bytes"))
    lp = s.get("exact_largest_process")
    # A child's larger peak (gcc's cc1) is worth showing next to the root's.
    if lp and s.get("exact_peak_bytes") is not None and lp[0] > s["exact_peak_bytes"]:
        txt += " (%s: %s)" % (lp[1], fmt_bytes(lp[0]))
    return txt


def render(results, machine, config):
    lines = []
    lines.append("## peakprof benchmarks")
    lines.append("")
    lines.append("- machine: %s, %d cores (%d usable), %s, kernel %s" % (
        machine["cpu"], machine["cores"], machine["usable_cores"], machine["memory"], machine["kernel"]))
    lines.append("- date: %s; load average at start %s, at end %s" % (
        machine["date"], machine["load_start"], machine.get("load_end", "?")))
    lines.append("- peakprof: %s, %s (repo at %s); heaptrack: %s" % (
        machine["peakprof_version"], machine["peakprof_path"], machine["git"], machine["heaptrack_version"]))
    lines.append("- runs: %d per variant, interleaved (base, exact, sampled, heaptrack in odd rounds, the reverse in even ones; round 1 of every workload, then round 2, ...)%s" % (
        config["runs"], ", QUICK sizes (smoke figures, not a measurement)" if config["quick"] else ""))
    lines.append("- peak RSS method: %s" % config["rss_method"])
    if not config["sampled_available"]:
        lines.append("- sampled mode: not available in this build")
    else:
        lines.append("- sampled mode: --sample-rate %d" % SAMPLE_RATE)
    lines.append("")
    head = ["workload", "base (median s)", "exact", "sampled", "heaptrack",
            "exact ovh / ht ovh", "peak RSS base", "peak RSS exact", "peak RSS heaptrack",
            "output exact / heaptrack"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    notes = []
    for name, wl in results.items():
        if wl.get("skipped"):
            lines.append("| %s | skipped | | | | | | | | |" % name)
            notes.append("%s: skipped: %s" % (name, wl["skipped"]))
            continue
        s = wl["summary"]

        def cell(v):
            if v == "sampled" and not config["sampled_available"]:
                return ""
            if v == "heaptrack" and not config["heaptrack_available"]:
                return ""
            d = s.get(v)
            if not d or d["n"] == 0:
                return "–"
            if d["n_ok"] == 0:
                return "FAILED" + (" **RC!**" if wl["rc_mismatch"].get(v) else "")
            txt = fmt_ratio(d.get("ratio"))
            if d["n_ok"] < d["n"]:
                txt += " (%d/%d ok)" % (d["n_ok"], d["n"])
            if wl["rc_mismatch"].get(v):
                txt += " **RC!**"
            return txt
        e, h = s.get("exact", {}), s.get("heaptrack", {})
        ovh = "–"
        if e.get("ratio") is not None and h.get("ratio") is not None and config["heaptrack_available"]:
            # An overhead within this machine's noise (rounds move by 5-10%) makes this
            # quotient meaningless (gcc: heaptrack follows only the driver); say so instead.
            ovh = ("%.1f" % ((e["ratio"] - 1) / (h["ratio"] - 1)) if h["ratio"] - 1 >= 0.10 else "n/a (ht ≈ base)")

        def rss(v):
            d = s.get(v) or {}
            if d.get("rss") is None:
                return "–"
            if v == "base":
                return "%.1f MiB" % (d["rss"] / MiB)
            return "%.1f MiB (%s)" % (d["rss"] / MiB, fmt_ratio(d.get("rss_ratio")))
        base = s["base"]
        base_cell = "%.3f" % base["wall_s"] if base["wall_s"] is not None else "FAILED"
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |" % (
            name, base_cell, cell("exact"), cell("sampled"), cell("heaptrack"), ovh,
            rss("base"), rss("exact"), rss("heaptrack") if config["heaptrack_available"] else "",
            fmt_bytes(e.get("out")), fmt_bytes(h.get("out")) if config["heaptrack_available"] else ""))
        notes.extend("%s: %s" % (name, n) for n in wl["notes"])
    lines.append("")
    lines.append("Ratios: profiled wall time / unprofiled, median of per-round ratios. heaptrack "
                 "is record only; its separate analysis step (heaptrack_print) is in the next table.")
    lines.append("")
    head2 = ["workload", "size", "base min–max s", "runs ok b/e/s/h", "peak RSS sampled",
             "output sampled", "heaptrack_print s", "peak found: peakprof root (largest child) / heaptrack"]
    lines.append("| " + " | ".join(head2) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(head2) - 2)) + "|")
    for name, wl in results.items():
        if wl.get("skipped"):
            continue
        s = wl["summary"]
        b = s["base"]
        spread = ("%.3f–%.3f" % (b["wall_min"], b["wall_max"])) if b["wall_min"] is not None else "–"
        oks = "/".join("%d" % s[v]["n_ok"] if s.get(v) and s[v]["n"] else "-" for v in VARIANTS)
        sp = s.get("sampled") or {}
        htp = "%.2f" % s["ht_print_s"] if s.get("ht_print_s") is not None else "–"
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s / %s |" % (
            name, wl["size"], spread, oks,
            fmt_bytes(sp.get("rss")) if sp.get("n_ok") else "–",
            fmt_bytes(sp.get("out")) if sp.get("n_ok") else "–",
            htp, exact_peak_cell(s), s.get("ht_peak_heap") or "–"))
    lines.append("")
    lines.extend(rounds_table(results))
    if config["notes"] or notes:
        lines.append("Notes:")
        for n in config["notes"] + notes:
            lines.append("- " + n)
        lines.append("")
    return "\n".join(lines)


def machine_info():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = "%.1f GiB RAM" % (int(line.split()[1]) / 1024 ** 2)
    except OSError:
        pass
    git = sh(["git", "-C", REPO, "describe", "--always", "--dirty"])
    ht = sh(["heaptrack", "--version"]) if shutil.which("heaptrack") else None
    pp = sh([PEAKPROF, "--version"]) if os.path.exists(PEAKPROF) else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory": mem,
        "kernel": platform.release(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_start": " ".join("%.2f" % x for x in os.getloadavg()),
        "git": git.stdout.strip() if git.returncode == 0 else "?",
        "heaptrack_version": ht.stdout.strip() if ht and ht.returncode == 0 else "not installed",
        "peakprof_version": pp.stdout.strip() if pp and pp.returncode == 0 else "?",
        "peakprof_path": os.path.relpath(PEAKPROF, REPO) if PEAKPROF.startswith(REPO + os.sep) else PEAKPROF,
        "python": platform.python_version(),
    }


def memory_cap():
    """Kill threshold for one run's process tree: 60% of the memory available now, at most
    16 GiB. Far above anything a working run needs (the largest, `large` under a profiler,
    stays well under 1 GiB), low enough to keep a runaway tool from taking the machine."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return min(16 * 1024 ** 3, int(int(line.split()[1]) * 1024 * 0.6))
    except OSError:
        pass
    return 8 * 1024 ** 3


# --------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=None, help="rounds per workload (default 7, --quick: 1)")
    ap.add_argument("--quick", action="store_true", help="~10x smaller sizes, 1 round: a smoke test")
    ap.add_argument("--only", default="", help="comma-separated workload names, or stack_capture (%s)" %
                    ",".join(w.name for w in WORKLOADS))
    ap.add_argument("--out", help="also write the report (markdown) to FILE and raw per-run JSON "
                    "to FILE with its extension replaced by .json")
    ap.add_argument("--timeout", type=float, default=900,
                    help="most seconds one run may take (900; profiled runs get min(this, max(120, 100x unprofiled)))")
    ap.add_argument("--stall", type=float, default=30,
                    help="kill a run whose process tree used no CPU for this many seconds (30; 0: never)")
    ap.add_argument("--rss-method", choices=("auto", "cgroup", "proc"), default="auto",
                    help="peak RSS measurement: cgroup v2 memory.peak if possible (auto), or /proc polling")
    ap.add_argument("--no-heaptrack-print", action="store_true", help="do not time heaptrack's analysis step")
    ap.add_argument("--peakprof", metavar="PATH", help="benchmark this peakprof binary instead of "
                    "building target/release/peakprof (implies --no-build)")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build --release first")
    ap.add_argument("--keep", action="store_true", help="keep the profilers' outputs in target/bench/scratch")
    args = ap.parse_args()
    runs = args.runs if args.runs is not None else (1 if args.quick else 7)
    if runs < 1:
        ap.error("--runs must be at least 1")
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = [x for x in only if x not in {w.name for w in WORKLOADS} | {"stack_capture"}]
    if unknown:
        ap.error("unknown workload(s): %s" % ", ".join(unknown))
    selected = [w for w in WORKLOADS if not only or w.name in only]

    t_start = time.monotonic()
    os.makedirs(TARGET, exist_ok=True)
    os.makedirs(INPUTS, exist_ok=True)
    os.makedirs(SCRATCH, exist_ok=True)
    notes = []

    # --- tools and builds -------------------------------------------------------------------
    needed = sorted({t for w in selected for t in w.tools})
    ensure_tools(needed, notes)
    if not shutil.which("heaptrack"):
        apt_install(["heaptrack"], notes)
    heaptrack_available = bool(shutil.which("heaptrack"))
    if not heaptrack_available:
        notes.append("heaptrack is not installed and could not be installed: heaptrack columns empty")
    global PEAKPROF
    if args.peakprof:
        PEAKPROF = os.path.abspath(args.peakprof)
    if args.peakprof or args.no_build:
        have_peakprof = os.path.exists(PEAKPROF)
        if not have_peakprof:
            notes.append("no peakprof binary at %s: peakprof columns empty" % PEAKPROF)
    else:
        have_peakprof = build_peakprof(notes)
    sampled = have_peakprof and peakprof_has_sample_rate()
    if have_peakprof and not sampled:
        log("sampled mode: not available in this build")
    c_ok = {}
    if shutil.which("gcc"):
        c_ok["churn"] = build_c("churn", [], notes)
        c_ok["churn_mt"] = build_c("churn_mt", ["-pthread"], notes)
        c_ok["large"] = build_c("large", [], notes)

    cgroup = CgroupV2() if args.rss_method in ("auto", "cgroup") else None
    if cgroup is None or not cgroup.base:
        if args.rss_method == "cgroup":
            sys.exit("cgroup v2 memory.peak not usable: %s" % cgroup.reason)
        reason = cgroup.reason if cgroup else "--rss-method proc"
        cgroup = CgroupV2.__new__(CgroupV2)
        cgroup.base = None
        cgroup.reason = reason
    runner = Runner(args, cgroup, memory_cap())
    rss_method = runner.method + ("" if cgroup.base else " (cgroup not used: %s)" % cgroup.reason)
    log("peak RSS method: %s" % rss_method)

    machine = machine_info()
    config = {"runs": runs, "quick": args.quick, "sample_rate": SAMPLE_RATE,
              "sampled_available": sampled, "heaptrack_available": heaptrack_available,
              "rss_method": rss_method, "notes": notes, "memory_cap_bytes": runner.cap}

    variants = ["base"]
    if have_peakprof:
        variants.append("exact")
        if sampled:
            variants.append("sampled")
    if heaptrack_available:
        variants.append("heaptrack")

    results = collections.OrderedDict()
    started = []
    interrupted = False
    try:
        for wl in selected:
            size = wl.quick if args.quick else wl.full
            entry = {"what": wl.what, "size": size, "runs": [], "notes": [], "rc_mismatch": {}}
            results[wl.name] = entry
            missing = [t for t in wl.tools if not shutil.which(t)]
            if wl.name == "python" and not python_binary():
                missing.append("python3")
            if missing:
                entry["skipped"] = "missing tool(s): %s" % ", ".join(missing)
                log("%s: skipped (%s)" % (wl.name, entry["skipped"]))
                continue
            if wl.name in ("churn", "churn_mt", "large") and not c_ok.get(wl.name):
                entry["skipped"] = "did not compile"
                continue
            if wl.prepare:
                try:
                    wl.prepare(size)
                except OSError as e:
                    entry["skipped"] = "cannot generate input: %s" % e
                    continue
            argv = wl.command(size)
            entry["argv"] = argv
            log("%s (size %s): %s" % (wl.name, size, " ".join(argv)[:150]))
            started.append(WorkloadRun(runner, args, wl.name, argv, runs, variants, entry))
        # Round by round across the workloads rather than all rounds of one workload in a
        # row: a slow spell of the host (another tenant's job, minutes long) then falls on
        # one round of several workloads instead of on every round of one of them. In one
        # earlier run, all five rounds of gcc met such a spell (its unprofiled run took
        # 4.3-4.6 s, against 3.4-3.7 s in the runs before) and its ratio read 1.66x.
        for rnd in range(1, runs + 1):
            log("round %d of %d" % (rnd, runs))
            for w in started:
                w.round(rnd)
        for w in started:
            w.entry["summary"] = summarize(w.entry, variants)
    except KeyboardInterrupt:
        interrupted = True
        notes.append("INTERRUPTED: partial results")
        for name, e in results.items():
            if "summary" not in e and not e.get("skipped"):
                e["summary"] = summarize(e, variants)

    machine["load_end"] = " ".join("%.2f" % x for x in os.getloadavg())
    config["total_s"] = time.monotonic() - t_start
    notes.append("total benchmark time %.0f s" % config["total_s"])
    report = render(results, machine, config)
    if not args.only or "stack_capture" in args.only.split(","):
        report += "\n" + stack_capture_micro(notes_sink=notes)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
        stem = os.path.splitext(args.out)[0]
        jpath = stem + ".json" if not args.out.endswith(".json") else stem + ".raw.json"
        with open(jpath, "w") as f:
            json.dump({"machine": machine, "config": config, "workloads": results}, f, indent=1)
        log("wrote %s and %s" % (args.out, jpath))
    return 130 if interrupted else 0


def stack_capture_micro(notes_sink, runs=3):
    """The stack-capture microbenchmark (benches/micro/stack_capture.c): ns per captured
    stack at depths 10/30/60 for peakprof's unwinder and the alternatives, median of RUNS.
    It runs under the preload library that the nested build left in
    target/peakprof-preload, whose exported bench entry point it calls."""
    src = os.path.join(REPO, "benches", "micro", "stack_capture.c")
    exe = os.path.join(TARGET, "stack_capture")
    lib = os.path.join(REPO, "target", "peakprof-preload", "release", "libpeakprof_preload.so")
    if not os.path.exists(lib):
        return "stack capture: preload library not found at %s (build first)\n" % lib
    r = sh(["gcc", "-O2", "-g", "-fno-omit-frame-pointer", "-o", exe, src, "-ldl"])
    if r.returncode != 0:
        return "stack capture: compiling failed: %s\n" % r.stdout.strip()[-300:]
    rows = {}
    check = ""
    tmp = tempfile.mkdtemp(prefix="stack-capture-", dir=SCRATCH)
    env = dict(os.environ, LD_PRELOAD=lib, PEAKPROF_OUT_DIR=tmp)
    for _ in range(runs):
        out = subprocess.run([exe], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, timeout=300)
        for line in out.stdout.splitlines():
            if line.startswith("cached vs libgcc"):
                check = line
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 7 and cells[0][:1].isdigit():
                rows.setdefault(cells[0], []).append([float(c) for c in cells[1:]])
        if out.returncode != 0:
            notes_sink.append("stack capture: the cached unwinder disagreed with libgcc: " + check)
    shutil.rmtree(tmp, ignore_errors=True)
    lines = ["### Stack capture (ns per captured stack, median of %d runs)" % runs, "",
             "| depth | peakprof, memo: same stack again | peakprof, memo: 3 inner frames differ "
             "| peakprof, memo off (cached rules) | libgcc _Unwind_Backtrace | glibc backtrace() "
             "| frame pointers* |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for depth, vals in rows.items():
        med = [statistics.median(v[i] for v in vals) for i in range(6)]
        lines.append("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |" % (depth, *med))
    lines += ["", check + " (must be 0)",
              "*frame pointers: valid only when every frame was built with them; most of a "
              "Debian system is not, so peakprof cannot rely on them.", ""]
    return "\n".join(lines)


class WorkloadRun:
    """One workload's state across the rounds: its command, the unprofiled exit status
    every profiled run must reproduce, its timeout, and the variants given up on."""

    def __init__(self, runner, args, name, argv, runs, variants, entry):
        self.runner, self.args, self.name, self.argv = runner, args, name, argv
        self.runs, self.variants, self.entry = runs, variants, entry
        # One unmeasured run first: loads the binary and its input into the page cache so
        # the first measured round is not the only one paying for cold I/O.
        warm = runner.measure(argv, args.timeout)
        self.ref_rc = warm.get("rc_norm") if warm.get("ok") else None
        if not warm.get("ok") or warm.get("rc") != 0:
            entry["notes"].append("unprofiled warm-up run: rc %s %s %s" % (
                warm.get("rc"), warm.get("error", ""), (warm.get("stderr_tail") or "").strip()[-200:]))
        # Profiled runs are allowed 100x the unprofiled time (exact mode on churn is ~40x),
        # at least 2 minutes, at most --timeout: a hung run must not eat the whole budget.
        base_s = warm.get("wall_s") or 0
        self.timeout = min(args.timeout, max(120.0, 100 * base_s)) if warm.get("ok") else args.timeout
        self.given_up = set()

    def round(self, rnd):
        """Round `rnd`: every variant once, in turn."""
        runner, args, name, argv, runs, entry = (
            self.runner, self.args, self.name, self.argv, self.runs, self.entry)
        timeout, given_up = self.timeout, self.given_up
        # Odd rounds in the order given, even rounds reversed: a variant's place in the
        # round (right after the base run, or after heaptrack's big output) then biases
        # no variant in particular.
        order = self.variants if rnd % 2 == 1 else self.variants[::-1]
        for v in order:
            if v in given_up:
                continue
            out = None
            if v == "base":
                cmd = argv
            elif v in ("exact", "sampled"):
                out = tempfile.mkdtemp(prefix="%s-%s-%d-" % (name, v, rnd), dir=SCRATCH)
                outdir = os.path.join(out, "out")
                cmd = [PEAKPROF, "run", "-q"] + (["--sample-rate", str(SAMPLE_RATE)] if v == "sampled" else []) \
                    + ["-o", outdir, "--"] + argv
            else:
                out = tempfile.mkdtemp(prefix="%s-heaptrack-%d-" % (name, rnd), dir=SCRATCH)
                cmd = ["heaptrack", "-o", os.path.join(out, "ht")] + argv
            r = runner.measure(cmd, timeout)
            r.update(round=rnd, variant=v)
            if out:
                r["out_bytes"] = tree_size(out)
                r["out_dir"] = out
                if v in ("exact", "sampled") and r.get("ok"):
                    r["peak_bytes"], r["largest_process_peak"] = peakprof_peaks(os.path.join(out, "out"))
                    if not os.path.exists(os.path.join(out, "out", "summary.json")):
                        entry["notes"].append("%s round %d: no summary.json written" % (v, rnd))
                if v == "heaptrack" and r.get("ok") and not args.no_heaptrack_print:
                    files = [os.path.join(out, f) for f in os.listdir(out)]
                    if files:
                        r["ht_print"] = heaptrack_print(files[0], args.timeout)
            if v == "base" and self.ref_rc is None and r.get("ok"):
                self.ref_rc = r.get("rc_norm")
            # A profiler must not change what the program returns.
            if v != "base" and r.get("ok") and self.ref_rc is not None and r["rc_norm"] != self.ref_rc:
                msg = "EXIT CODE MISMATCH: %s round %d exited %d, unprofiled %d" % (v, rnd, r["rc_norm"], self.ref_rc)
                log("!!! %s: %s" % (name, msg))
                entry["rc_mismatch"][v] = True
                entry["notes"].append(msg + ((": " + r.get("stderr_tail", "").strip()[-300:])
                                             if r.get("stderr_tail") else ""))
            r["valid"] = bool(r.get("ok")) and (self.ref_rc is None or r.get("rc_norm") == self.ref_rc)
            if not r.get("ok"):
                log("!!! %s/%s round %d failed: %s" % (name, v, rnd, r.get("error")))
                entry["notes"].append("%s round %d failed: %s %s" % (
                    v, rnd, r.get("error"), (r.get("stderr_tail") or "").strip()[-300:]))
                # Timeouts and memory-cap kills are expensive and would repeat: stop that
                # variant for this workload. Other failures are retried in later rounds.
                if any(k in r.get("error", "") for k in ("timed out", "memory cap", "hung")):
                    given_up.add(v)
                    if rnd < runs:
                        entry["notes"].append("%s not run in later rounds" % v)
            log("  round %d %-8s %-9s %8.3f s  rc %-4s rss %9s  out %9s%s" % (
                rnd, name, v, r.get("wall_s", 0), r.get("rc", "?"), fmt_bytes(r.get("peak_rss_bytes")),
                fmt_bytes(r.get("out_bytes")) if out else "",
                ("  heaptrack_print %.2f s" % r["ht_print"]["wall_s"]) if r.get("ht_print", {}).get("ok") else ""))
            if out and not args.keep:
                shutil.rmtree(out, ignore_errors=True)
                r.pop("out_dir", None)
            entry["runs"].append(r)


if __name__ == "__main__":
    sys.exit(main())
