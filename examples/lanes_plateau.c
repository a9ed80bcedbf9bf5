/*
 * lanes_plateau.c: four threads churn small blocks far below an earlier peak (where exact
 * mode's per-thread lanes record without the profiler's lock), free each other's blocks,
 * then climb together to a higher peak.
 *
 * Built by tests/e2e_peak.rs with `gcc -g -O2 -pthread`. Usage: lanes_plateau [ROUNDS]
 * (default 100000 churn rounds per thread). Prints "lanes_plateau: ok\n" and exits 0.
 *
 * Phases, each thread, with a barrier between phases:
 *   1. first_peak    malloc(500) x 1000, all live at once (4 threads: 2,000,000 bytes);
 *                    then all freed.
 *   2. churn_block   a ring of 200 blocks of 16..512 bytes (from a per-thread LCG); each
 *                    round frees one and makes a new one. At most 4 x 200 x 512 = 409,600
 *                    bytes live: the plateau, far below the first peak.
 *   3. free_others   each thread frees the ring the previous thread left (a block freed by
 *                    another thread than the one that made it, after it sat in a lane).
 *   4. second_peak   malloc(500) x 1100, all live at once (4 threads: 2,200,000 bytes):
 *                    the peak. Then all freed.
 *
 * EXPECTED PEAK: second_peak 2,200,000 bytes exactly; first_peak, churn_block and
 * free_others hold nothing at it. Besides, only the DTV pthread_create callocs for each of
 * the 4 threads (16 * (number of TLS modules + 16) bytes each). Nothing leaks but those.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define THREADS 4
#define RING 200
#define FIRST 1000
#define SECOND 1100
#define BLOCK 500

static pthread_barrier_t barrier;
static unsigned long rounds = 100000;
static void *rings[THREADS][RING];
static void *firsts[THREADS][FIRST];
static void *seconds[THREADS][SECOND];

static void fail(const char *what) {
    if (write(1, what, strlen(what)) < 0) _exit(98);
    _exit(1);
}

/* Different bytes written, so that gcc -O2 does not fold the two into one function. */
static NOINLINE void *first_peak(void) {
    char *p = malloc(BLOCK);
    if (!p) fail("lanes_plateau: FAILED malloc\n");
    p[0] = 1;
    return p;
}

static NOINLINE void *second_peak(void) {
    char *p = malloc(BLOCK);
    if (!p) fail("lanes_plateau: FAILED malloc\n");
    p[0] = 2;
    p[BLOCK - 1] = 2;
    return p;
}

static NOINLINE void *churn_block(uint64_t *x) {
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    size_t size = 16 + 8 * ((*x >> 33) % 63);
    void *p = malloc(size);
    if (!p) fail("lanes_plateau: FAILED malloc\n");
    memset(p, 1, size);
    return p;
}

static NOINLINE void free_others(int t) {
    int prev = (t + THREADS - 1) % THREADS;
    for (int i = 0; i < RING; i++) {
        free(rings[prev][i]);
        rings[prev][i] = 0;
    }
}

static void *work(void *arg) {
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < FIRST; i++) firsts[t][i] = first_peak();
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < FIRST; i++) free(firsts[t][i]);
    pthread_barrier_wait(&barrier);
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);
    for (int i = 0; i < RING; i++) rings[t][i] = churn_block(&x);
    for (unsigned long r = 0; r < rounds; r++) {
        unsigned slot = (unsigned)((x >> 20) % RING);
        free(rings[t][slot]);
        rings[t][slot] = churn_block(&x);
    }
    pthread_barrier_wait(&barrier);
    free_others(t);
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < SECOND; i++) seconds[t][i] = second_peak();
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < SECOND; i++) free(seconds[t][i]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1) rounds = strtoul(argv[1], 0, 10);
    if (pthread_barrier_init(&barrier, 0, THREADS)) fail("lanes_plateau: FAILED barrier\n");
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        if (pthread_create(&th[t], 0, work, (void *)(intptr_t)t)) fail("lanes_plateau: FAILED create\n");
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], 0);
    if (write(1, "lanes_plateau: ok\n", 18) != 18) return 98;
    return 0;
}
