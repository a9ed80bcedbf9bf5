/*
 * lanes_many_threads.c: more threads at once than exact mode has lanes (64), then waves of
 * short-lived threads that take over the lanes of the ended ones, leaving their blocks for
 * the main thread to free.
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O2 -pthread`. Usage: lanes_many_threads.
 * Prints "lanes_many_threads: ok\n" and exits 0.
 *
 * Phase 1: 80 threads at once. Each churns 2000 small blocks in `churn_small` (each freed
 *   at once), makes 100 blocks of 1000 bytes in `hold_block`, then waits at a barrier for
 *   all 80 to hold theirs (the peak: 80 x 100 x 1000 = 8,000,000 bytes in hold_block;
 *   churning ends before holding starts, so no small block is live with them), then frees
 *   its blocks. Joined.
 * Phase 2: 3 waves of 30 threads, one wave after the other (created, joined). Each makes
 *   50 blocks of 100 bytes in `wave_block` and leaves them live; the main thread frees all
 *   4500 in `free_waves` at the end (blocks in the lanes of threads that ended).
 *
 * EXPECTED PEAK: hold_block 8,000,000 bytes exactly; churn_small, wave_block and
 * free_waves hold nothing at it. Besides, only the DTVs pthread_create callocs for the 80
 * threads alive then (16 * (TLS modules + 16) bytes each). Nothing of the program's own
 * is live at the end (glibc keeps the DTVs of threads whose stacks it caches).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define MANY 80
#define HOLD 100
#define HOLD_SIZE 1000
#define CHURN 2000
#define WAVES 3
#define WAVE 30
#define WAVE_BLOCKS 50

static pthread_barrier_t barrier;
static void *waves[WAVES][WAVE][WAVE_BLOCKS];

static void fail(const char *what) {
    if (write(1, what, strlen(what)) < 0) _exit(98);
    _exit(1);
}

static NOINLINE void *hold_block(void) {
    char *p = malloc(HOLD_SIZE);
    if (!p) fail("lanes_many_threads: FAILED malloc\n");
    p[0] = 1;
    return p;
}

static NOINLINE void churn_small(unsigned i) {
    char *p = malloc(16 + i % 200);
    if (!p) fail("lanes_many_threads: FAILED malloc\n");
    p[0] = (char)i;
    __asm__ volatile("" : : "r"(p) : "memory");
    free(p);
}

static NOINLINE void *wave_block(void) {
    char *p = malloc(100);
    if (!p) fail("lanes_many_threads: FAILED malloc\n");
    p[0] = 3;
    return p;
}

static NOINLINE void free_waves(void) {
    for (int w = 0; w < WAVES; w++)
        for (int t = 0; t < WAVE; t++)
            for (int b = 0; b < WAVE_BLOCKS; b++) free(waves[w][t][b]);
}

static void *many(void *arg) {
    (void)arg;
    void *held[HOLD];
    for (unsigned i = 0; i < CHURN; i++) churn_small(i);
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < HOLD; i++) held[i] = hold_block();
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < HOLD; i++) free(held[i]);
    return 0;
}

static void *wave(void *arg) {
    void **mine = arg;
    for (int b = 0; b < WAVE_BLOCKS; b++) mine[b] = wave_block();
    return 0;
}

int main(void) {
    if (pthread_barrier_init(&barrier, 0, MANY)) fail("lanes_many_threads: FAILED barrier\n");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t th[MANY];
    for (int t = 0; t < MANY; t++)
        if (pthread_create(&th[t], &attr, many, 0)) fail("lanes_many_threads: FAILED create\n");
    for (int t = 0; t < MANY; t++) pthread_join(th[t], 0);
    for (int w = 0; w < WAVES; w++) {
        pthread_t wt[WAVE];
        for (int t = 0; t < WAVE; t++)
            if (pthread_create(&wt[t], &attr, wave, waves[w][t]))
                fail("lanes_many_threads: FAILED create\n");
        for (int t = 0; t < WAVE; t++) pthread_join(wt[t], 0);
    }
    free_waves();
    if (write(1, "lanes_many_threads: ok\n", 23) != 23) return 98;
    return 0;
}
