/*
 * vfork_limit.c: a vfork child takes the heap it shares with its parent past --limit.
 *
 * Exists because the vfork child then acted on the limit itself: it wrote the oom report
 * and was stopped (121), leaving the profiler state it shares with its parent marked, so
 * the parent ran on unrecorded and its profile read as killed. Only the process whose
 * memory it is (the parent) acts on the limit now, at its next event.
 *
 * Built by tests/e2e_reports.rs with `gcc -g -O0 -pthread`. No arguments. No stdio.
 *   1. parent_hold: malloc(300000)
 *   2. vfork; the vfork child: vfork_alloc malloc(300000) (in the parent's memory, never
 *      freed), then _exit(6)
 *   3. the parent checks that the child exited 6 (else exits 1), then after_vfork
 *      malloc(10) and exits 0.
 *
 * EXPECTED with --limit 500000 (stop): the total first passes the limit in the vfork child
 * (600000); the parent is stopped at its next event, after_vfork: exit 121, end
 * limit-stop, peak 600010 (parent_hold 300000, vfork_alloc 300000, after_vfork 10).
 * Without a limit: exit 0, peak 600010.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static void *held[3];

NOINLINE static void parent_hold(void) {
    held[0] = malloc(300000);
    memset(held[0], 1, 300000);
}

NOINLINE static void vfork_alloc(void) {
    held[1] = malloc(300000);
}

NOINLINE static void after_vfork(void) {
    held[2] = malloc(10);
    memset(held[2], 3, 10);
}

int main(void) {
    parent_hold();
    pid_t v = vfork();
    if (v < 0) return 4;
    if (v == 0) {
        vfork_alloc();
        _exit(6);
    }
    int st = 0;
    if (waitpid(v, &st, 0) != v || !WIFEXITED(st) || WEXITSTATUS(st) != 6) return 1;
    after_vfork();
    return 0;
}
