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
 *
 * `lazy_total fork`: the workers churn and keep their 64 blocks, then park; main forks
 * while they hold credit. The child (one thread) allocates `in_child` 100,000 bytes, frees
 * it and exits: its peak is what it inherited (the same in every run: the rings end the
 * same way) plus 100,000, and must be exact mode's to the byte.
 *
 * `lazy_total fork_frees`: main keeps 50 blocks of 100 bytes, runs one thread to its end,
 * then forks. The child frees the 50, then `child_holds` 200 blocks of 1,000 bytes and
 * frees them (its total is now 200,000 below its peak: lazy), then 250 blocks, which take
 * it past that peak again: the total must turn exact on the way. All of this before the
 * child has files of its own (its blocks are too small to be sampled at the test's rate).
 * Its peak is what it inherited - 5,000 + 250,000.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

static void free_ring(int w)
{
    for (int i = 0; i < RING; i++) {
        free(ring[w][i]);
        ring[w][i] = NULL;
    }
}

/* Leaves the ring's 64 blocks allocated. */
__attribute__((noinline)) static void churn_keep(int w, uint64_t seed)
{
    for (uint64_t i = 0; i < CHURN_PAIRS; i++) {
        uint64_t h = mix(seed + i);
        unsigned slot = (unsigned)(h % RING);
        free(ring[w][slot]);
        ring[w][slot] = malloc(16 + 8 * ((h >> 20) % 63));
    }
}

__attribute__((noinline)) static void churn(int w, uint64_t seed)
{
    churn_keep(w, seed);
    free_ring(w);
}

__attribute__((noinline)) static void in_child(void)
{
    void *p = malloc(100000);
    ((volatile char *)p)[0] = 1;
    free(p);
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

static void *kept[50];
static void *child_blocks[250];

__attribute__((noinline)) static void child_holds(int n)
{
    for (int i = 0; i < n; i++)
        child_blocks[i] = malloc(1000);
    for (int i = 0; i < n; i++)
        free(child_blocks[i]);
}

static void *short_worker(void *arg)
{
    churn((int)(intptr_t)arg, 7);
    return NULL;
}

/* fork_frees mode (see the top of the file). */
static int fork_frees(void)
{
    for (int i = 0; i < 50; i++)
        kept[i] = malloc(100);
    pthread_t t;
    if (pthread_create(&t, NULL, short_worker, (void *)(intptr_t)0) != 0)
        return 2;
    pthread_join(t, NULL);
    pid_t child = fork();
    if (child < 0)
        return 3;
    if (child == 0) {
        for (int i = 0; i < 50; i++)
            free(kept[i]);
        child_holds(200);
        child_holds(250);
        exit(0);
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 4;
    for (int i = 0; i < 50; i++)
        free(kept[i]);
    return 0;
}

/* Fork mode: churn, keep the ring, park while main forks, then free. */
static void *parked_worker(void *arg)
{
    int w = (int)(intptr_t)arg;
    churn_keep(w, (uint64_t)w << 32);
    pthread_barrier_wait(&all_here); /* parked: main forks now */
    pthread_barrier_wait(&all_here); /* the child is done */
    free_ring(w);
    return NULL;
}

int main(int argc, char **argv)
{
    int fork_mode = argc > 1 && strcmp(argv[1], "fork") == 0;
    early();
    if (argc > 1 && strcmp(argv[1], "fork_frees") == 0)
        return fork_frees();
    pthread_barrier_init(&all_here, NULL, WORKERS + fork_mode);
    pthread_t t[WORKERS];
    for (int w = 0; w < WORKERS; w++)
        if (pthread_create(&t[w], NULL, fork_mode ? parked_worker : worker, (void *)(intptr_t)w) != 0)
            return 2;
    if (fork_mode) {
        pthread_barrier_wait(&all_here);
        pid_t child = fork();
        if (child < 0)
            return 3;
        if (child == 0) {
            in_child();
            exit(0);
        }
        int status = 0;
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 4;
        pthread_barrier_wait(&all_here);
    }
    for (int w = 0; w < WORKERS; w++)
        pthread_join(t[w], NULL);
    pthread_barrier_destroy(&all_here);
    return 0;
}
