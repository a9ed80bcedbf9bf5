/*
 * threads_exit.c: the process ends while other threads are still running.
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0 -pthread`. Usage: threads_exit MODE
 *   thread_exit   a worker thread calls exit(7) while the others run     -> exit status 7
 *   thread__exit  a worker thread calls _exit(9) while the others run    -> exit status 9
 *   main_return   main returns 5 while all the workers still run          -> exit status 5
 *   thread_segv   a worker thread writes through a null pointer while the others run
 *                 (a real SIGSEGV; core dumps disabled)               -> killed by SIGSEGV
 * Writes nothing (no stdio at all).
 *
 * Threads: two "spinners" (busy loops, no allocation), one "sleeper" (blocked forever in
 * pthread_cond_wait), one "churner" (malloc(16)/free in a loop in `churn`, racing with the
 * exit), and the "exiter" (in the thread_* modes it ends the process; in main_return it spins
 * like the others). The process ends only after every thread has taken its block.
 *
 * EXPECTED PEAK: program blocks 350000 bytes, all live at the end:
 *   main_hold     malloc(300000)                 300000
 *   worker_hold   malloc(10000) in each of the two spinners and the sleeper   30000
 *   exiter_hold   malloc(20000)                  20000
 * plus the DTV that pthread_create callocs for each of the 5 threads (16 * (number of TLS
 * modules + 16) bytes each; all 5 threads are alive at the end, so all 5 DTVs are live),
 * plus at most one 16-byte block of `churn` (it may or may not be live at the peak).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static int ready;       /* threads that hold their block (atomic) */
static int churned;     /* the churner went round its loop at least once (atomic) */
static volatile int never;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static void *held[8];

NOINLINE static void main_hold(void) {
    held[0] = malloc(300000);
    memset(held[0], 1, 300000);
}

NOINLINE static void worker_hold(int i) {
    held[1 + i] = malloc(10000);
    memset(held[1 + i], 2, 10000);
}

NOINLINE static void exiter_hold(void) {
    held[5] = malloc(20000);
    memset(held[5], 3, 20000);
}

NOINLINE static void churn(void) {
    char *p = malloc(16);
    memset(p, 4, 16);
    escape(p);
    free(p);
}

static void spin_forever(void) {
    for (;;) {
        if (never) break;
        __asm__ volatile("pause");
    }
}

static void *spinner(void *arg) {
    worker_hold((int)(long)arg);
    __atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
    spin_forever();
    return NULL;
}

static void *sleeper(void *arg) {
    worker_hold((int)(long)arg);
    pthread_mutex_lock(&lock);
    __atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
    for (;;) pthread_cond_wait(&cond, &lock);
    return NULL;
}

static void *churner(void *arg) {
    (void)arg;
    for (;;) {
        churn();
        __atomic_store_n(&churned, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static int mode; /* 0 thread_exit, 1 thread__exit, 2 main_return, 3 thread_segv */
static int *volatile nowhere;

static void wait_for(int *what, int n) {
    while (__atomic_load_n(what, __ATOMIC_SEQ_CST) < n) usleep(1000);
}

static void *exiter(void *arg) {
    (void)arg;
    wait_for(&ready, 3);
    wait_for(&churned, 1);
    exiter_hold();
    __atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
    if (mode == 0) exit(7);
    if (mode == 1) _exit(9);
    if (mode == 3) *nowhere = 1;
    spin_forever();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (strcmp(argv[1], "thread_exit") == 0) mode = 0;
    else if (strcmp(argv[1], "thread__exit") == 0) mode = 1;
    else if (strcmp(argv[1], "main_return") == 0) mode = 2;
    else if (strcmp(argv[1], "thread_segv") == 0) mode = 3;
    else return 2;
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    main_hold();
    pthread_t t[5];
    pthread_create(&t[0], NULL, spinner, (void *)0L);
    pthread_create(&t[1], NULL, spinner, (void *)1L);
    pthread_create(&t[2], NULL, sleeper, (void *)2L);
    pthread_create(&t[3], NULL, churner, NULL);
    pthread_create(&t[4], NULL, exiter, NULL);
    if (mode != 2) {
        pthread_join(t[4], NULL); /* never returns: the exiter ends the process */
        return 3;
    }
    wait_for(&ready, 4);
    return 5;
}
