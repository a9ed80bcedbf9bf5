/*
 * stress_mt.c: eight threads hammer every hooked entry point at once, handing blocks to each
 * other; at the end everything is freed except a known amount.
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O2 -pthread`. Usage: stress_mt [ITERATIONS]
 * (default 200 per thread). Prints exactly "stress_mt: ok\n" with write(2) and exits 0; on an
 * internal inconsistency (a block handed over with a wrong tag, a failed call) it prints
 * "stress_mt: FAILED ...\n" and exits 1.
 *
 * Each iteration of each thread (all sizes from a per-thread LCG, so the sequence of calls of
 * each thread is the same in every run; only the interleaving differs):
 *   - allocates one block with malloc, calloc, posix_memalign(64), aligned_alloc(128),
 *     memalign(256), valloc, pvalloc or reallocarray(NULL, ..) (in turn), tags it and pushes
 *     it on a queue shared by all threads (mutex + condition variable);
 *   - pops a block (usually another thread's), checks its tag, reallocs it (realloc of a
 *     block from another thread, and of aligned blocks) and keeps it in one of 4 slots,
 *     freeing the slot's previous block;
 *   - every 16th iteration: mmap 8 anonymous pages, munmap page 3 (a hole), mremap pages
 *     0-2 to 5 pages (may move), then munmap both remaining pieces;
 *   - every 7th iteration: a short-lived malloc/free pair.
 * pop() waits while the queue is empty; every thread pushes before it pops, so the queue is
 * never empty while all threads wait (no deadlock) and pushes == pops at the end.
 * The threads run on caller-supplied stacks (pthread_attr_setstack): glibc frees the DTV it
 * callocs for such a thread when the thread is joined, so no thread leaves a block behind.
 *
 * EXPECTED AT EXIT (leaked, i.e. still live when the process ends): exactly 2 allocations,
 * 24633 bytes:
 *   keep_alloc  malloc(12345)                       12345
 *   keep_map    mmap 3 anonymous pages, never unmapped  12288
 * No stdio is used (write(2) only), so no FILE buffer is left either.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define NTHREADS 8
#define NSLOTS 4
#define QCAP 64
#define PAGE 4096
#define STACK_SIZE (256 * 1024)

static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static void say(const char *s) {
    if (write(1, s, strlen(s)) < 0) _exit(98);
}

static void fail(const char *what) {
    say("stress_mt: FAILED ");
    say(what);
    say("\n");
    _exit(1);
}

struct tag {
    uint32_t magic;
    uint32_t size;
};
#define MAGIC 0x5eed1234u

static struct {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    void *items[QCAP];
    int head, count;
} queue = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0};

static void push(void *p) {
    pthread_mutex_lock(&queue.lock);
    if (queue.count == QCAP) fail("queue overflow");
    queue.items[(queue.head + queue.count) % QCAP] = p;
    queue.count++;
    pthread_cond_signal(&queue.nonempty);
    pthread_mutex_unlock(&queue.lock);
}

static void *pop(void) {
    pthread_mutex_lock(&queue.lock);
    while (queue.count == 0) pthread_cond_wait(&queue.nonempty, &queue.lock);
    void *p = queue.items[queue.head];
    queue.head = (queue.head + 1) % QCAP;
    queue.count--;
    pthread_mutex_unlock(&queue.lock);
    return p;
}

static uint32_t next(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

NOINLINE static void *make_block(int kind, size_t size) {
    void *p = NULL;
    switch (kind % 8) {
    case 0: p = malloc(size); break;
    case 1: p = calloc(1, size); break;
    case 2:
        if (posix_memalign(&p, 64, size) != 0) p = NULL;
        break;
    case 3: p = aligned_alloc(128, (size + 127) / 128 * 128); break;
    case 4: p = memalign(256, size); break;
    case 5: p = valloc(size); break;
    case 6: p = pvalloc(size); break;
    case 7: p = reallocarray(NULL, size / 8 + 1, 8); break;
    }
    if (!p) fail("allocation");
    struct tag t = {MAGIC, (uint32_t)size};
    memcpy(p, &t, sizeof t);
    return p;
}

NOINLINE static void *grow_block(void *p, size_t size) {
    struct tag t;
    memcpy(&t, p, sizeof t);
    if (t.magic != MAGIC) fail("bad tag on a handed-over block");
    void *q = realloc(p, size);
    if (!q) fail("realloc");
    memset((char *)q + sizeof t, 0x77, size - sizeof t);
    t.size = (uint32_t)size;
    memcpy(q, &t, sizeof t);
    return q;
}

NOINLINE static void map_dance(void) {
    char *m = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) fail("mmap");
    memset(m, 1, 8 * PAGE);
    if (munmap(m + 3 * PAGE, PAGE) != 0) fail("munmap hole");
    char *r = mremap(m, 3 * PAGE, 5 * PAGE, MREMAP_MAYMOVE);
    if (r == MAP_FAILED) fail("mremap");
    memset(r, 2, 5 * PAGE);
    if (munmap(r, 5 * PAGE) != 0) fail("munmap remapped");
    if (munmap(m + 4 * PAGE, 4 * PAGE) != 0) fail("munmap tail");
}

NOINLINE static void short_lived(size_t size) {
    char *p = malloc(size);
    if (!p) fail("malloc");
    memset(p, 3, size);
    escape(p);
    free(p);
}

static int iterations = 200;

static void *worker(void *arg) {
    uint32_t seed = 12345u + 7919u * (uint32_t)(uintptr_t)arg;
    void *slots[NSLOTS] = {0};
    for (int i = 0; i < iterations; i++) {
        size_t a = 16 + next(&seed) % 4000;
        push(make_block(i + (int)(uintptr_t)arg, a));
        size_t g = 16 + next(&seed) % 8000;
        void *q = grow_block(pop(), g);
        int s = i % NSLOTS;
        free(slots[s]);
        slots[s] = q;
        if (i % 16 == 0) map_dance();
        if (i % 7 == 0) short_lived(1 + next(&seed) % 20000);
    }
    for (int s = 0; s < NSLOTS; s++) free(slots[s]);
    return NULL;
}

static void *kept[2];

NOINLINE static void keep_alloc(void) {
    kept[0] = malloc(12345);
    if (!kept[0]) fail("keep_alloc");
    memset(kept[0], 9, 12345);
}

NOINLINE static void keep_map(void) {
    kept[1] = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (kept[1] == MAP_FAILED) fail("keep_map");
    memset(kept[1], 9, 3 * PAGE);
}

static char stacks[NTHREADS][STACK_SIZE] __attribute__((aligned(4096)));

int main(int argc, char **argv) {
    if (argc > 1) iterations = atoi(argv[1]);
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstack(&attr, stacks[i], STACK_SIZE);
        if (pthread_create(&t[i], &attr, worker, (void *)(uintptr_t)i) != 0) fail("pthread_create");
        pthread_attr_destroy(&attr);
    }
    for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
    if (queue.count != 0) fail("queue not empty at the end");
    keep_alloc();
    keep_map();
    say("stress_mt: ok\n");
    return 0;
}
