/* churn_mt: the churn workload in 4 threads at once.
 *
 * usage: churn_mt [N]     N = TOTAL number of malloc/free pairs (default 20,000,000),
 *                         split evenly: each of the 4 threads does N/4.
 *
 * The total work equals `churn N`, so on a machine with >= 4 free cores the unprofiled run
 * is ~4x faster than churn, and on the 2-core bench machine ~2x. What it measures beyond
 * churn is contention: every thread allocates and frees concurrently, so any global lock
 * or shared table in the profiler shows up here. Each thread has its own ring of live
 * blocks (frees happen on the allocating thread, the common case in real programs).
 *
 * Same stack shapes as churn.c (352 distinct stacks per thread, 21-41 frames); the thread
 * index is folded into the hash so the threads do not run in lockstep on identical data.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4
#define RING 1000

struct worker {
    pthread_t tid;
    unsigned index;
    uint64_t n;
    uint64_t checksum;
    void *ring[RING];
};

static inline uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Keeps calls from becoming tail calls / loops, so every frame stays on the stack. */
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

__attribute__((noinline)) static void leaf(struct worker *w, uint64_t h)
{
    /* 16..512 bytes in steps of 8 (63 sizes). Not every byte size: heaptrack 1.4.0's
     * interpreter (Debian bookworm) grows without bound on 497 sizes x 700 stacks
     * (KDE bug 477018, tsl::robin_set hashing); see benches/README.md. */
    size_t size = 16 + 8 * ((h >> 40) % 63);
    unsigned slot = (unsigned)((h >> 16) % RING);
    free(w->ring[slot]);
    char *p = malloc(size);
    if (!p) {
        fprintf(stderr, "churn_mt: out of memory\n");
        exit(2);
    }
    p[0] = (char)h;
    p[size - 1] = (char)(h >> 8);
    w->ring[slot] = p;
    w->checksum += (uintptr_t)p & 0xfff;
}

static void rec_a(struct worker *w, uint64_t h, unsigned path, int depth);
static void rec_b(struct worker *w, uint64_t h, unsigned path, int depth);

__attribute__((noinline)) static void rec_a(struct worker *w, uint64_t h, unsigned path, int depth)
{
    if (depth == 0)
        leaf(w, h);
    else if ((path >> (depth % 5)) & 1)
        rec_b(w, h, path, depth - 1);
    else
        rec_a(w, h, path, depth - 1);
    KEEP_FRAME();
}

__attribute__((noinline)) static void rec_b(struct worker *w, uint64_t h, unsigned path, int depth)
{
    if (depth == 0)
        leaf(w, h ^ 1);
    else if ((path >> (depth % 5)) & 1)
        rec_a(w, h, path, depth - 1);
    else
        rec_b(w, h, path, depth - 1);
    KEEP_FRAME();
}

__attribute__((noinline)) static void one(struct worker *w, uint64_t i)
{
    uint64_t h = mix(i ^ ((uint64_t)w->index << 56));
    unsigned path = (unsigned)(h & 31);
    int depth = 18 + 2 * (int)((h >> 5) % 11);
    rec_a(w, h, path, depth);
    KEEP_FRAME();
}

static void *work(void *arg)
{
    struct worker *w = arg;
    for (uint64_t i = 0; i < w->n; i++)
        one(w, i);
    for (unsigned i = 0; i < RING; i++)
        free(w->ring[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000000ull;
    static struct worker workers[THREADS];
    for (unsigned t = 0; t < THREADS; t++) {
        workers[t].index = t;
        /* The first thread takes the remainder so the total is exactly N. */
        workers[t].n = n / THREADS + (t == 0 ? n % THREADS : 0);
        int err = pthread_create(&workers[t].tid, NULL, work, &workers[t]);
        if (err) {
            fprintf(stderr, "churn_mt: pthread_create failed (%d)\n", err);
            return 2;
        }
    }
    uint64_t checksum = 0;
    for (unsigned t = 0; t < THREADS; t++) {
        pthread_join(workers[t].tid, NULL);
        checksum += workers[t].checksum;
    }
    printf("churn_mt: %llu pairs in %d threads, checksum %llu\n", (unsigned long long)n,
           THREADS, (unsigned long long)checksum);
    return 0;
}
