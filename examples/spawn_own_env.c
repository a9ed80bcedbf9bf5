/*
 * spawn_own_env.c: a parent that starts this program again as a child with an environment
 * of its own ("FOO=bar" only: no LD_PRELOAD, no PEAKPROF_*), as `env -i`, Python's
 * `subprocess.run(env=...)` do. peakprof must still
 * profile the child: the preload gives it the run's settings back.
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0 -pthread`.
 * Usage: spawn_own_env MODE
 *   execve execvpe execle fexecve   fork, and the child runs "child" through that function
 *                                   with the environment {"FOO=bar"}
 *   execv execvp execl execlp       fork, clearenv() then putenv("FOO=bar"), and that
 *                                   function (these pass `environ` on)
 *   vfork                           vfork, and the child execve()s with {"FOO=bar"}
 *   small_stack                     as execve, from a thread whose stack is the minimum
 *                                   (PTHREAD_STACK_MIN) that forks
 *   alt_stack                       as execve, from a SIGUSR1 handler running on a
 *                                   12 KiB alternate stack in the forked child
 *   big_env N                       as execve, with "FOO=bar" and N more variables: past
 *                                   ~1000 entries the environment is passed on as it is
 *                                   (the child then runs unprofiled)
 *   foreign_preload                 as execve, with {"FOO=bar", "LD_PRELOAD=<libm>"}: the
 *                                   child must keep libm preloaded, after peakprof's library
 *   child                           exits 7 unless FOO is "bar" (8 unless LD_PRELOAD ends
 *                                   in libm when FOO_PRELOAD=1 is set too); child_hold
 *                                   mallocs 3000000 bytes, kept to the end.
 * Every parent first mallocs 200000 bytes in parent_hold (kept), waits for the child, and
 * exits 0 if the child exited 0, else 4.
 * No stdio, but snprintf into static buffers (big_env), which allocates nothing.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define LIBM "/lib/x86_64-linux-gnu/libm.so.6"

static void *held;

NOINLINE static void parent_hold(void) {
    held = malloc(200000);
    memset(held, 1, 200000);
}

NOINLINE static void child_hold(void) {
    held = malloc(3000000);
    memset(held, 2, 3000000);
}

static int child(void) {
    const char *foo = getenv("FOO");
    if (!foo || strcmp(foo, "bar") != 0)
        return 7;
    const char *check = getenv("FOO_PRELOAD");
    if (check && strcmp(check, "1") == 0) {
        const char *list = getenv("LD_PRELOAD");
        size_t n = list ? strlen(list) : 0;
        if (n < strlen(LIBM) || strcmp(list + n - strlen(LIBM), LIBM) != 0)
            return 8;
    }
    child_hold();
    return 0;
}

static char *own_env[] = {"FOO=bar", NULL};
static char *foreign_env[] = {"FOO=bar", "FOO_PRELOAD=1", "LD_PRELOAD=" LIBM, NULL};
static char foo_entry[] = "FOO=bar";

/* big_env's environment: FOO=bar and up to BIG_MAX more (static: no allocation). */
#define BIG_MAX 2000
static char big_names[BIG_MAX][16];
static char *big_env[BIG_MAX + 2];

static char **make_big_env(int n) {
    if (n < 0 || n > BIG_MAX)
        n = 0;
    big_env[0] = foo_entry;
    for (int i = 0; i < n; i++) {
        snprintf(big_names[i], sizeof big_names[i], "V%d=x", i);
        big_env[i + 1] = big_names[i];
    }
    big_env[n + 1] = NULL;
    return big_env;
}

static int big_count;

/* Runs in the forked (or vforked) child: execs this program as "child". */
static void exec_child(const char *mode, const char *self) {
    char *argv[] = {"spawn_own_env", "child", NULL};
    if (strcmp(mode, "execve") == 0 || strcmp(mode, "vfork") == 0 ||
        strcmp(mode, "small_stack") == 0)
        execve(self, argv, own_env);
    else if (strcmp(mode, "foreign_preload") == 0)
        execve(self, argv, foreign_env);
    else if (strcmp(mode, "big_env") == 0)
        execve(self, argv, make_big_env(big_count));
    else if (strcmp(mode, "execvpe") == 0)
        execvpe(self, argv, own_env);
    else if (strcmp(mode, "execle") == 0)
        execle(self, "spawn_own_env", "child", (char *)NULL, own_env);
    else if (strcmp(mode, "fexecve") == 0) {
        int fd = open(self, O_RDONLY);
        if (fd >= 0)
            fexecve(fd, argv, own_env);
    } else {
        /* The functions that pass `environ` on. */
        clearenv();
        putenv(foo_entry);
        if (strcmp(mode, "execv") == 0)
            execv(self, argv);
        else if (strcmp(mode, "execvp") == 0)
            execvp(self, argv);
        else if (strcmp(mode, "execl") == 0)
            execl(self, "spawn_own_env", "child", (char *)NULL);
        else if (strcmp(mode, "execlp") == 0)
            execlp(self, "spawn_own_env", "child", (char *)NULL);
    }
    _exit(127);
}

static const char *exe_path;

static void exec_from_handler(int sig) {
    (void)sig;
    char *argv[] = {"spawn_own_env", "child", NULL};
    execve(exe_path, argv, own_env);
    _exit(127);
}

/* alt_stack's forked child: execs from a signal handler on a small alternate stack. */
static void exec_on_alt_stack(const char *self) {
    /* 12 KiB: under glibc's SIGSTKSZ on AVX-512 machines (~13 KiB), as a program sizing
     * its alternate stack by it would have. */
    static char alt[12 << 10];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = exec_from_handler;
    sa.sa_flags = SA_ONSTACK;
    exe_path = self;
    if (sigaltstack(&ss, NULL) == 0 && sigaction(SIGUSR1, &sa, NULL) == 0)
        raise(SIGUSR1);
    _exit(127);
}

/* small_stack: fork from a thread with the smallest stack, which the child keeps. */
struct fork_result {
    const char *self;
    pid_t pid;
};

static void *fork_on_small_stack(void *arg) {
    struct fork_result *r = arg;
    r->pid = fork();
    if (r->pid == 0)
        exec_child("small_stack", r->self);
    return NULL;
}

static pid_t fork_from_small_thread(const char *self) {
    struct fork_result r = {self, -1};
    pthread_attr_t attr;
    pthread_t t;
    if (pthread_attr_init(&attr) != 0 || pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN) != 0 ||
        pthread_create(&t, &attr, fork_on_small_stack, &r) != 0 || pthread_join(t, NULL) != 0)
        return -1;
    return r.pid;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    const char *mode = argv[1];
    if (strcmp(mode, "child") == 0)
        return child();
    if (strcmp(mode, "big_env") == 0)
        big_count = argc > 2 ? atoi(argv[2]) : 0;
    /* A path the exec functions run without searching PATH (the child's has none). */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 2;
    self[n] = '\0';
    parent_hold();
    pid_t pid;
    if (strcmp(mode, "small_stack") == 0) {
        pid = fork_from_small_thread(self);
    } else if (strcmp(mode, "alt_stack") == 0) {
        pid = fork();
        if (pid == 0)
            exec_on_alt_stack(self);
    } else if (strcmp(mode, "vfork") == 0) {
        pid = vfork();
        if (pid == 0)
            exec_child(mode, self);
    } else {
        pid = fork();
        if (pid == 0)
            exec_child(mode, self);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 3;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 4;
}
