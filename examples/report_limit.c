/*
 * report_limit.c: a known sequence of allocations, for --limit and --fail-above in
 * tests/e2e_reports.rs.
 *
 * Usage: report_limit [ROUNDS [EXIT_CODE]]   (defaults: 10 rounds, exit code 0)
 * Built with `gcc -g -O0 -pthread`. Writes nothing (no stdio) and exits with EXIT_CODE
 * after freeing everything.
 *
 * Each round calls grow_a, which does malloc(100000), then grow_b, which does
 * malloc(50000); every block is held until the end. The tracked total therefore runs
 *   100000, 150000, 250000, 300000, 400000, 450000, 550000, 600000, ...
 * i.e. 150000*(r-1) + 100000 after round r's grow_a and 150000*r after its grow_b.
 *
 * EXPECTED PEAK: 150000 * ROUNDS (1500000 with the default 10 rounds), reached by the last
 * grow_b; live then: grow_a 100000 * ROUNDS, grow_b 50000 * ROUNDS.
 *
 * With a limit of 450000 bytes the total first *exceeds* the limit at the 7th allocation
 * (round 4's grow_a: 450000 is reached by round 3's grow_b but is not above the limit).
 * Live at that moment: 550000 bytes = grow_a 400000 (4 blocks) + grow_b 150000 (3 blocks).
 *
 * Why nothing else is live: a C program's glibc makes no malloc call of its own before
 * main, atoi does not allocate, and nothing is printed.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))
#define MAX_ROUNDS 1000

static void *held[2 * MAX_ROUNDS];

NOINLINE static void *grow_a(void) {
    void *p = malloc(100000);
    memset(p, 1, 100000);
    return p;
}

NOINLINE static void *grow_b(void) {
    void *p = malloc(50000);
    memset(p, 2, 50000);
    return p;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 10;
    int code = argc > 2 ? atoi(argv[2]) : 0;
    if (rounds < 0 || rounds > MAX_ROUNDS) return 99;
    int n = 0;
    for (int r = 0; r < rounds; r++) {
        held[n++] = grow_a();
        held[n++] = grow_b();
    }
    for (int i = 0; i < n; i++) free(held[i]);
    return code;
}
