/*
 * many_stacks.c: 8192 distinct call paths, each holding a small known block at the peak.
 *
 * Path p (0 <= p < 8192) goes main -> step, then for each of its 13 low bits, lowest first,
 * go_left (bit 0) or go_right (bit 1) -> step, and finally leaf_hold, which mallocs
 * 8 * (1 + p % 32) bytes. Every path is a different sequence of go_left/go_right frames,
 * so there are exactly 8192 distinct stacks of 2 * 13 + 3 frames below the libc start frames.
 * All blocks are freed after the last one is allocated; exits 0, or CODE when run as
 * `many_stacks CODE` (a status only the program itself can give: a test on a full disk
 * tells from it that the program ran to its end); prints nothing.
 *
 * EXPECTED PEAK: 1081344 bytes = sum over p of 8 * (1 + p % 32) = 8 * (8192 + 256 * 496),
 * reached by the last malloc (p = 8191). Inclusive bytes at the peak:
 *   main 1081344, step 1081344, leaf_hold 1081344,
 *   go_left  1081088 (every path but p = 8191, the all-right path, which holds 256),
 *   go_right 1081336 (every path but p = 0, the all-left path, which holds 8).
 * Largest single stacks: 256 bytes (the 256 paths with p % 32 == 31), smallest 8 bytes.
 * The block pointers live in a static array: nothing but the 8192 blocks is allocated.
 *
 * Verified (glibc 2.36, gcc 12.2, x86_64) with examples/tools/alloc_trace.c +
 * peak_from_trace.py (8192 distinct live stacks at the peak, the sums above) and
 * valgrind --trace-malloc=yes (8192 mallocs, then 8192 frees, nothing else; atoi allocates
 * nothing).
 */
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))
#define DEPTH 13
#define PATHS (1u << DEPTH)

/* An instruction after each call keeps it out of tail position, so -O2 keeps every frame. */
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

static void *blocks[PATHS];

NOINLINE static void leaf_hold(unsigned path) {
    size_t n = 8 * (1 + path % 32);
    blocks[path] = malloc(n);
    memset(blocks[path], 1, n);
}

NOINLINE static void step(int depth, unsigned path, unsigned bits);

NOINLINE static void go_left(int depth, unsigned path, unsigned bits) {
    step(depth - 1, path, bits >> 1);
    KEEP_FRAME();
}

NOINLINE static void go_right(int depth, unsigned path, unsigned bits) {
    step(depth - 1, path, bits >> 1);
    KEEP_FRAME();
}

NOINLINE static void step(int depth, unsigned path, unsigned bits) {
    if (depth == 0)
        leaf_hold(path);
    else if (bits & 1)
        go_right(depth, path, bits);
    else
        go_left(depth, path, bits);
    KEEP_FRAME();
}

int main(int argc, char **argv) {
    for (unsigned p = 0; p < PATHS; p++) step(DEPTH, p, p);
    for (unsigned p = 0; p < PATHS; p++) free(blocks[p]);
    return argc > 1 ? atoi(argv[1]) : 0;
}
