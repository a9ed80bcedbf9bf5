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
 *   fork_overlap  the same blocks, but the parent moves on while the child still runs: right
 *              after the fork it calls parent_after and frees parent_hold's block, then
 *              lets the child go on (a pipe), and only then waits for it. The child's
 *              counters must be those it inherited at the fork, not the parent's later ones.
 *   fork_idle  parent_hold malloc(100000); fork; the child ends with _exit(0) at once, with no
 *              allocation or free of its own; the parent waits, then parent_after
 *              malloc(20000), and exits 0.
 *   exec       parent_hold malloc(100000); fork; the child: child_prep malloc(777) (so the
 *              forked image records something of its own), then execv of this program with
 *              the argument "exec-child". The parent waits and exits 0 when the child exited 0.
 *   exec-child exec_child_alloc malloc(55555), then exits 0.
 *   orphan     parent_hold malloc(100000); fork; the parent exits 0 at once; the child waits
 *              until it is orphaned (its parent pid changes), then child_alloc malloc(30000)
 *              and exit(0). Its profile must still name the parent that forked it.
 *   grandchild parent_hold malloc(100000); fork; the child forks again before any event of
 *              its own (so before it has files of its own); the grandchild: grandchild_alloc
 *              malloc(50000), exit(0); the child waits for it, then child_alloc
 *              malloc(30000) and exit(0) (1 when the grandchild failed). The parent waits,
 *              then parent_after. The grandchild's profile must name the child as its
 *              parent, not the process whose files the child still used when it forked.
 *   vfork_fail parent_hold malloc(100000); fork; the child vforks before any event of its
 *              own; the vfork child execs a path that does not exist and _exits 127; the
 *              child then child_alloc malloc(30000) and exit(0) (1 unless it saw 127). The
 *              vfork child's _exit must not end the child's profile.
 *   vfork_alloc  the same, but the vfork child first vfork_alloc mallocs 777 (in the
 *              child's memory, which it shares, never freed) and then execs this program
 *              with "exec-child"; the child expects status 0. After its own allocation the
 *              child must hold no descriptor of another process's .log (the vfork child
 *              made the child's files in its own descriptor table): else it exits 5.
 * No stdio.
 *
 * EXPECTED PEAKS (a forked child's profile starts from the blocks it inherited):
 *   fork, fork_exit, fork_overlap: parent 120000 (parent_hold 100000, parent_after 20000); child 130000
 *     (parent_hold 100000, inherited; child_alloc 30000).
 *   fork_idle: parent 120000; the child leaves no profile (it held only its parent's blocks).
 *   orphan: parent 100000; child 130000, ppid = the parent's pid.
 *   vfork_fail: parent 120000; child 130000 (parent_hold, child_alloc), ppid = the
 *     parent's pid. The vfork child leaves no profile.
 *   vfork_alloc: parent 120000; child 130777 (parent_hold, vfork_alloc 777, child_alloc),
 *     pid = the child's own; the exec'd image 55555, ppid = the child's pid.
 *   grandchild: parent 120000; child 130000 (parent_hold, child_alloc), ppid = the parent's
 *     pid; grandchild 150000 (parent_hold 100000 inherited, grandchild_alloc 50000), ppid =
 *     the child's pid.
 *   exec: parent 100000 (parent_hold); the forked image before exec 100777 (parent_hold
 *     100000 inherited, child_prep 777); the exec'd image 55555 (exec_child_alloc).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
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

NOINLINE static void grandchild_alloc(void) {
    held[1] = malloc(50000);
    memset(held[1], 6, 50000);
}

NOINLINE static void vfork_alloc(void) {
    held[3] = malloc(777);
    memset(held[3], 7, 777);
}

NOINLINE static void exec_child_alloc(void) {
    held[0] = malloc(55555);
    memset(held[0], 5, 55555);
}

/* Whether this process has a descriptor open on a profiler log (".log" in a "/raw/"
 * directory) of another process (its name not starting with "<own pid>-"). System calls
 * and stack buffers only: opendir would malloc, and change the peak being checked. */
static int holds_foreign_log(void) {
    char own[24];
    int n = 0;
    for (pid_t p = getpid(); p > 0; p /= 10) own[n++] = (char)('0' + p % 10);
    char prefix[24];
    for (int i = 0; i < n; i++) prefix[i] = own[n - 1 - i];
    prefix[n] = '-';
    prefix[n + 1] = 0;
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY);
    if (dir < 0) return 1;
    char buf[4096];
    int found = 0;
    long got;
    while (!found && (got = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
        for (long off = 0; off < got;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            if (d->d_name[0] == '.') continue;
            char target[4096];
            ssize_t len = readlinkat(dir, d->d_name, target, sizeof target - 1);
            if (len <= 4) continue;
            target[len] = 0;
            const char *base = strrchr(target, '/');
            if (strstr(target, "/raw/") && strcmp(target + len - 4, ".log") == 0 && base &&
                strncmp(base + 1, prefix, strlen(prefix)) != 0)
                found = 1;
        }
    }
    close(dir);
    return found;
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
    int overlap = strcmp(mode, "fork_overlap") == 0;
    int idle = strcmp(mode, "fork_idle") == 0;
    int orphan = strcmp(mode, "orphan") == 0;
    int grandchild = strcmp(mode, "grandchild") == 0;
    int vfork_fail = strcmp(mode, "vfork_fail") == 0;
    int vfork_then_alloc = strcmp(mode, "vfork_alloc") == 0;
    if (!exec && !fast && !overlap && !idle && !orphan && !grandchild && !vfork_fail &&
        !vfork_then_alloc && strcmp(mode, "fork") != 0)
        return 2;

    int go[2];
    if (pipe(go) != 0) return 6;
    parent_hold();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return 4;
    if (orphan && pid > 0) return 0;
    if (pid == 0) {
        char c;
        /* Up to 10 s for the parent to be gone. */
        for (int i = 0; orphan && getppid() == parent; i++) {
            if (i == 10000) _exit(7);
            usleep(1000);
        }
        if (overlap && read(go[0], &c, 1) != 1) _exit(6);
        if (idle) _exit(0);
        if (grandchild) {
            pid_t g = fork();
            if (g < 0) _exit(4);
            if (g == 0) {
                grandchild_alloc();
                exit(0);
            }
            int st = 0;
            if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0) _exit(1);
        }
        if (vfork_fail || vfork_then_alloc) {
            pid_t v = vfork();
            if (v < 0) _exit(4);
            if (v == 0) {
                if (vfork_fail) {
                    execl("/nonexistent/fork_exec", "fork_exec", (char *)NULL);
                } else {
                    vfork_alloc();
                    execl("/proc/self/exe", argv[0], "exec-child", (char *)NULL);
                }
                _exit(127);
            }
            int st = 0;
            int want = vfork_fail ? 127 : 0;
            if (waitpid(v, &st, 0) != v || !WIFEXITED(st) || WEXITSTATUS(st) != want) _exit(1);
        }
        if (exec) {
            child_prep();
            char *args[] = {argv[0], "exec-child", NULL};
            execv("/proc/self/exe", args);
            _exit(127);
        }
        child_alloc();
        if (vfork_then_alloc && holds_foreign_log()) _exit(5);
        if (fast) _exit(0);
        exit(0);
    }
    if (overlap) {
        parent_after();
        free(held[0]);
        if (write(go[1], "g", 1) != 1) return 6;
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return 5;
    if (!exec && !overlap) parent_after();
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
