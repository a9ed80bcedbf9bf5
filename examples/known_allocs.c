/*
 * known_allocs.c: a single-threaded program with a known peak, meant to be linked against
 * another malloc (jemalloc, tcmalloc, mimalloc) as well as glibc's.
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0 -pthread` (glibc), and with `gcc -g -O0
 * -Wl,--no-as-needed -l<allocator>` for jemalloc, tcmalloc and mimalloc.
 * Writes one line with write(2): "known_allocs: usable=N\n", N being malloc_usable_size of
 * the 100000-byte block (it depends on which allocator serves it: glibc says 100008, the
 * others round up to their own size classes). Frees everything, then exits 0.
 *
 * EXPECTED PEAK (under main): 196400 bytes, after the last allocation in k_aligned:
 *   k_malloc    malloc(100000)                              100000
 *   k_calloc    calloc(1000, 40)                             40000
 *   k_realloc   malloc(1000), realloc to 30000               30000
 *   k_memalign  posix_memalign(&p, 4096, 20000)              20000
 *   k_aligned   aligned_alloc(64, 6400)                       6400
 * k_temp's malloc(150000) is freed before any of them, and is smaller than the total.
 * Anything the allocator library (or a library it depends on: libstdc++ for tcmalloc)
 * allocates through malloc before main is live too, outside main.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static void *held[5];

NOINLINE static void k_temp(void) {
    char *p = malloc(150000);
    memset(p, 1, 150000);
    escape(p);
    free(p);
}

NOINLINE static void k_malloc(void) {
    held[0] = malloc(100000);
    memset(held[0], 2, 100000);
}

NOINLINE static void k_calloc(void) { held[1] = calloc(1000, 40); }

NOINLINE static void k_realloc(void) {
    char *p = malloc(1000);
    memset(p, 3, 1000);
    held[2] = realloc(p, 30000);
}

NOINLINE static void k_memalign(void) {
    if (posix_memalign(&held[3], 4096, 20000) != 0) held[3] = NULL;
}

NOINLINE static void k_aligned(void) { held[4] = aligned_alloc(64, 6400); }

int main(void) {
    k_temp();
    k_malloc();
    k_calloc();
    k_realloc();
    k_memalign();
    k_aligned();
    for (int i = 0; i < 5; i++)
        if (!held[i]) return 1;

    char line[64] = "known_allocs: usable=";
    size_t n = strlen(line);
    char digits[24];
    int d = 0;
    size_t u = malloc_usable_size(held[0]);
    do {
        digits[d++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    while (d > 0) line[n++] = digits[--d];
    line[n++] = '\n';
    if (write(1, line, n) < 0) return 1;

    for (int i = 0; i < 5; i++) free(held[i]);
    return 0;
}
