/* floor_preload.c: the *floor* cost of an LD_PRELOAD allocation tracker.
 *
 * Not part of peakprof. It exists to measure, on benches/workloads/churn{,_mt}.c, how
 * much wall time the cheapest conceivable designs cost, so the sampled-mode targets
 * ("<= 1.3x unprofiled") can be judged against what is physically possible.
 *
 * Build (LEVEL is compile-time so the hot path has no mode branch):
 *   gcc -O2 -shared -fPIC -DLEVEL=N -o floor_N.so floor_preload.c -ldl
 *
 *   LEVEL 0 "forward": every hook only forwards to the real function. Measures the cost
 *           of interposition itself (PLT call into this .so + indirect call to libc).
 *   LEVEL 1 "atomic":  forward + one relaxed atomic add/sub on one global byte counter
 *           per event + a relaxed "max" update of a global peak. The cheapest possible
 *           global order of events (all threads serialise on one cache line).
 *   LEVEL 2 "map":     forward + an exact per-block size map (open addressing, linear
 *           probing, {addr,size} entries, backward-shift deletion) under one global
 *           spinlock, with total/peak as plain integers under that lock. The floor for
 *           "exact requested size per block + exact peak of the total", with no stacks.
 *
 * FLOOR_REPORT=1 in the environment makes a destructor print peak / live total / live
 * block count to stderr at exit (LEVEL 2 also lists up to 8 live blocks), which is how
 * the map's bookkeeping is checked (churn frees its whole ring before exiting).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef LEVEL
#define LEVEL 0
#endif

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---------------------------------------------------------------------------------- */
/* Real functions and bootstrap.                                                        */
/* ---------------------------------------------------------------------------------- */

static void *(*real_malloc)(size_t);
static void (*real_free)(void *);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);

/* dlsym() itself may call calloc/malloc (glibc's dlerror buffer) before real_calloc is
 * known. While resolving, allocations are served from this static bump buffer; they are
 * never freed (free() recognises and ignores pointers inside it). */
static char boot_buf[64 * 1024] __attribute__((aligned(64)));
static size_t boot_used;
static int resolving;

static int in_boot(const void *p)
{
    return (const char *)p >= boot_buf && (const char *)p < boot_buf + sizeof boot_buf;
}

static void *boot_alloc(size_t size, size_t align)
{
    if (align < 16)
        align = 16;
    size_t off = (boot_used + align - 1) & ~(align - 1);
    if (off + size > sizeof boot_buf)
        return NULL;
    boot_used = off + size;
    return boot_buf + off; /* static storage: already zero, so calloc is satisfied too */
}

/* Called lazily from the first hook (and from the constructor). The first allocation
 * happens before main, while the process is single-threaded, so no lock is needed. */
static void resolve(void)
{
    resolving = 1;
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_free = dlsym(RTLD_NEXT, "free");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = dlsym(RTLD_NEXT, "memalign");
    resolving = 0;
    if (!real_malloc || !real_free || !real_calloc || !real_realloc) {
        static const char msg[] = "floor_preload: dlsym(RTLD_NEXT) failed\n";
        write(2, msg, sizeof msg - 1);
        _exit(127);
    }
}

#define ENSURE_RESOLVED()                                                               \
    do {                                                                                \
        if (UNLIKELY(!real_malloc) && !resolving)                                       \
            resolve();                                                                  \
    } while (0)

/* ---------------------------------------------------------------------------------- */
/* LEVEL 1: one global atomic counter.                                                  */
/* ---------------------------------------------------------------------------------- */
#if LEVEL == 1
/* Own cache lines, so the counter's ping-pong between cores is the only sharing cost. */
static uint64_t total __attribute__((aligned(64)));
static uint64_t peak __attribute__((aligned(64)));

static inline void on_alloc(void *p, size_t size)
{
    if (!p)
        return;
    uint64_t t = __atomic_add_fetch(&total, size, __ATOMIC_RELAXED);
    /* Relaxed max: read, and store only when higher (a lost race just loses a peak
     * update; a real design would CAS, which costs the same when uncontended). */
    if (t > __atomic_load_n(&peak, __ATOMIC_RELAXED))
        __atomic_store_n(&peak, t, __ATOMIC_RELAXED);
}

/* FLOOR ONLY: free() needs a size and this level has no map, so it asks glibc via
 * malloc_usable_size(), the cheapest way to get *a* size (it reads the chunk header).
 * It is the usable size, not the requested one, so `total` drifts (it is added with the
 * requested size): the value is meaningless, only the cost of the atomic is measured. */
static inline void on_free(void *p)
{
    if (p)
        __atomic_sub_fetch(&total, malloc_usable_size(p), __ATOMIC_RELAXED);
}
#endif

/* ---------------------------------------------------------------------------------- */
/* LEVEL 2: exact per-block map under one global spinlock.                              */
/* ---------------------------------------------------------------------------------- */
#if LEVEL == 2
struct entry {
    uintptr_t addr; /* 0 = empty slot (malloc never returns 0 as a live block) */
    uint64_t size;  /* requested size */
};

static struct entry *tab; /* power-of-two capacity; mmap'ed so it never recurses */
static size_t cap_mask;   /* capacity - 1 */
static unsigned hash_shift; /* 64 - log2(capacity): the hash takes the product's top bits */
static size_t used;       /* live entries; grown at 50% load */
static uint64_t total, peak;
static int lock_word;

/* One global lock: an atomic exchange, spinning on a plain load (no cache-line
 * hammering) and yielding after a while, since with 4 threads on 2 cores the holder
 * may be descheduled and pure spinning would burn whole time slices. */
static inline void lock(void)
{
    if (LIKELY(!__atomic_exchange_n(&lock_word, 1, __ATOMIC_ACQUIRE)))
        return;
    for (unsigned spins = 0;; spins++) {
        while (__atomic_load_n(&lock_word, __ATOMIC_RELAXED)) {
            if (++spins > 64) {
                sched_yield();
                spins = 0;
            } else {
                __builtin_ia32_pause();
            }
        }
        if (!__atomic_exchange_n(&lock_word, 1, __ATOMIC_ACQUIRE))
            return;
    }
}

static inline void unlock(void)
{
    __atomic_store_n(&lock_word, 0, __ATOMIC_RELEASE);
}

/* Fibonacci hashing of the address (low 4 bits are always 0 for malloc'ed blocks). */
static inline size_t slot_of(uintptr_t a)
{
    return (size_t)(((a >> 4) * 0x9e3779b97f4a7c15ull) >> hash_shift);
}

static void grow(void)
{
    size_t old_cap = tab ? cap_mask + 1 : 0;
    size_t new_cap = old_cap ? old_cap * 2 : 4096;
    struct entry *nt = mmap(NULL, new_cap * sizeof *nt, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (nt == MAP_FAILED) {
        static const char msg[] = "floor_preload: mmap failed\n";
        write(2, msg, sizeof msg - 1);
        _exit(127);
    }
    struct entry *ot = tab;
    tab = nt;
    cap_mask = new_cap - 1;
    hash_shift = 64 - (unsigned)__builtin_ctzll(new_cap);
    for (size_t i = 0; i < old_cap; i++) {
        if (!ot[i].addr)
            continue;
        size_t s = slot_of(ot[i].addr);
        while (tab[s].addr)
            s = (s + 1) & cap_mask;
        tab[s] = ot[i];
    }
    if (ot)
        munmap(ot, old_cap * sizeof *ot);
}

/* Caller holds the lock. */
static inline void map_insert(uintptr_t a, uint64_t size)
{
    if (UNLIKELY(2 * (used + 1) > cap_mask + 1 || !tab))
        grow();
    size_t s = slot_of(a);
    while (tab[s].addr)
        s = (s + 1) & cap_mask;
    tab[s].addr = a;
    tab[s].size = size;
    used++;
    total += size;
    if (total > peak)
        peak = total;
}

/* Caller holds the lock. Returns 0 when the block is unknown (e.g. allocated before
 * the hooks were live); such a free is not counted. Backward-shift deletion keeps the
 * probe sequences intact without tombstones. */
static inline int map_remove(uintptr_t a, uint64_t *size_out)
{
    if (UNLIKELY(!tab))
        return 0;
    size_t s = slot_of(a);
    while (tab[s].addr != a) {
        if (!tab[s].addr)
            return 0;
        s = (s + 1) & cap_mask;
    }
    *size_out = tab[s].size;
    total -= tab[s].size;
    used--;
    size_t hole = s;
    for (size_t j = (s + 1) & cap_mask; tab[j].addr; j = (j + 1) & cap_mask) {
        size_t home = slot_of(tab[j].addr);
        /* Move j into the hole unless its home lies cyclically in (hole, j]. */
        if (((j - home) & cap_mask) >= ((j - hole) & cap_mask)) {
            tab[hole] = tab[j];
            hole = j;
        }
    }
    tab[hole].addr = 0;
    return 1;
}

static inline void on_alloc(void *p, size_t size)
{
    if (!p)
        return;
    lock();
    map_insert((uintptr_t)p, size);
    unlock();
}

/* Removed from the map *before* the real free, so another thread cannot get the same
 * address from malloc and insert it while the stale entry is still there. */
static inline void on_free(void *p)
{
    uint64_t sz;
    if (!p)
        return;
    lock();
    map_remove((uintptr_t)p, &sz);
    unlock();
}
#endif

#if LEVEL == 0
static inline void on_alloc(void *p, size_t size) { (void)p; (void)size; }
static inline void on_free(void *p) { (void)p; }
#endif

/* ---------------------------------------------------------------------------------- */
/* The hooks.                                                                           */
/* ---------------------------------------------------------------------------------- */

void *malloc(size_t size)
{
    ENSURE_RESOLVED();
    if (UNLIKELY(resolving))
        return boot_alloc(size, 16);
    void *p = real_malloc(size);
    on_alloc(p, size);
    return p;
}

void free(void *p)
{
    if (UNLIKELY(in_boot(p)))
        return;
    ENSURE_RESOLVED();
    on_free(p);
    real_free(p);
}

void *calloc(size_t n, size_t size)
{
    ENSURE_RESOLVED();
    size_t bytes;
    if (__builtin_mul_overflow(n, size, &bytes))
        return NULL;
    if (UNLIKELY(resolving))
        return boot_alloc(bytes, 16);
    void *p = real_calloc(n, size);
    on_alloc(p, bytes);
    return p;
}

void *realloc(void *old, size_t size)
{
    ENSURE_RESOLVED();
    if (UNLIKELY(resolving || in_boot(old))) {
        /* Moving a bootstrap block out: copy what fits (its size is not recorded). */
        void *p = resolving ? boot_alloc(size, 16) : malloc(size);
        if (p && old) {
            size_t room = (size_t)(boot_buf + sizeof boot_buf - (char *)old);
            memcpy(p, old, size < room ? size : room);
        }
        return p;
    }
#if LEVEL == 2
    /* Forget the old block first (same reason as free), put it back if realloc fails. */
    uint64_t old_size = 0;
    int known = 0;
    if (old) {
        lock();
        known = map_remove((uintptr_t)old, &old_size);
        unlock();
    }
    void *p = real_realloc(old, size);
    if (p) {
        on_alloc(p, size);
    } else if (known && size) {
        lock();
        map_insert((uintptr_t)old, old_size);
        unlock();
    }
    return p;
#else
    if (old)
        on_free(old); /* LEVEL 1 reads the usable size before the block may move */
    void *p = real_realloc(old, size);
    on_alloc(p, size);
    return p;
#endif
}

int posix_memalign(void **out, size_t align, size_t size)
{
    ENSURE_RESOLVED();
    if (UNLIKELY(resolving)) {
        *out = boot_alloc(size, align);
        return *out ? 0 : 12 /* ENOMEM */;
    }
    int rc = real_posix_memalign(out, align, size);
    if (rc == 0)
        on_alloc(*out, size);
    return rc;
}

void *aligned_alloc(size_t align, size_t size)
{
    ENSURE_RESOLVED();
    if (UNLIKELY(resolving))
        return boot_alloc(size, align);
    void *p = real_aligned_alloc(align, size);
    on_alloc(p, size);
    return p;
}

void *memalign(size_t align, size_t size)
{
    ENSURE_RESOLVED();
    if (UNLIKELY(resolving))
        return boot_alloc(size, align);
    void *p = real_memalign(align, size);
    on_alloc(p, size);
    return p;
}

/* ---------------------------------------------------------------------------------- */
/* Constructor / destructor.                                                            */
/* ---------------------------------------------------------------------------------- */

__attribute__((constructor)) static void floor_init(void)
{
    ENSURE_RESOLVED();
}

/* FLOOR_REPORT=1: print the bookkeeping at exit. Runs from _dl_fini, after main has
 * returned, so stdio buffers that glibc never frees are still counted as live. */
__attribute__((destructor)) static void floor_report(void)
{
    const char *e = getenv("FLOOR_REPORT");
    if (!e || strcmp(e, "1") != 0)
        return;
    char buf[256];
    int n;
#if LEVEL == 0
    n = snprintf(buf, sizeof buf, "floor LEVEL=0: nothing tracked\n");
    write(2, buf, (size_t)n);
#elif LEVEL == 1
    n = snprintf(buf, sizeof buf,
                 "floor LEVEL=1: peak=%llu total=%lld (total drifts: usable vs requested)\n",
                 (unsigned long long)peak, (long long)total);
    write(2, buf, (size_t)n);
#else
    lock();
    n = snprintf(buf, sizeof buf, "floor LEVEL=2: peak=%llu live_total=%llu live_blocks=%zu\n",
                 (unsigned long long)peak, (unsigned long long)total, used);
    write(2, buf, (size_t)n);
    unsigned shown = 0;
    for (size_t i = 0; tab && i <= cap_mask && shown < 8; i++) {
        if (!tab[i].addr)
            continue;
        n = snprintf(buf, sizeof buf, "  live block %#lx size %llu\n",
                     (unsigned long)tab[i].addr, (unsigned long long)tab[i].size);
        write(2, buf, (size_t)n);
        shown++;
    }
    unlock();
#endif
}
