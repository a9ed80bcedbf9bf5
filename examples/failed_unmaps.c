/*
 * failed_unmaps.c: munmap and mremap calls that fail must not change what is counted.
 *
 * Exists because the munmap hook once removed a range from the live set before the real
 * call and never put it back when the call failed: an unaligned start, an overflowing
 * length or a sealed mapping made mapped memory vanish from the peak.
 *
 * Built by tests/e2e_peak.rs with `gcc -g -O0 -pthread`. Usage: failed_unmaps MODE
 *   einval   munmap(p + 1, 4096), munmap(p, SIZE_MAX), munmap(p + 4096, 1 << 62): EINVAL,
 *            refused by the kernel's argument checks
 *   high     munmap(p, len) with p + len past 2^47 - 4096, the 4-level task size: EINVAL
 *            under 4-level paging only (with 5-level paging it would unmap everything
 *            above p, the stack included: never run it there)
 *   sealed   mseal the second page of p, then munmap(p, 16384): EPERM (valid arguments;
 *            the kernel refuses later). Exits 77 when the kernel has no mseal (before 6.10).
 *   mremap   mremap(p + 1, ...): EINVAL; on p's second page, with an unknown flag, with
 *            MREMAP_FIXED or MREMAP_DONTUNMAP but no MREMAP_MAYMOVE: EINVAL (flags the kernel
 *            refuses before it looks at any mapping); mremap growing p in place without
 *            MREMAP_MAYMOVE while the next page is mapped: ENOMEM
 *   dontunmap  not a failure but the same question, whether p still counts:
 *            mremap(p, 16384, 16384, MREMAP_MAYMOVE | MREMAP_DONTUNMAP) moves p's pages to a
 *            new range and leaves p mapped (empty). Exits 77 when the kernel has no
 *            MREMAP_DONTUNMAP (before 5.7).
 * In every mode each call must fail as described (else exit 1); then map_second maps
 * 16384 bytes more while p is still whole, touches both, and unmaps both. Exit 0. No stdio.
 *
 * EXPECTED PEAK: 32768 bytes, two anonymous 4-page mappings live at once:
 *   map_first   mmap(16384)   16384
 *   map_second  mmap(16384)   16384
 * In dontunmap mode 49152: those two and the moved range, 16384, attributed to main (which
 * called mremap).
 * In mremap mode the page next to p is mapped by map_guard with PROT_NONE (when nothing is
 * there yet): not counted (an inaccessible mapping holds no memory), so the peak is the
 * same. Nothing else is
 * allocated (no stdio; strcmp and syscall do not allocate).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define SIZE 16384
#define PAGE 4096
#ifndef SYS_mseal
#define SYS_mseal 462
#endif

NOINLINE static char *map_first(void) {
    return mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

NOINLINE static char *map_second(void) {
    return mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

/* An inaccessible page right after p, so that p cannot grow in place (unless something
 * is mapped there already, which serves as well). */
NOINLINE static int map_guard(char *p) {
    void *g = mmap(p + SIZE, PAGE, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    return g == p + SIZE || (g == MAP_FAILED && errno == EEXIST) ? 0 : -1;
}

static int failed_with(int r, int err) { return r == -1 && errno == err; }

static int mremap_failed_with(void *r, int err) { return r == MAP_FAILED && errno == err; }

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *mode = argv[1];
    char *p = map_first();
    if (p == MAP_FAILED) return 1;
    int ok;
    if (strcmp(mode, "einval") == 0) {
        ok = failed_with(munmap(p + 1, PAGE), EINVAL) &&
             failed_with(munmap(p, SIZE_MAX), EINVAL) &&
             failed_with(munmap(p + PAGE, (size_t)1 << 62), EINVAL);
    } else if (strcmp(mode, "high") == 0) {
        uintptr_t task_size_4_level = ((uintptr_t)1 << 47) - PAGE;
        ok = failed_with(munmap(p, task_size_4_level - (uintptr_t)p + PAGE), EINVAL);
    } else if (strcmp(mode, "sealed") == 0) {
        if (syscall(SYS_mseal, p + PAGE, PAGE, 0) != 0) return errno == ENOSYS ? 77 : 1;
        ok = failed_with(munmap(p, SIZE), EPERM);
    } else if (strcmp(mode, "mremap") == 0) {
        ok = mremap_failed_with(mremap(p + 1, PAGE, 2 * PAGE, MREMAP_MAYMOVE), EINVAL) &&
             mremap_failed_with(mremap(p + PAGE, PAGE, PAGE, 0x40), EINVAL) &&
             mremap_failed_with(mremap(p + PAGE, PAGE, PAGE, MREMAP_FIXED, p + 2 * PAGE),
                                EINVAL) &&
             mremap_failed_with(mremap(p + PAGE, PAGE, PAGE, MREMAP_DONTUNMAP), EINVAL) &&
             map_guard(p) == 0 && mremap_failed_with(mremap(p, SIZE, 2 * SIZE, 0), ENOMEM);
    } else if (strcmp(mode, "dontunmap") == 0) {
        void *moved = mremap(p, SIZE, SIZE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
        if (moved == MAP_FAILED) return errno == EINVAL ? 77 : 1;
        memset(moved, 3, SIZE);
        ok = 1;
    } else {
        return 2;
    }
    if (!ok) return 1;
    char *q = map_second();
    if (q == MAP_FAILED) return 1;
    memset(p, 1, SIZE);
    memset(q, 2, SIZE);
    /* The sealed page stays (and so does the guard): only what can go goes. */
    munmap(q, SIZE);
    if (strcmp(mode, "sealed") != 0) munmap(p, SIZE);
    return 0;
}
