/*
 * report_leak.c: a program with a known peak, a known leak and a known time line, for the
 * report outputs (leaks.svg, timeline.svg, index.html) in tests/e2e_reports.rs.
 *
 * Built with `gcc -g -O0 -pthread`. Writes nothing (no stdio, so no FILE buffer is ever
 * allocated) and exits 0.
 *
 * What happens, in order (tracked total after each step):
 *   tidy_up      10 x malloc(10000), then frees all ten              100000, then 0
 *   leak_block   malloc(12345), never freed                           12345
 *   (sleeps 60 ms)
 *   hold_peak    malloc(200000)                                       212345 <- the peak
 *   (sleeps 40 ms)
 *   drop_peak    frees hold_peak's block                              12345
 *   (sleeps 20 ms)
 *
 * EXPECTED PEAK: 212345 bytes ("207 KiB"), reached at least 60 ms after the start, live:
 *   leak_block 12345 (1 block), hold_peak 200000 (1 block); main holds both (212345).
 * EXPECTED AT EXIT (leaks): 12345 bytes in 1 allocation, all from leak_block. tidy_up and
 *   hold_peak hold nothing at exit.
 * Totals over the run: 12 allocations, 312345 bytes (100000 + 12345 + 200000).
 * Time line: the tracked total is never above 212345; its last value is 12345.
 *
 * Why nothing else is live: a C program's glibc makes no malloc call of its own before
 * main, nanosleep does not allocate, and nothing is printed.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static void *leaked;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

NOINLINE static void tidy_up(void) {
    void *tmp[10];
    for (int i = 0; i < 10; i++) {
        tmp[i] = malloc(10000);
        memset(tmp[i], i, 10000);
    }
    for (int i = 0; i < 10; i++) free(tmp[i]);
}

NOINLINE static void leak_block(void) {
    leaked = malloc(12345);
    memset(leaked, 1, 12345);
    escape(leaked);
}

NOINLINE static void *hold_peak(void) {
    void *p = malloc(200000);
    memset(p, 2, 200000);
    escape(p);
    return p;
}

NOINLINE static void drop_peak(void *p) { free(p); }

int main(void) {
    tidy_up();
    leak_block();
    sleep_ms(60);
    void *p = hold_peak();
    sleep_ms(40);
    drop_peak(p);
    sleep_ms(20);
    leaked = NULL; /* the block stays allocated: nothing points to it any more */
    return 0;
}
