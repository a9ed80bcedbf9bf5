/*
 * journal_allocator.c: a shared library that brings its own malloc, calloc, realloc and
 * free (glibc's underneath), whose free allocates: when it first frees a block of 64 KiB
 * or more (known_allocs's k_temp, in main, with profiling on) it mallocs a 1 MiB journal
 * through the interposable `malloc` (a call through the PLT, as a debugging allocator's
 * logging would make), keeps it for good, and notes every later free in it.
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0 -shared -fPIC` and linked into
 * known_allocs.c, once as it is and once with -DALIAS_LIBC_FREE, which also exports
 * `__libc_free` as an alias of this free, as tcmalloc and mimalloc do. What it checks:
 * peakprof runs glibc's own free outside its reentrancy guard (a tail call), but another
 * allocator's free stays inside it, so the journal, made by the allocator for itself, is
 * never counted as the program's. Were it counted, 1 MiB more would be live at the peak,
 * under journal_open.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stddef.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))
#define JOURNAL_BYTES (1 << 20)

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);

static unsigned char *journal;
static size_t frees;
/* glibc's free, the next definition after this library's (found at the first free). */
static void (*glibc_free)(void *);
static __thread int resolving;

void *malloc(size_t size) { return __libc_malloc(size); }

void *calloc(size_t n, size_t size) { return __libc_calloc(n, size); }

void *realloc(void *p, size_t size) { return __libc_realloc(p, size); }

NOINLINE static void journal_open(void) {
    /* Through the PLT: the first `malloc` in the process's lookup order, peakprof's. */
    journal = malloc(JOURNAL_BYTES);
    if (journal)
        memset(journal, 0, JOURNAL_BYTES);
}

void free(void *p) {
    if (!glibc_free) {
        /* dlsym may free: such a block is leaked, once. */
        if (resolving)
            return;
        resolving = 1;
        glibc_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
        resolving = 0;
        if (!glibc_free)
            return;
    }
    if (!journal && p && malloc_usable_size(p) >= (64 << 10))
        journal_open();
    if (journal)
        journal[frees++ % JOURNAL_BYTES] = (unsigned char)(size_t)p;
    glibc_free(p);
}

#ifdef ALIAS_LIBC_FREE
void __libc_free(void *p) __attribute__((alias("free")));
#endif
