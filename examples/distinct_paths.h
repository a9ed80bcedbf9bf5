/*
 * distinct_paths.h: step(depth, bits, p) reaches leaf_hold(p) through `depth` calls, each
 * go_left or go_right as the bits of `bits` say (lowest first), so every value of `bits`
 * below 2^depth is a call path of its own. The including file defines leaf_hold (what the
 * leaf allocates) after including this.
 *
 * Shared by examples that need many distinct call paths (log_gap.c, live_file_removed.c);
 * many_stacks.c documents the shape and its exact bytes.
 */
#ifndef DISTINCT_PATHS_H
#define DISTINCT_PATHS_H

#ifndef NOINLINE
#define NOINLINE __attribute__((noinline))
#endif

/* An instruction after each call keeps it out of tail position, so -O2 keeps every frame. */
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

NOINLINE static void leaf_hold(unsigned p);
NOINLINE static void step(int depth, unsigned bits, unsigned p);

NOINLINE static void go_left(int depth, unsigned bits, unsigned p) {
    step(depth, bits, p);
    KEEP_FRAME();
}

NOINLINE static void go_right(int depth, unsigned bits, unsigned p) {
    step(depth, bits, p);
    KEEP_FRAME();
}

NOINLINE static void step(int depth, unsigned bits, unsigned p) {
    if (depth == 0) {
        leaf_hold(p);
    } else if (bits & 1) {
        go_right(depth - 1, bits >> 1, p);
    } else {
        go_left(depth - 1, bits >> 1, p);
    }
    KEEP_FRAME();
}

#endif
