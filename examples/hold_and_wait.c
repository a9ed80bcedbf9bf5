/*
 * hold_and_wait.c: holds a known amount, says so through a file, then waits for the test to
 * act on it (kill it with SIGKILL, or report on the run while it waits).
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0 -pthread`.
 * Usage: hold_and_wait DIR
 *   1. hold_big: malloc(300000); hold_small: calloc(100, 50) (5000 bytes)
 *   2. writes its pid to DIR/ready (written to DIR/ready.tmp, then renamed)
 *   3. waits (polling, up to 60 s) for DIR/go to exist
 *   4. frees the 5000-byte block, then after_go: malloc(1000) (the first events after `go`)
 *   5. writes DIR/snapped (same way), waits (up to 60 s) for DIR/finish to exist
 *   6. late_alloc: malloc(400000), then returns 0 (nothing freed)
 * Exits 3 when a wait times out, 2 on bad usage. No stdio.
 *
 * EXPECTED PEAKS:
 *   killed (SIGKILL) while waiting in 3: 305000 bytes (hold_big 300000, hold_small 5000)
 *   a report made while it waits in 3: peak so far 305000 (hold_big 300000, hold_small
 *     5000)
 *   the complete run: 701000 bytes at the end (hold_big 300000, after_go 1000,
 *     late_alloc 400000), all still live at exit
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctrl_files.h"

#define NOINLINE __attribute__((noinline))

static void *held[4];

NOINLINE static void hold_big(void) {
    held[0] = malloc(300000);
    memset(held[0], 1, 300000);
}

NOINLINE static void hold_small(void) {
    held[1] = calloc(100, 50);
}

NOINLINE static void after_go(void) {
    held[2] = malloc(1000);
    memset(held[2], 2, 1000);
}

NOINLINE static void late_alloc(void) {
    held[3] = malloc(400000);
    memset(held[3], 3, 400000);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *dir = argv[1];
    hold_big();
    hold_small();

    say_ready(dir);

    wait_for_file(dir, "go");
    free(held[1]);
    held[1] = NULL;
    after_go();
    signal_file(dir, "snapped", "1\n");

    wait_for_file(dir, "finish");
    late_alloc();
    return 0;
}
