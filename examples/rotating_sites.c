/*
 * rotating_sites.c: allocates from four call sites in turn, with rbp holding a different
 * junk value at every call, as code built without frame pointers leaves it.
 *
 * Phase 0 allocates through the same frames at the same stack address from two call
 * paths that differ further out (see below); phase 1 churns (each block freed at once, so
 * at most one is live; phase 0's too); phase 2 keeps
 * ROUNDS blocks from every site. Live at the peak, exactly:
 *   site_a  ROUNDS * 1000 bytes      site_b  ROUNDS * 2000 bytes
 *   site_c  ROUNDS * 3000 bytes      site_d  ROUNDS * 4000 bytes
 * (all through junk_rbp_alloc and alloc_inner), 10,000,000 bytes in all with ROUNDS 1000.
 * Prints "repeated N of M" (N: captures that repeated an earlier walk whole, from the
 * preloaded library; M: allocations made) and exits 0, or 3 when not run under peakprof.
 * With the argument "overwrite", phase 1 also writes lengths past the end (and zero) over
 * the thread's memos every 97 allocations, through a debug export of the library, as a
 * program writing over the profiler's memory might: the same peak must come out, and no
 * crash. At the end, a new thread (whose memos are fresh, zero past what was written)
 * allocates once through nocfi_alloc, whose missing unwind information ends that walk
 * after one level, has that memo's length written over, and allocates from site_a: the
 * walk then rises past the short memo's end, through its zero levels, to its top.
 *
 * Why it exists: the profiler's unwinder reuses earlier walks of the thread. A stack
 * repeated from a site visited four allocations ago must be met whole, although rbp
 * differs at every call: the walk never uses that rbp (junk_rbp_alloc's frame is found
 * from rsp), and the junk saved by alloc_inner is reloaded but never used either. The
 * frames and stack ids of those repeats are checked against full walks by the tests
 * (PEAKPROF_CHECK_UNWIND). Phase 0 is the converse: g_alloc runs at the same stack
 * address, with the same rbp, under f_dyn called from one and from wrapper (f_dyn's
 * alloca makes up for wrapper's frame), so the first levels of the two walks are the same
 * state, and above f_dyn's alloca the stack still holds the other walk's words; only the
 * frame pointer f_dyn saved differs, and the walk does use it (f_dyn's frame is found from
 * rbp), so that word must still be checked or the direct call would be given wrapper.
 * g_alloc allocates through junk_rbp_alloc: each path's walk is met whole again four
 * allocations later, its check passing a saved junk rbp that differs but is dead, which
 * makes the profiler work the walk's frame-pointer liveness out once and use that from
 * then on; the word f_dyn saved must still be checked then.
 */
#define _GNU_SOURCE
#include <alloca.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 1000
#define CHURN 20000

/* void *junk_rbp_alloc(size_t n, unsigned long junk): alloc_inner(n) with rbp = junk.
 * void *alloc_inner(size_t n): malloc(n), saving the caller's rbp (the junk) on its frame.
 * Both find their frames from rsp, as their unwind information says. */
__asm__(".text\n"
        ".globl alloc_inner\n"
        ".type alloc_inner,@function\n"
        "alloc_inner:\n"
        ".cfi_startproc\n"
        "  push %rbp\n"
        ".cfi_def_cfa_offset 16\n"
        ".cfi_offset %rbp, -16\n"
        "  call malloc@PLT\n"
        "  pop %rbp\n"
        ".cfi_def_cfa_offset 8\n"
        "  ret\n"
        ".cfi_endproc\n"
        ".size alloc_inner, .-alloc_inner\n"
        ".globl junk_rbp_alloc\n"
        ".type junk_rbp_alloc,@function\n"
        "junk_rbp_alloc:\n"
        ".cfi_startproc\n"
        "  push %rbp\n"
        ".cfi_def_cfa_offset 16\n"
        ".cfi_offset %rbp, -16\n"
        "  mov %rsi, %rbp\n"
        "  call alloc_inner\n"
        "  pop %rbp\n"
        ".cfi_def_cfa_offset 8\n"
        "  ret\n"
        ".cfi_endproc\n"
        ".size junk_rbp_alloc, .-junk_rbp_alloc\n");

void *junk_rbp_alloc(size_t n, unsigned long junk);

/* void *nocfi_alloc(size_t n): malloc(n), with no unwind information at all. */
__asm__(".text\n"
        ".globl nocfi_alloc\n"
        ".type nocfi_alloc,@function\n"
        "nocfi_alloc:\n"
        "  sub $8, %rsp\n"
        "  call malloc@PLT\n"
        "  add $8, %rsp\n"
        "  ret\n"
        ".size nocfi_alloc, .-nocfi_alloc\n");

void *nocfi_alloc(size_t n);

static unsigned long junk_state = 0x9e3779b97f4a7c15ul;

/* A new junk value for every call (xorshift). */
static unsigned long junk(void) {
    junk_state ^= junk_state << 13;
    junk_state ^= junk_state >> 7;
    junk_state ^= junk_state << 17;
    return junk_state;
}

__attribute__((noinline)) static void *site_a(void) { return junk_rbp_alloc(1000, junk()); }
__attribute__((noinline)) static void *site_b(void) { return junk_rbp_alloc(2000, junk()); }
__attribute__((noinline)) static void *site_c(void) { return junk_rbp_alloc(3000, junk()); }
__attribute__((noinline)) static void *site_d(void) { return junk_rbp_alloc(4000, junk()); }

static void *(*const sites[4])(void) = {site_a, site_b, site_c, site_d};

/* Phase 0. Built at -O0, so each function keeps rbp as its frame pointer. */
static void *volatile g_frame;
static volatile size_t pad_now;
static void *(*volatile entry)(void);
static volatile int from_f_dyn;

__attribute__((noinline)) static void *g_alloc(void) {
    g_frame = __builtin_frame_address(0);
    return junk_rbp_alloc(48, junk());
}

/* Writes only the lowest byte of its alloca: above it, the stack still holds what the
 * walk through wrapper left there (wrapper's frame, f_dyn's frame under it). Allocates
 * through g_alloc, or itself (from_f_dyn): then the walks' first levels differ only in
 * rbp, which the walk uses (f_dyn's frame is found from it). */
__attribute__((noinline)) static void *f_dyn(void) {
    volatile char *room = alloca(pad_now + 1);
    room[0] = 0;
    if (from_f_dyn) return malloc(48);
    return g_alloc();
}

__attribute__((noinline)) static void *wrapper(void) {
    volatile char frame[256];
    frame[0] = 0;
    return f_dyn();
}

/* main -> one -> (wrapper -> f_dyn | f_dyn) -> g_alloc, through one call site in one
 * (called from one site in main), so both paths return to the same addresses from the
 * same stack addresses: they differ only below one's frame. */
__attribute__((noinline)) static void *one(int direct, size_t pad) {
    pad_now = direct ? pad : 0;
    entry = direct ? f_dyn : wrapper;
    return entry();
}

/* The alloca that puts g_alloc's frame where it is under wrapper, or -1. */
static long calibrate(void) {
    free(one(0, 0));
    void *target = g_frame;
    for (long pad = 0; pad <= 4096; pad++) {
        free(one(1, (size_t)pad));
        if (g_frame == target) return pad;
    }
    return -1;
}

static void *held[ROUNDS][4];

/* Lengths written over the memos: none, one past the levels, far past, the largest. */
static const unsigned bad_lengths[4] = {0, 137, 1u << 20, 0xffffffffu};

static void (*overwrite)(unsigned);

/* The walk that follows a short memo's zero levels (see the top). */
static void *past_a_short_memo(void *unused) {
    (void)unused;
    free(nocfi_alloc(64));
    overwrite(1u << 20);
    free(site_a());
    return 0;
}

int main(int argc, char **argv) {
    unsigned long (*repeated)(void) =
        (unsigned long (*)(void))dlsym(RTLD_DEFAULT, "peakprof_debug_repeated_walks");
    if (argc > 1 && strcmp(argv[1], "overwrite") == 0)
        overwrite = (void (*)(unsigned))dlsym(RTLD_DEFAULT, "peakprof_debug_overwrite_memo_lengths");
    if (!repeated || (argc > 1 && !overwrite)) {
        fprintf(stderr, "rotating_sites: not running under peakprof\n");
        return 3;
    }
    long pad = calibrate();
    if (pad < 0) {
        fprintf(stderr, "rotating_sites: no alloca puts g_alloc's frames in line\n");
        return 4;
    }
    for (int r = 0; r < CHURN; r++) {
        /* One call site for both paths, and no call between them (free would write over
         * the stack the second walk finds stale). */
        from_f_dyn = r & 1;
        void *pair[2];
        for (int direct = 0; direct < 2; direct++)
            pair[direct] = one(direct, (size_t)pad);
        free(pair[0]);
        free(pair[1]);
    }
    unsigned long before = repeated();
    for (int r = 0; r < CHURN; r++)
        for (int s = 0; s < 4; s++) {
            if (overwrite && (r * 4 + s) % 97 == 0)
                overwrite(bad_lengths[(r * 4 + s) / 97 % 4]);
            free(sites[s]());
        }
    for (int r = 0; r < ROUNDS; r++)
        for (int s = 0; s < 4; s++)
            if (!(held[r][s] = sites[s]())) return 1;
    unsigned long n = repeated() - before;
    for (int r = 0; r < ROUNDS; r++)
        for (int s = 0; s < 4; s++)
            free(held[r][s]);
    /* After the peak: glibc keeps a new thread's TLS block (it would be live at the peak). */
    if (overwrite) {
        pthread_t t;
        if (pthread_create(&t, 0, past_a_short_memo, 0) != 0 || pthread_join(t, 0) != 0)
            return 5;
    }
    printf("repeated %lu of %d\n", n, (CHURN + ROUNDS) * 4);
    return 0;
}
