/* Stack-capture microbenchmark: nanoseconds per captured stack at depths 10, 30 and 60,
 * for the unwinder peakprof uses (rules cached per return address, a memo of the thread's
 * previous capture, libgcc fallback) and the alternatives measured while choosing it:
 *   memo-same  - peakprof's unwinder capturing the same stack again (method 0): the memo
 *                matches at once, the words it relies on are checked, nothing is walked
 *   memo-inner - the same, alternating between two call paths whose 3 innermost frames
 *                differ: those are walked, the rest checked (the common case)
 *   cached     - peakprof's unwinder with the memo off (method 2): every frame walked
 *   libgcc     - _Unwind_Backtrace on every capture (what the backtrace crate does)
 *   backtrace  - glibc's backtrace(3) (also libgcc underneath, plus its own overhead)
 *   fp         - a frame-pointer walk (only valid when everything is built with frame
 *                pointers; this file is, the rest of a Debian system usually is not)
 * It also checks that the cached unwinder returns exactly libgcc's frames.
 *
 * Run under the preload so its exported bench entry point is reachable:
 *   PEAKPROF_OUT_DIR=/tmp LD_PRELOAD=<libpeakprof_preload.so> ./stack_capture
 * (benches/run.py does this with the library embedded in the peakprof binary). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef size_t (*capture_fn)(int, uint64_t *, size_t);
static capture_fn capture;
static int mismatches;

enum { MEMO_SAME, LIBGCC, BACKTRACE, FP, NOMEMO, MEMO_INNER, CHECK, METHODS = CHECK };

static size_t fp_walk(uint64_t *out, size_t cap) {
    uintptr_t *bp = __builtin_frame_address(0);
    size_t n = 0;
    while (bp && n < cap) {
        uintptr_t ra = bp[1];
        uintptr_t *next = (uintptr_t *)bp[0];
        if (!ra || next <= bp)
            break;
        out[n++] = ra;
        bp = next;
    }
    return n;
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Two 3-frame call paths to a capture, for MEMO_INNER. */
#define KEEP() __asm__ volatile("" ::: "memory")
__attribute__((noinline)) static size_t path_a3(uint64_t *a) { size_t n = capture(0, a, 130); KEEP(); return n; }
__attribute__((noinline)) static size_t path_a2(uint64_t *a) { size_t n = path_a3(a); KEEP(); return n; }
__attribute__((noinline)) static size_t path_a1(uint64_t *a) { size_t n = path_a2(a); KEEP(); return n; }
__attribute__((noinline)) static size_t path_b3(uint64_t *a) { size_t n = capture(0, a, 130); KEEP(); return n + 1; }
__attribute__((noinline)) static size_t path_b2(uint64_t *a) { size_t n = path_b3(a); KEEP(); return n; }
__attribute__((noinline)) static size_t path_b1(uint64_t *a) { size_t n = path_b2(a); KEEP(); return n - 1; }

__attribute__((noinline)) static size_t leaf(int method, int iters, double *ns) {
    uint64_t a[130], b[130];
    void *c[130];
    if (method == CHECK) {
        size_t na = capture(0, a, 130), nb = capture(1, b, 130);
        if (na != nb)
            mismatches++;
        /* The first frame is this function at two different call sites. */
        for (size_t i = 1; i < na && i < nb; i++)
            if (a[i] != b[i]) {
                mismatches++;
                break;
            }
        return na;
    }
    size_t n = 0;
    double t0 = now_ns();
    for (int i = 0; i < iters; i++) {
        switch (method) {
        case MEMO_SAME: n = capture(0, a, 130); break;
        case NOMEMO: n = capture(2, a, 130); break;
        case MEMO_INNER: n = (i & 1) ? path_a1(a) : path_b1(a); break;
        case LIBGCC: n = capture(1, a, 130); break;
        case BACKTRACE: n = (size_t)backtrace(c, 130); break;
        case FP: n = fp_walk(a, 130); break;
        }
    }
    *ns = (now_ns() - t0) / iters;
    return n;
}

__attribute__((noinline, noclone)) static size_t down(int depth, int method, int iters, double *ns) {
    if (depth <= 0)
        return leaf(method, iters, ns);
    size_t r = down(depth - 1, method, iters, ns);
    __asm__ volatile("" ::: "memory"); /* keeps the call a real, non-tail call */
    return r;
}

int main(int argc, char **argv) {
    capture = (capture_fn)dlsym(RTLD_DEFAULT, "peakprof_bench_capture");
    if (!capture) {
        fprintf(stderr, "run me under peakprof's preload library (LD_PRELOAD)\n");
        return 2;
    }
    double ns;
    for (int d = 1; d < 100; d += 3)
        down(d, CHECK, 0, &ns);
    printf("cached vs libgcc frame mismatches: %d\n", mismatches);
    int depths[] = {10, 30, 60};
    printf("| depth | memo-same ns | memo-inner ns | cached ns | libgcc ns | glibc backtrace ns | frame pointers ns |\n"
           "|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < 3; i++) {
        double r[METHODS];
        size_t frames = 0;
        for (int m = 0; m < METHODS; m++) {
            int iters = (m == LIBGCC || m == BACKTRACE) ? 3000 : 100000;
            /* Depth counts from main; the stack also holds libc's start-up frames. */
            size_t n = down(depths[i] - 3, m, iters, &ns);
            if (m == NOMEMO)
                frames = n;
            r[m] = ns;
        }
        printf("| %d (%zu captured) | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", depths[i], frames,
               r[MEMO_SAME], r[MEMO_INNER], r[NOMEMO], r[LIBGCC], r[BACKTRACE], r[FP]);
    }
    return mismatches != 0;
}
