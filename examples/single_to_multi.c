/*
 * single_to_multi.c: blocks cross the moment the process gets its second thread.
 *
 * While a process has one thread, peakprof skips its lock, records a free after the real
 * free, and lets new blocks wait in a short queue before they enter its live map. This
 * program hands blocks across the switch to two threads in both directions, so a block
 * left in the queue, or a lock state left over from single-threaded days, would show up as
 * a wrong peak or a hang.
 *
 * Built by tests/e2e_peak.rs with `gcc -g -O0 -pthread`. Writes nothing; exits 0.
 *
 * While single-threaded (main):
 *   st_given    malloc(500) x 4, handed to the worker, which frees them
 *   st_keep     malloc(2000), never freed
 *   st_short    malloc(100) then free, 8 times
 * The worker (on a stack main supplies, so glibc frees the DTV it callocs for the thread
 * when the thread is joined):
 *   frees the 4 st_given blocks (made by the other thread, most of them still queued)
 *   mt_alloc    malloc(3000), handed back to main, kept
 *   mt_short    malloc(50) then free, 20 times
 * After the join (glibc still counts the process as multi-threaded):
 *   after_join  malloc(1000), kept
 *
 * EXPECTED PEAK: 6000 bytes, at the end: st_keep 2000 + mt_alloc 3000 + after_join 1000
 * (main: 3000 inclusive, worker: 3000). Before it the total stays below: at most 4100 while
 * single-threaded, and 5050 plus the worker's DTV (16 * (TLS modules + 16) bytes, a few
 * hundred) while the worker runs.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static void *given[4];
static void *kept[3];
static char worker_stack[1 << 16] __attribute__((aligned(4096)));

NOINLINE static void *st_given(void) { return malloc(500); }
NOINLINE static void *st_keep(void) { return malloc(2000); }
NOINLINE static void st_short(void)
{
    void *p = malloc(100);
    escape(p);
    free(p);
}
NOINLINE static void *mt_alloc(void) { return malloc(3000); }
NOINLINE static void mt_short(void)
{
    void *p = malloc(50);
    escape(p);
    free(p);
}
NOINLINE static void *after_join(void) { return malloc(1000); }

NOINLINE static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++)
        free(given[i]);
    void *p = mt_alloc();
    for (int i = 0; i < 20; i++)
        mt_short();
    return p;
}

int main(void)
{
    for (int i = 0; i < 4; i++)
        given[i] = st_given();
    kept[0] = st_keep();
    for (int i = 0; i < 8; i++)
        st_short();

    pthread_attr_t attr;
    pthread_t t;
    void *from_worker = NULL;
    if (pthread_attr_init(&attr) != 0 ||
        pthread_attr_setstack(&attr, worker_stack, sizeof worker_stack) != 0 ||
        pthread_create(&t, &attr, worker, NULL) != 0 || pthread_join(t, &from_worker) != 0)
        return 1;
    kept[1] = from_worker;
    kept[2] = after_join();
    for (int i = 0; i < 3; i++)
        escape(kept[i]);
    return 0;
}
