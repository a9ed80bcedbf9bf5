/* Stack-capture microbenchmark: nanoseconds per captured stack at depths 10, 30 and 60,
 * for the unwinder peakprof uses (rules cached per return address, libgcc fallback) and
 * the alternatives measured while choosing it:
 *   cached     - peakprof's unwinder (peakprof_bench_capture method 0)
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

enum { CACHED, LIBGCC, BACKTRACE, FP, CHECK };

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
        case CACHED: n = capture(0, a, 130); break;
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
    const char *names[] = {"cached", "libgcc", "backtrace", "fp"};
    int depths[] = {10, 30, 60};
    printf("| depth | cached ns | libgcc ns | glibc backtrace ns | frame pointers ns |\n|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < 3; i++) {
        double r[4];
        size_t frames = 0;
        for (int m = 0; m < 4; m++) {
            int iters = (m == LIBGCC || m == BACKTRACE) ? 3000 : 100000;
            /* Depth counts from main; the stack also holds libc's start-up frames. */
            size_t n = down(depths[i] - 3, m, iters, &ns);
            if (m == CACHED)
                frames = n;
            r[m] = ns;
        }
        printf("| %d (%zu captured) | %.0f | %.0f | %.0f | %.0f |\n", depths[i], frames, r[0], r[1], r[2], r[3]);
    }
    (void)names;
    return mismatches != 0;
}
