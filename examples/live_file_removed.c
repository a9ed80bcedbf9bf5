/*
 * live_file_removed.c: the process's live file is removed during the run, then its
 * counters outgrow it, then it forks.
 *
 * Exists because when the live file cannot grow (removed, as here, or a full disk) its
 * counters move to anonymous memory but its header stays a shared mapping of the file,
 * and a forked child then kept sharing that header with its parent: the parent's frees
 * after the fork emptied the child's totals (the child's peak read 30000).
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0 -pthread`. No arguments.
 *   1. unlinks every *.live file in $PEAKPROF_OUT_DIR (the raw directory peakprof run
 *      gives the preload): this process's own live file
 *   2. 8192 distinct call paths (as many_stacks.c), each leaf_hold mallocs
 *      8 * (1 + p % 32) bytes: the live file, made for 4096, would have to grow
 *   3. fork; the parent frees every block, then lets the child go on (a pipe) and waits
 *      for it; the child then child_alloc mallocs 30000 and exits 0
 * Exits 0 when the child exited 0, 1 otherwise; 2 when the directory cannot be read.
 * No stdio.
 *
 * EXPECTED PEAKS: parent 1081344 (the 8192 blocks, see many_stacks.c; opendir's buffer is
 * freed before the first of them); child 1111344 (the 8192 blocks it inherited, and
 * child_alloc 30000).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define DEPTH 13
#define PATHS (1u << DEPTH)

#include "distinct_paths.h"

static void *blocks[PATHS];

NOINLINE static void leaf_hold(unsigned p) {
    blocks[p] = malloc(8 * (1 + p % 32));
    KEEP_FRAME();
}

NOINLINE static void child_alloc(void) {
    void *q = malloc(30000);
    memset(q, 1, 30000);
}

static int remove_live_files(void) {
    const char *dir = getenv("PEAKPROF_OUT_DIR");
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".live") == 0) unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
    return 0;
}

int main(void) {
    if (remove_live_files() != 0) return 2;
    for (unsigned p = 0; p < PATHS; p++) step(DEPTH, p, p);
    int go[2];
    if (pipe(go) != 0) return 1;
    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) {
        char c;
        if (read(go[0], &c, 1) != 1) _exit(1);
        child_alloc();
        exit(0);
    }
    for (unsigned p = 0; p < PATHS; p++) free(blocks[p]);
    if (write(go[1], "g", 1) != 1) return 1;
    int status = 0;
    if (waitpid(child, &status, 0) != child) return 1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
