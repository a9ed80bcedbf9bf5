/*
 * peak_timing.c: a peak reached at a known moment, for the peak time's two clocks in
 * tests/e2e_reports.rs (early in a run peakprof times peaks with the precise clock, later
 * with the coarse one; both must land on the moment the peak happened).
 *
 * Usage: peak_timing MS [fork]. Built with `gcc -g -O0 -pthread`. Writes nothing.
 *
 * With `fork`, the process first sleeps 700 ms, allocates and frees one 100-byte block
 * (an event late in its run) and forks; the child does what follows and the parent waits
 * for it. The child's times are its own: they count from its fork, not from the start of
 * the parent (whose profile then holds only the 100-byte block).
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
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
    if (argc != 2 && !(argc == 3 && strcmp(argv[2], "fork") == 0)) {
        return 64;
    }
    if (argc == 3) {
        sleep_ms(700);
        free(malloc(100));
        pid_t child = fork();
        if (child < 0) {
            return 3;
        }
        if (child > 0) {
            int status = 0;
            if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) {
                return 4;
            }
            return WEXITSTATUS(status);
        }
    }
    sleep_ms(strtol(argv[1], NULL, 10));
    build_peak();
    sleep_ms(20);
    drop_peak();
    return 0;
}
