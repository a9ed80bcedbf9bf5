/*
 * many_children.c: a parent that forks N children one after another, each allocating a
 * different known amount, so a run has more processes than peakprof renders reports for.
 *
 * Usage: many_children [N]   (default 40)
 * Built with `gcc -g -O0 -pthread`. No stdio.
 *
 * The parent: parent_hold malloc(500), kept; then for i = 0..N-1: fork, and wait for the
 * child. Child i: child_work malloc((i + 1) * 1000), free it, exit 0.
 *
 * EXPECTED PEAKS: the parent 500 (parent_hold); child i 500 + (i + 1) * 1000 (the inherited
 * parent_hold block plus its own). Exit status 0, or 1 if a child failed.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

NOINLINE static void *parent_hold(void) { return malloc(500); }

NOINLINE static void child_work(size_t n)
{
    char *p = malloc(n);
    memset(p, 1, n);
    free(p);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 40;
    void *held = parent_hold();
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            child_work((size_t)(i + 1) * 1000);
            exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 1;
    }
    free(held);
    return 0;
}
