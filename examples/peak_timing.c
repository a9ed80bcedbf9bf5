/*
 * peak_timing.c: a peak reached at a known moment, for the peak time's two clocks in
 * tests/e2e_reports.rs (early in a run peakprof times peaks with the precise clock, later
 * with the coarse one; both must land on the moment the peak happened).
 *
 * Usage: peak_timing MS. Built with `gcc -g -O0 -pthread`. Writes nothing.
 *
 * What happens, in order (tracked total after each step):
 *   (sleeps MS milliseconds)
 *   build_peak   256 x malloc(4000), one at a time                 1024000 <- the peak
 *   (sleeps 20 ms)
 *   drop_peak    frees all 256                                      0
 *
 * EXPECTED PEAK: 1024000 bytes, reached at least MS ms after the start (the total rises
 * with every block, so each malloc sets a new peak: the last one is the peak's moment,
 * a few microseconds after the sleep ends).
 *
 * Nothing else is live: glibc makes no malloc call of its own before main, and neither
 * nanosleep nor strtol allocates.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <time.h>

#define BLOCKS 256
#define BLOCK_SIZE 4000

static void *blocks[BLOCKS];

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0) {
    }
}

__attribute__((noinline)) static void build_peak(void) {
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(BLOCK_SIZE);
        if (!blocks[i]) {
            exit(2);
        }
        ((volatile char *)blocks[i])[0] = 1;
    }
}

__attribute__((noinline)) static void drop_peak(void) {
    for (int i = 0; i < BLOCKS; i++) {
        free(blocks[i]);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        return 64;
    }
    sleep_ms(strtol(argv[1], NULL, 10));
    build_peak();
    sleep_ms(20);
    drop_peak();
    return 0;
}
