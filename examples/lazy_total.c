/*
 * lazy_total.c: threads allocate far below the peak, then all at once up to a new one.
 *
 * In sampled mode with threads, peakprof counts the total lazily while it is far below the
 * peak (shards hold a few KiB of credit each, so most events do not touch the shared
 * total) and exactly near it. This program crosses between the two in both directions
 * with four threads running at once, so a peak missed or overstated in the switch would
 * show as a peak different from exact mode's.
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0 -pthread`. Writes nothing; exits 0.
 *
 * main, single-threaded: early  malloc(400) x 2500 = 1,000,000 bytes, all freed: a peak
 *                        that leaves the total far below it.
 * each of 4 workers:     churn  64 live blocks of 16..512 bytes, 40,000 malloc/free pairs,
 *                               then the 64 freed (all four: at most 131,072 bytes)
 *                        wait for all four
 *                        hold   malloc(100) x 4000 = 400,000 bytes
 *                        wait for all four: THE PEAK, 4 x 400,000 = 1,600,000 bytes of
 *                               `hold` plus what the threads themselves hold (their DTVs)
 *                        the hold blocks freed, churn again, then freed.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define WORKERS 4
#define EARLY_N 2500
#define EARLY_SIZE 400
#define RING 64
#define CHURN_PAIRS 40000
#define HOLD_N 4000
#define HOLD_SIZE 100

static pthread_barrier_t all_here;
static void *early_blocks[EARLY_N];
static void *held[WORKERS][HOLD_N];
static void *ring[WORKERS][RING];

/* splitmix64: the same sizes and slots on every run. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

__attribute__((noinline)) static void early(void)
{
    for (int i = 0; i < EARLY_N; i++)
        early_blocks[i] = malloc(EARLY_SIZE);
    for (int i = 0; i < EARLY_N; i++)
        free(early_blocks[i]);
}

__attribute__((noinline)) static void churn(int w, uint64_t seed)
{
    for (uint64_t i = 0; i < CHURN_PAIRS; i++) {
        uint64_t h = mix(seed + i);
        unsigned slot = (unsigned)(h % RING);
        free(ring[w][slot]);
        ring[w][slot] = malloc(16 + 8 * ((h >> 20) % 63));
    }
    for (int i = 0; i < RING; i++) {
        free(ring[w][i]);
        ring[w][i] = NULL;
    }
}

__attribute__((noinline)) static void hold(int w)
{
    for (int i = 0; i < HOLD_N; i++)
        held[w][i] = malloc(HOLD_SIZE);
}

static void *worker(void *arg)
{
    int w = (int)(intptr_t)arg;
    churn(w, (uint64_t)w << 32);
    pthread_barrier_wait(&all_here);
    hold(w);
    pthread_barrier_wait(&all_here);
    for (int i = 0; i < HOLD_N; i++)
        free(held[w][i]);
    churn(w, ((uint64_t)w << 32) + CHURN_PAIRS);
    return NULL;
}

int main(void)
{
    early();
    pthread_barrier_init(&all_here, NULL, WORKERS);
    pthread_t t[WORKERS];
    for (int w = 0; w < WORKERS; w++)
        if (pthread_create(&t[w], NULL, worker, (void *)(intptr_t)w) != 0)
            return 2;
    for (int w = 0; w < WORKERS; w++)
        pthread_join(t[w], NULL);
    pthread_barrier_destroy(&all_here);
    return 0;
}
