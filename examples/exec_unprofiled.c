/*
 * exec_unprofiled.c: a process that replaces itself with a program peakprof does not
 * profile (this file again, in mode "unprofiled", as a static or set-user-ID program
 * would be), through each exec function. The new image is left unprofiled by its
 * environment: no LD_PRELOAD and an empty PEAKPROF_OUT_DIR. (Without the empty variable
 * the preload would give the child its settings back, as it does for any child started
 * with an environment of its own.)
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0 -pthread`.
 * Usage: exec_unprofiled MODE
 *   execve execv execvp execvpe execl execlp execle fexecve
 *               before_exec malloc(300000), then that exec function runs this program as
 *               "unprofiled". The profiled image's end must read "exec" (not "killed"):
 *               peak 300000.
 *   exec_fail   before_exec malloc(300000); execve of a path that does not exist must fail
 *               with ENOENT (else exit 3); after_fail malloc(1000); then SIGKILL itself.
 *               The failed exec must not count: the image reads "killed", peak 301000.
 *   vfork       before_exec malloc(300000); vfork, and the child execs "unprofiled"; the
 *               parent waits (exit 4 unless the child exited 5), after_vfork malloc(1000),
 *               then SIGKILL itself. The child's exec is not the parent's: the parent reads
 *               "killed", and its allocation after the vfork is recorded (peak 301000).
 *   exec_race   sets PATH to 3000 missing directories and then this program's own (so
 *               execvp tries 3000 paths before it finds it), before_exec malloc(300000),
 *               starts a thread that calls a failing execl over and over, then execvp runs
 *               this program as "unprofiled". The failures overlap the successful call:
 *               the image must still read "exec" (before_exec 300000).
 *   unprofiled  exits 5 when LD_PRELOAD is absent from its environment (6 otherwise).
 * No stdio.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static void *held[2];

NOINLINE static void before_exec(void) {
    held[0] = malloc(300000);
    memset(held[0], 1, 300000);
}

NOINLINE static void after_fail(void) {
    held[1] = malloc(1000);
    memset(held[1], 2, 1000);
}

NOINLINE static void after_vfork(void) {
    held[1] = malloc(1000);
    memset(held[1], 3, 1000);
}

/* exec_race's other thread: exec calls that fail, until the process is replaced. */
static void *fail_forever(void *arg) {
    (void)arg;
    /* Mostly outside the call: a failure that wiped the mark instead of taking its own
     * count back would leave nothing marked when the other thread's exec succeeds. */
    for (;;) {
        execl("/nonexistent/peakprof-test", "x", (char *)NULL);
        usleep(50);
    }
    return NULL;
}

/* exec_race: PATH = 3000 missing directories, then the directory of this program. */
static int set_long_path(void) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    static char path[3000 * 24 + 4096];
    size_t len = 0;
    for (int i = 0; i < 3000; i++)
        len += (size_t)snprintf(path + len, sizeof path - len, "/nonexistent/d%04d:", i);
    snprintf(path + len, sizeof path - len, "%s", exe);
    return setenv("PATH", path, 1);
}

/* The environment without LD_PRELOAD, for the functions that take one. */
static char *clean_env[] = {"PATH=/usr/bin:/bin", "PEAKPROF_OUT_DIR=", NULL};

/* `environ` made to ask for an unprofiled child, without allocating (setenv would, and
 * change the peak): LD_PRELOAD removed, PEAKPROF_OUT_DIR emptied in place. */
static void unprofiled_environ(void) {
    static char empty_dir[] = "PEAKPROF_OUT_DIR=";
    unsetenv("LD_PRELOAD");
    for (char **e = environ; *e; e++)
        if (strncmp(*e, empty_dir, sizeof empty_dir - 1) == 0)
            *e = empty_dir;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    const char *mode = argv[1];
    const char *self = "/proc/self/exe";
    if (strcmp(mode, "unprofiled") == 0)
        return getenv("LD_PRELOAD") ? 6 : 5;
    if (strcmp(mode, "exec_race") == 0) {
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0 || set_long_path() != 0)
            return 2;
        exe[n] = '\0';
        char *name = strrchr(exe, '/') + 1;
        unprofiled_environ();
        before_exec();
        pthread_t t;
        if (pthread_create(&t, NULL, fail_forever, NULL) != 0)
            return 2;
        char *race_argv[] = {name, "unprofiled", NULL};
        execvp(name, race_argv);
        return 9;
    }
    before_exec();
    char *child_argv[] = {argv[0], "unprofiled", NULL};
    if (strcmp(mode, "exec_fail") == 0) {
        execve("/nonexistent/peakprof-test", child_argv, clean_env);
        if (errno != ENOENT)
            return 3;
        after_fail();
        raise(SIGKILL);
        return 1;
    }
    if (strcmp(mode, "vfork") == 0) {
        pid_t pid = vfork();
        if (pid == 0) {
            execve(self, child_argv, clean_env);
            _exit(127);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 5)
            return 4;
        after_vfork();
        raise(SIGKILL);
        return 1;
    }
    /* The functions that use `environ` get one without LD_PRELOAD (unsetenv allocates
     * nothing; setenv would, and change the peak). The p variants get a path with a slash,
     * which they run without searching PATH. */
    unprofiled_environ();
    const char *name = self;
    if (strcmp(mode, "execve") == 0)
        execve(self, child_argv, clean_env);
    else if (strcmp(mode, "execv") == 0)
        execv(self, child_argv);
    else if (strcmp(mode, "execvp") == 0)
        execvp(name, child_argv);
    else if (strcmp(mode, "execvpe") == 0)
        execvpe(name, child_argv, clean_env);
    else if (strcmp(mode, "execl") == 0)
        execl(self, name, "unprofiled", (char *)NULL);
    else if (strcmp(mode, "execlp") == 0)
        execlp(name, name, "unprofiled", (char *)NULL);
    else if (strcmp(mode, "execle") == 0)
        execle(self, name, "unprofiled", (char *)NULL, clean_env);
    else if (strcmp(mode, "fexecve") == 0) {
        int fd = open(self, O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            fexecve(fd, child_argv, clean_env);
    } else
        return 2;
    return 9; /* the exec failed */
}
