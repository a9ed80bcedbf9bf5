/*
 * aligned_family.c: one block from each of the rarer allocation functions, each made in a
 * function of its own, so a test can check that every one of them is attributed to its
 * caller (peakprof starts their stack walks from the interposed function's entry).
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0` (glibc only: pvalloc is glibc's).
 *
 * EXPECTED PEAK (under main): 33000 bytes, after the last allocation in k_reallocarray:
 *   k_memalign      memalign(256, 12000)                       12000
 *   k_valloc        valloc(9000)                                9000
 *   k_pvalloc       pvalloc(5000) (counted as asked, not as rounded to a page)  5000
 *   k_reallocarray  reallocarray(NULL, 300, 10), then to 700 x 10               7000
 * Frees everything, then exits 0.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

static void *held[4];

NOINLINE static void k_memalign(void) { held[0] = memalign(256, 12000); }

NOINLINE static void k_valloc(void) { held[1] = valloc(9000); }

NOINLINE static void k_pvalloc(void) { held[2] = pvalloc(5000); }

NOINLINE static void k_reallocarray(void) {
    char *p = reallocarray(NULL, 300, 10);
    if (p) p = reallocarray(p, 700, 10);
    held[3] = p;
}

int main(void) {
    k_memalign();
    k_valloc();
    k_pvalloc();
    k_reallocarray();
    for (int i = 0; i < 4; i++)
        if (!held[i]) return 1;
    for (int i = 0; i < 4; i++) free(held[i]);
    return 0;
}
