/*
 * peak_c.c: a C program whose peak is known to the byte.
 *
 * Built by tests/e2e_peak.rs with `gcc -g -O0 -pthread` (and again with `-g -O2 -pthread`;
 * the allocation pattern is the same at both levels). Exits with code 3 and prints exactly
 * one line, "peak_c: done\n", to stdout after everything is freed.
 *
 * EXPECTED PEAK: 399152 bytes, reached by the last realloc in buf_grow. Live at that moment:
 *
 *   function (leaf)  how                                        bytes at peak
 *   hold_a           malloc(100000)                                   100000
 *   hold_b           calloc(3000, 20)                                  60000
 *   hold_c           posix_memalign(&p, 4096, 50000)                   50000
 *   hold_d           aligned_alloc(64, 40000)                          40000
 *   buf_grow         realloc 1000 -> 5000 -> 20000 -> 70000            70000
 *   map_pages        mmap 16 pages, then punch_hole unmaps 4 pages     49152  (12 x 4096)
 *   thread_alloc     malloc(30000) in a second thread, joined          30000
 *                    and handed to main through pthread_join
 *   total                                                             399152
 *
 * Inclusive bytes per function at the peak (each stack counted once per function):
 *   main 369152 (everything but the thread's block, whose root is the thread's start,
 *   not main); worker_thread 30000; thread_alloc 30000; hold_a 100000; hold_b 60000;
 *   hold_c 50000; hold_d 40000; buf_grow 70000; map_pages 49152;
 *   buf_start 0 (its malloc(1000) was moved by realloc: the block belongs to the function
 *   that did the last realloc); make_temporary 0 (its 200000-byte block, larger than any
 *   single held block, was freed before the peak); punch_hole 0 (munmap holds nothing).
 *
 * Why no other allocation is live at the peak:
 *   - No stdio before the peak (the line is printed after everything is freed), so no
 *     FILE buffer exists yet.
 *   - glibc makes no malloc call of its own before main in a C program.
 *   - pthread_create callocs the new thread's DTV (16 * (number of TLS modules + 16)
 *     bytes, which depends on how many loaded objects have TLS, the preloaded profiler
 *     included). A thread on a glibc-allocated stack keeps that DTV after the join (the stack
 *     goes to glibc's stack cache). This thread runs on a caller-supplied stack
 *     (pthread_attr_setstack on a static array), and glibc frees the DTV of such a thread
 *     when it is joined, so it is gone before the peak, and its stack is never mmapped
 *     through the hooked entry points.
 *   - glibc's own mmaps (malloc arenas for the second thread, thread stacks) use internal
 *     calls that an LD_PRELOAD library does not see; only the program's own mmap counts.
 *   - The running total before the peak never exceeds 399152: at most 200000 while the
 *     temporary is live (nothing else is held then), and every later step only adds.
 *
 * Verified (glibc 2.36, gcc 12.2, x86_64, 4096-byte pages) with:
 *   - examples/tools/alloc_trace.c + peak_from_trace.py (an independent LD_PRELOAD logger
 *     of malloc family + anonymous mmap/munmap/mremap that replays the exact peak and
 *     symbolizes the live set): peak 399152, the per-function bytes above, no other block,
 *     at -O0 and -O2;
 *   - valgrind --trace-malloc=yes: the calls are exactly the ones above plus pthread's DTV
 *     calloc(17, 16) (freed at the join; 17 = libc is the only TLS module) and, after the
 *     peak, printf's 1024/4096-byte stdout buffer;
 *   - ltrace -f -e malloc+calloc+realloc+free+posix_memalign+aligned_alloc+mmap+munmap:
 *     exactly the program's own calls above, in that order;
 *   - heaptrack_print: peak consumers 100.00K, 70.00K, 60.00K, 50.00K, 40.00K, 30.00K from
 *     the functions above (heaptrack does not count mmap: 399152 - 49152 = 350000), plus
 *     72.70K (72704) from the libstdc++ that heaptrack's own injected library loads.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define PAGE 4096

/* Tell the compiler the block is used, so -O2 neither drops nor reorders the allocation. */
static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static void *held[8];

NOINLINE static void make_temporary(void) {
    char *p = malloc(200000);
    memset(p, 0x5a, 200000);
    escape(p);
    free(p);
}

NOINLINE static char *map_pages(void) {
    char *m = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) _exit(90);
    memset(m, 1, 16 * PAGE);
    return m;
}

/* Unmaps pages 4..7 of the 16: the mapping is split in two, 12 pages remain. */
NOINLINE static void punch_hole(char *m) {
    if (munmap(m + 4 * PAGE, 4 * PAGE) != 0) _exit(91);
}

NOINLINE static void *thread_alloc(void) {
    char *p = malloc(30000);
    memset(p, 7, 30000);
    escape(p);
    return p;
}

NOINLINE static void *worker_thread(void *arg) {
    (void)arg;
    void *p = thread_alloc();
    escape(p);
    return p;
}

/* The thread's stack: caller-supplied, so glibc neither caches it nor keeps its DTV. */
static char thread_stack[256 * 1024] __attribute__((aligned(PAGE)));

NOINLINE static void *run_thread(void) {
    pthread_attr_t attr;
    pthread_t t;
    void *result = NULL;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, thread_stack, sizeof thread_stack);
    if (pthread_create(&t, &attr, worker_thread, NULL) != 0) _exit(92);
    pthread_join(t, &result);
    pthread_attr_destroy(&attr);
    return result;
}

NOINLINE static void hold_a(void) {
    held[0] = malloc(100000);
    memset(held[0], 2, 100000);
}

NOINLINE static void hold_b(void) {
    held[1] = calloc(3000, 20);
    escape(held[1]);
}

NOINLINE static void hold_c(void) {
    if (posix_memalign(&held[2], 4096, 50000) != 0) _exit(93);
    memset(held[2], 3, 50000);
}

NOINLINE static void hold_d(void) {
    held[3] = aligned_alloc(64, 40000);
    memset(held[3], 4, 40000);
}

NOINLINE static char *buf_start(void) {
    char *b = malloc(1000);
    memset(b, 5, 1000);
    return b;
}

/* Several reallocs; the final block (70000 bytes) belongs to this function. */
NOINLINE static char *buf_grow(char *b) {
    static const size_t sizes[] = {1000, 5000, 20000, 70000};
    for (int i = 1; i < 4; i++) {
        b = realloc(b, sizes[i]);
        if (!b) _exit(94);
        memset(b + sizes[i - 1], 6, sizes[i] - sizes[i - 1]);
    }
    return b;
}

NOINLINE static void release_all(char *m) {
    for (int i = 0; i < 8; i++) free(held[i]);
    munmap(m, 16 * PAGE); /* covers both remaining pieces and the hole */
}

int main(void) {
    make_temporary();                 /* total 200000, then 0 */
    char *m = map_pages();            /* 65536 */
    punch_hole(m);                    /* 49152 */
    held[4] = run_thread();           /* 79152 (the DTV came and went with the thread) */
    hold_a();                         /* 179152 */
    hold_b();                         /* 239152 */
    hold_c();                         /* 289152 */
    hold_d();                         /* 329152 */
    char *b = buf_start();            /* 330152 */
    held[5] = buf_grow(b);            /* 334152, 349152, 399152 <- the peak */
    release_all(m);
    printf("peak_c: done\n");         /* stdio only after the peak */
    return 3;
}
