/* large: a handful of big allocations, ~280 MiB live at the peak, and little else.
 *
 * usage: large [MIB]      MIB = total size at the peak in MiB (default 280)
 *
 * The opposite of churn: almost no allocation calls, so a profiler's per-call cost is
 * irrelevant and what shows is its fixed cost (start-up, writing the profile) and whether
 * it inflates memory use itself. Every block is written (memset), so the pages are really
 * resident and the peak RSS is ~MIB plus the program's few MiB.
 *
 * Shape at the peak (fractions of MIB):
 *   8/35  malloc'd once
 *  12/35  grown by realloc in 4 steps (each step may move the block)
 *   8/35  anonymous mmap, bypassing malloc entirely
 *   5/35  calloc
 *   2/35  16 mid-sized mallocs
 * For MIB = 280 that is 64 + 96 + 64 + 40 + 16 MiB. The peak is held for 100 ms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MiB (1024UL * 1024UL)

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "large: malloc(%zu) failed\n", n);
        exit(2);
    }
    return p;
}

int main(int argc, char **argv)
{
    unsigned long total = argc > 1 ? strtoul(argv[1], NULL, 10) : 280;
    if (total < 1)
        total = 1;
    size_t unit = total * MiB / 35;

    char *a = xmalloc(8 * unit);
    memset(a, 1, 8 * unit);

    /* Growth by realloc: the old block is freed (or extended) at each step. */
    size_t grown = 3 * unit;
    char *b = xmalloc(grown);
    memset(b, 2, grown);
    for (int step = 0; step < 4; step++) {
        size_t bigger = grown + 9 * unit / 4;
        char *nb = realloc(b, bigger);
        if (!nb) {
            fprintf(stderr, "large: realloc failed\n");
            return 2;
        }
        memset(nb + grown, 3, bigger - grown);
        b = nb;
        grown = bigger;
    }

    size_t mlen = 8 * unit;
    char *m = mmap(NULL, mlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        perror("large: mmap");
        return 2;
    }
    memset(m, 4, mlen);

    char *c = calloc(5, unit);
    if (!c) {
        fprintf(stderr, "large: calloc failed\n");
        return 2;
    }
    for (size_t i = 0; i < 5 * unit; i += 4096) /* calloc pages may be untouched zeros */
        c[i] = 5;

    char *mid[16];
    for (int i = 0; i < 16; i++) {
        mid[i] = xmalloc(2 * unit / 16);
        memset(mid[i], 6, 2 * unit / 16);
    }

    /* The peak is here. Hold it for 100 ms: otherwise it lasts well under a millisecond
     * (printf and the frees below), and the bench runner's 5 ms /proc poller, used where no
     * cgroup memory.peak is available, would miss the profiler's share of the tree's peak. */
    struct timespec hold = {0, 100 * 1000 * 1000};
    nanosleep(&hold, NULL);

    /* Read something back so nothing above is dead code. */
    unsigned long sum = (unsigned long)a[unit] + b[grown - 1] + m[mlen / 2] + c[0] + mid[15][0];
    printf("large: %lu MiB at the peak, sum %lu\n", total, sum);

    for (int i = 0; i < 16; i++)
        free(mid[i]);
    free(c);
    munmap(m, mlen);
    free(b);
    free(a);
    return 0;
}
