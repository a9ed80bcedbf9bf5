/*
 * small_stacks.c: threads created with the smallest stack glibc allows (PTHREAD_STACK_MIN,
 * 16 KiB, part of which glibc gives to static TLS), each allocating through a few calls.
 * The profiler runs on those stacks inside every malloc: it must fit.
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0 -pthread`.
 *
 * EXPECTED PEAK: 8 threads x 3000 bytes = 24000 bytes, all in small_stack_alloc (called
 * from thread_body), live together once every thread has allocated (a barrier holds them).
 * Exits 0 when every thread could be created with that stack size and allocate.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 8
#define NOINLINE __attribute__((noinline))

static pthread_barrier_t all_allocated;

NOINLINE static void *small_stack_alloc(int depth) {
    if (depth > 0) {
        void *p = small_stack_alloc(depth - 1);
        __asm__ volatile("" ::: "memory");
        return p;
    }
    char *p = malloc(3000);
    if (p) memset(p, 1, 3000);
    return p;
}

static void *thread_body(void *arg) {
    (void)arg;
    void *p = small_stack_alloc(4);
    pthread_barrier_wait(&all_allocated);
    free(p);
    return p ? (void *)1 : NULL;
}

int main(void) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN) != 0) return 2;
    pthread_barrier_init(&all_allocated, NULL, THREADS);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], &attr, thread_body, NULL) != 0) return 3;
    int ok = 1;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        ok &= r != NULL;
    }
    return ok ? 0 : 4;
}
