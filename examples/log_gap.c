/*
 * log_gap.c: new call paths while the output filesystem is full, then more once it has
 * room again, then SIGKILL: the profile is recovered from the live files.
 *
 * Exists because a log record that did not fit was left half-written, and the records
 * appended after it (once there was room again) then read as garbage: the whole recovery
 * failed ("profile is truncated"). The preload now cuts a record it could not write whole.
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0 -pthread`. Usage: log_gap FILLER
 *   1. first_paths: 3000 distinct call paths (as many_stacks.c, 12 levels), each leaf_hold
 *      mallocs 8 bytes. The test leaves too little room for all their log records.
 *   2. unlinks FILLER, a file the test wrote to fill the filesystem: room again
 *   3. later_paths: 1000 more distinct call paths, 8 bytes each (4000 in all: the live
 *      file, made for 4096, never has to grow)
 *   4. raise(SIGKILL)
 * Nothing is freed. No stdio. Exits 2 on bad usage.
 *
 * EXPECTED PEAK (recovered): 32000 bytes, 4000 blocks of 8, all live when killed:
 *   first_paths 24000, later_paths 8000 (every one of its call paths named: their log
 *   records were written whole after the gap); some of first_paths' call paths have no
 *   frames (their records did not fit).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define DEPTH 12
#define FIRST 3000u
#define ALL 4000u

#include "distinct_paths.h"

static void *blocks[ALL];

NOINLINE static void leaf_hold(unsigned p) {
    blocks[p] = malloc(8);
    KEEP_FRAME();
}

NOINLINE static void first_paths(void) {
    for (unsigned p = 0; p < FIRST; p++) step(DEPTH, p, p);
    KEEP_FRAME();
}

NOINLINE static void later_paths(void) {
    for (unsigned p = FIRST; p < ALL; p++) step(DEPTH, p, p);
    KEEP_FRAME();
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    first_paths();
    unlink(argv[1]);
    later_paths();
    raise(SIGKILL);
    return 1;
}
