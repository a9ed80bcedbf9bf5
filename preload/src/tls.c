/* Per-thread state of the preload, in initial-exec TLS: accessing it never allocates and
 * never takes a lock, so it is safe inside malloc, during thread start-up and tear-down. */
#include <stddef.h>
#include <stdint.h>

struct memo_set;

/* The hot per-thread state, reached from the thread pointer (see thread.rs, which calls
 * this once to learn its offset, then reads and writes the fields): whether the thread is
 * inside a hook, sampled mode's byte countdown and its random state, the countdown to
 * the next periodic tick, the thread's lane and its biased-lock serial, and what every
 * capture reads first (the stack's bounds, the memo set, the memo policy). */
struct peakprof_thread {
    int32_t in_hook;
    uint32_t ticks_left;
    int64_t sample_left;
    uint64_t sample_rng;
    /* Exact mode's lane of this thread (lanes.rs): 0 none yet, i + 1 lane i, or
     * UINT32_MAX for none ever (the thread is ending, or no lane was free). */
    uint32_t lane;
    /* This thread's serial for sampled mode's biased locks (biased.rs): 0 none yet. */
    uint32_t bias_serial;
    /* Bounds of the thread's stack, found once per thread (unwind/fast.rs): the fast
     * unwinder reads only inside them. 0/0 until known; 1/1 when they cannot be known. */
    uintptr_t stack_lo, stack_hi;
    /* The thread's memo set (below), 0 until its first capture maps or takes one. */
    struct memo_set *memo_set;
    /* When the memo stops paying on this thread (its stacks share little from one capture
     * to the next), captures skip it for a while: [0] captures left to skip, [1]
     * unprofitable captures in a row (unwind/memo.rs). */
    uint32_t memo_policy[2];
};

static __thread struct peakprof_thread thread_state __attribute__((tls_model("initial-exec")));

struct peakprof_thread *peakprof_thread(void) { return &thread_state; }

/* thread.rs mirrors struct peakprof_thread; its tests compare the size and where the last
 * field lies. */
uint64_t peakprof_thread_layout(uint64_t *memo_policy_offset) {
    *memo_policy_offset = offsetof(struct peakprof_thread, memo_policy);
    return sizeof(struct peakprof_thread);
}

/* Poisson sampling by bytes, as tcmalloc and jemalloc do: each thread counts down bytes to
 * its next sample, drawn from an exponential distribution with mean `rate`, so an
 * allocation of s bytes is sampled with probability 1 - exp(-s/rate) whatever the sizes
 * around it. */

static double next_uniform(void) {
    /* xorshift64*: a few ns, statistically plenty for choosing samples. */
    uint64_t x = thread_state.sample_rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    thread_state.sample_rng = x;
    return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0);
}

/* The natural logarithm, from thread.rs (pure Rust: the library links no libm). */
double peakprof_ln(double x);

static int64_t next_interval(uint64_t rate) {
    double u = next_uniform();
    if (u <= 0.0)
        u = 1e-300;
    double v = -peakprof_ln(u) * (double)rate;
    return v > 9e18 ? (int64_t)9e18 : (int64_t)v + 1;
}

/* 1 when this allocation of `size` bytes is sampled. The common case (the countdown is
 * above `size`: not sampled) is decided inline in thread.rs; this is the rest. */
int32_t peakprof_should_sample(uint64_t size, uint64_t rate) {
    if (thread_state.sample_rng == 0) {
        /* Seed from the thread's own address space position: distinct per thread. */
        thread_state.sample_rng = ((uint64_t)(uintptr_t)&thread_state * 0x9E3779B97F4A7C15ULL) | 1;
        thread_state.sample_left = next_interval(rate);
    }
    int64_t s = size > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)size;
    if (thread_state.sample_left > s) {
        thread_state.sample_left -= s;
        return 0;
    }
    thread_state.sample_left = next_interval(rate);
    return 1;
}

/* The fast unwinder's memos of this thread's recent captures (see unwind/memo.rs): five
 * buffers, the last four walks and the one being written, ~22 KiB together.
 *
 * Not in TLS: glibc carves a thread's static TLS out of the stack size the program asked
 * for, and 9 KiB of it left a thread created with a 16-24 KiB stack too little to run on
 * (it crashed in the dynamic linker's first symbol lookup). TLS keeps a pointer; the set
 * is mapped on the thread's first capture and goes back to a free list when the thread
 * ends (a pthread key's destructor), for the next thread to take. */
#define PEAKPROF_MEMO_LEVELS 136
#define PEAKPROF_MEMOS 5

struct peakprof_memo_level {
    uint64_t pc;
    uint64_t sp;
    uint64_t bp;
    uint64_t read_at;
};

struct peakprof_memo {
    uint64_t generation;
    uint32_t len;
    uint32_t valid;
    uint32_t stack_plus_one;
    uint16_t bp_until, worked_from; /* the Rust side's alone */
    struct peakprof_memo_level level[PEAKPROF_MEMO_LEVELS];
};

struct memo_set {
    /* Per memo: the stack pointer its walk started at (0: none), so a capture looks at the
     * few whose first level could be its own in one cache line. */
    uint64_t first_sp[PEAKPROF_MEMOS];
    /* Captures that repeated an earlier walk whole, for tests. */
    uint64_t repeated;
    /* Indices into memo: the earlier walks, newest first, then the one to write next. */
    uint8_t order[PEAKPROF_MEMOS];
    struct peakprof_memo memo[PEAKPROF_MEMOS];
    struct memo_set *next_free;
    /* Every set ever mapped, in use or free (sets are never unmapped): a fork child
     * takes back the sets of the threads that did not come along. */
    struct memo_set *next_all;
};

#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Set once the thread's key destructor has run: a capture made later in its tear-down
 * goes without a memo rather than mapping one that nothing would give back. */
static __thread uint8_t memo_gone __attribute__((tls_model("initial-exec")));

static struct memo_set *free_sets;
static struct memo_set *all_sets;
static atomic_flag free_sets_lock = ATOMIC_FLAG_INIT;
static pthread_key_t memo_key;
static int memo_key_made;
static pthread_once_t memo_key_once = PTHREAD_ONCE_INIT;

static void lock_free_sets(void) {
    while (atomic_flag_test_and_set_explicit(&free_sets_lock, memory_order_acquire))
        sched_yield();
}

static void unlock_free_sets(void) {
    atomic_flag_clear_explicit(&free_sets_lock, memory_order_release);
}

/* Puts a set on the free list, for the next thread that needs one. */
static void give_set(struct memo_set *set) {
    lock_free_sets();
    set->next_free = free_sets;
    free_sets = set;
    unlock_free_sets();
}

/* The key's destructor, at the end of a thread that had a set. */
static void memo_release(void *p) {
    thread_state.memo_set = 0;
    memo_gone = 1;
    give_set(p);
}

/* memo.rs mirrors struct memo_set and struct peakprof_memo; it says whether it agrees. */
extern _Bool peakprof_memo_layout_agrees(uint64_t repeated_offset, uint64_t order_offset,
                                         uint64_t memo_offset, uint64_t memo_size,
                                         uint64_t valid_offset, uint64_t memos);

/* Once per process, on the first thread's first capture (which may come before the
 * library's constructor runs). pthread_key_create does not allocate. Without the key no
 * thread gets a set: so too when the Rust side reads the sets with another layout. */
static void make_memo_key(void) {
    memo_key_made =
        peakprof_memo_layout_agrees(offsetof(struct memo_set, repeated),
                                    offsetof(struct memo_set, order),
                                    offsetof(struct memo_set, memo), sizeof(struct peakprof_memo),
                                    offsetof(struct peakprof_memo, valid), PEAKPROF_MEMOS) &&
        pthread_key_create(&memo_key, memo_release) == 0;
}

/* A set from the free list, else a fresh mapping (a system call rather than mmap(3),
 * which this library interposes); null when none can be had. */
static struct memo_set *take_set(void) {
    lock_free_sets();
    struct memo_set *set = free_sets;
    if (set)
        free_sets = set->next_free;
    unlock_free_sets();
    if (!set) {
        long p = syscall(SYS_mmap, 0, sizeof(struct memo_set), PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == -1)
            return 0;
        set = (struct memo_set *)p;
        lock_free_sets();
        set->next_all = all_sets;
        all_sets = set;
        unlock_free_sets();
    }
    /* A recycled set holds another thread's walks: not this thread's captures. */
    for (int i = 0; i < PEAKPROF_MEMOS; i++) {
        set->memo[i].valid = 0;
        set->first_sp[i] = 0;
        set->order[i] = (uint8_t)i;
    }
    set->repeated = 0;
    return set;
}

/* peakprof_memos for a thread without a set yet. Out of line: inside, its calls made the
 * compiler save six registers on every call, including the common one that only loads
 * the thread's pointer (~20 instructions, twice per allocation). */
static __attribute__((noinline)) struct memo_set *first_memos(void) {
    if (memo_gone)
        return 0;
    pthread_once(&memo_key_once, make_memo_key);
    if (!memo_key_made)
        return 0;
    struct memo_set *set = take_set();
    if (!set)
        return 0;
    if (pthread_setspecific(memo_key, set) != 0) {
        give_set(set);
        return 0;
    }
    thread_state.memo_set = set;
    return set;
}

/* This thread's memos; 0 when the thread has none and cannot get one (no key, no memory,
 * or the thread is ending). */
struct memo_set *peakprof_memos(void) {
    struct memo_set *set = thread_state.memo_set;
    if (__builtin_expect(set != 0, 1))
        return set;
    return first_memos();
}

/* Around fork (the profiler's pthread_atfork handlers): the set lists' lock is held across
 * it, so the child never inherits it from a thread that was starting or ending (the child
 * would then spin on it forever at its first new thread's capture). */
void peakprof_memo_fork_prepare(void) { lock_free_sets(); }

void peakprof_memo_fork_parent(void) { unlock_free_sets(); }

/* In the child only the forking thread lives on: every set but its own is free. */
void peakprof_memo_fork_child(void) {
    struct memo_set *free = 0;
    for (struct memo_set *p = all_sets; p; p = p->next_all) {
        if (p != thread_state.memo_set) {
            p->next_free = free;
            free = p;
        }
    }
    free_sets = free;
    unlock_free_sets();
}

/* Sets on the free list, for tests (takes the lock). */
int peakprof_memo_free_sets(void) {
    int n = 0;
    lock_free_sets();
    for (struct memo_set *p = free_sets; p; p = p->next_free)
        n++;
    unlock_free_sets();
    return n;
}

