/*
 * failed_realloc.c: a realloc that fails leaves its block where it was, still live and
 * still its first caller's. The profiler takes the block out of its live set before the
 * real call (with threads, another thread could be handed the address at once) and must
 * put it back when the call fails.
 *
 * EXPECTED PEAK: 60000 bytes, after the last allocation:
 *   keep_block    malloc(40000)  (grow_fails' realloc to an impossible size failed)
 *   after_fail    malloc(20000)
 * Without the block put back, the total after the failed realloc would be 20000 and the
 * peak 40000, before it. Exits 0; 1 when the realloc did not fail.
 *
 * Before all that, zero_realloc_frees mallocs 10000 bytes and reallocs them to size 0,
 * which glibc answers by freeing the block and returning NULL: a free. Were it missed, the
 * 10000 bytes would stay live and the peak would be 70000. A 16-byte spacer allocated
 * after the block (and freed into glibc's per-thread cache, where it still counts as in
 * use for the heap) keeps the freed chunk from merging into the top of the heap, where the
 * next malloc would start at the same address: a new block there would drop the missed
 * one as stale and hide the miss. The later blocks are all larger, so none reuses it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static void *held[2];
/* Volatile: a constant this large draws a compile-time warning. */
static volatile size_t impossible = SIZE_MAX / 2;

NOINLINE static void zero_realloc_frees(void) {
    char *p = malloc(10000);
    memset(p, 3, 10000);
    void *spacer = malloc(16);
    escape(spacer);
    /* glibc frees the block and returns NULL; were it another answer, free that. */
    void *q = realloc(p, 0);
    if (q) free(q);
    free(spacer);
}

NOINLINE static void keep_block(void) {
    held[0] = malloc(40000);
    memset(held[0], 1, 40000);
}

NOINLINE static int grow_fails(void) { return realloc(held[0], impossible) == NULL; }

NOINLINE static void after_fail(void) {
    held[1] = malloc(20000);
    memset(held[1], 2, 20000);
}

int main(void) {
    zero_realloc_frees();
    keep_block();
    if (!grow_fails()) return 1;
    after_fail();
    free(held[1]);
    free(held[0]);
    return 0;
}
