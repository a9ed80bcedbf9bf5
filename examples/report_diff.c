/*
 * report_diff.c: two runs with different arguments differ in one function only, for
 * `peakprof diff` in tests/e2e_reports.rs.
 *
 * Usage: report_diff N   (0 <= N <= 1000)
 * Built with `gcc -g -O0 -pthread`. Writes nothing (no stdio); frees everything; exits 0.
 *
 * EXPECTED PEAK: 340000 + 10000 * N bytes, reached by the last allocation (in other_part),
 * live then:
 *   stable_part     malloc(300000)                    300000
 *   changing_part   N x malloc(10000)                 10000 * N
 *   other_part      malloc(40000)                     40000
 * So the runs with N = 5 and N = 12 peak at 390000 and 460000 bytes: a change of +70000,
 * all of it in changing_part.
 *
 * Why nothing else is live: a C program's glibc makes no malloc call of its own before
 * main, atoi does not allocate, and nothing is printed.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

static void *held[1002];

NOINLINE static void *stable_part(void) {
    void *p = malloc(300000);
    memset(p, 1, 300000);
    return p;
}

NOINLINE static void *changing_part(void) {
    void *p = malloc(10000);
    memset(p, 2, 10000);
    return p;
}

NOINLINE static void *other_part(void) {
    void *p = malloc(40000);
    memset(p, 3, 40000);
    return p;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 0;
    if (n < 0 || n > 1000) return 99;
    int k = 0;
    held[k++] = stable_part();
    for (int i = 0; i < n; i++) held[k++] = changing_part();
    held[k++] = other_part();
    for (int i = 0; i < k; i++) free(held[i]);
    return 0;
}
