/*
 * fork_exec.c: a parent that forks a child, which either allocates and exits or execs a new
 * program image (itself, in another mode).
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0 -pthread`.
 * Usage: fork_exec MODE
 *   fork       parent_hold malloc(100000); fork; the child: child_alloc malloc(30000), then
 *              exit(0). The parent waits for it, then parent_after malloc(20000), and exits 0
 *              when the child exited 0 (1 otherwise). Nothing is freed.
 *   fork_exit  the same, but the child ends with _exit(0) instead of exit(0).
 *   exec       parent_hold malloc(100000); fork; the child: child_prep malloc(777) (so the
 *              forked image records something of its own), then execv of this program with
 *              the argument "exec-child". The parent waits and exits 0 when the child exited 0.
 *   exec-child exec_child_alloc malloc(55555), then exits 0.
 * No stdio.
 *
 * EXPECTED PEAKS (a forked child's profile starts from the blocks it inherited):
 *   fork, fork_exit: parent 120000 (parent_hold 100000, parent_after 20000); child 130000
 *     (parent_hold 100000, inherited; child_alloc 30000).
 *   exec: parent 100000 (parent_hold); the forked image before exec 100777 (parent_hold
 *     100000 inherited, child_prep 777); the exec'd image 55555 (exec_child_alloc).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static void *held[4];

NOINLINE static void parent_hold(void) {
    held[0] = malloc(100000);
    memset(held[0], 1, 100000);
}

NOINLINE static void parent_after(void) {
    held[1] = malloc(20000);
    memset(held[1], 2, 20000);
}

NOINLINE static void child_alloc(void) {
    held[2] = malloc(30000);
    memset(held[2], 3, 30000);
}

NOINLINE static void child_prep(void) {
    held[3] = malloc(777);
    memset(held[3], 4, 777);
}

NOINLINE static void exec_child_alloc(void) {
    held[0] = malloc(55555);
    memset(held[0], 5, 55555);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *mode = argv[1];
    if (strcmp(mode, "exec-child") == 0) {
        exec_child_alloc();
        return 0;
    }
    int exec = strcmp(mode, "exec") == 0;
    int fast = strcmp(mode, "fork_exit") == 0;
    if (!exec && !fast && strcmp(mode, "fork") != 0) return 2;

    parent_hold();
    pid_t pid = fork();
    if (pid < 0) return 4;
    if (pid == 0) {
        if (exec) {
            child_prep();
            char *args[] = {argv[0], "exec-child", NULL};
            execv("/proc/self/exe", args);
            _exit(127);
        }
        child_alloc();
        if (fast) _exit(0);
        exit(0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return 5;
    if (!exec) parent_after();
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
