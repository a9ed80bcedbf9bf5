/*
 * close_fds.c: a program that closes every descriptor it did not open, as daemons and
 * sandboxes do, then opens files of its own, which the kernel gives the lowest free
 * numbers: the ones a profiler's own files had. A profiler that kept writing to its old
 * numbers would write into this program's files (or truncate and map them).
 *
 * Usage: close_fds DIR MODE [dup]
 *   MODE is "exit" (free everything, exit 0) or "kill" (SIGKILL itself while the blocks
 *   are live). With "dup", the program does not close descriptors but puts its own files
 *   at every number it did not open: step 2 is skipped and, after step 3, a.txt is dup2'd
 *   onto every other open descriptor above 2. The child likewise opens c.txt and dup2s it
 *   onto every other open descriptor (those it inherited, a profiler's included), and after
 *   its first allocation checks that every one of them is still open (exit 5 if not: a
 *   profiler closed a descriptor that now names the child's file).
 *
 * What it does, in order:
 *   1. early_block: malloc(1000), kept (so a preloaded profiler has opened its files);
 *   2. closes every descriptor from 3 up to the descriptor limit (at most 65536);
 *   3. opens DIR/a.txt and DIR/b.txt and writes "a1\n" and "b1\n";
 *   4. spread: 4500 blocks of 64 bytes from 4500 distinct call stacks (13 levels of
 *      spread_a/spread_b chosen by the bits of the block's index, then spread_leaf), kept;
 *      more distinct stacks than a profiler's first table of 4096 holds;
 *   5. writes "a2\n" and "b2\n";
 *   6. forks a child, which closes every descriptor from 3 up, opens DIR/c.txt, writes
 *      "c1\n", makes its first allocation (child_block: malloc(5000)), writes "c2\n",
 *      frees it and exits 0; the parent waits for it;
 *   7. "kill": raise(SIGKILL). "exit": frees every block and returns 0.
 * The files must then hold exactly "a1\na2\n", "b1\nb2\n" and "c1\nc2\n".
 *
 * EXPECTED PEAK (this process): 289000 bytes = 1000 (early_block) + 4500 * 64 (spread_leaf),
 * all live at the end of step 5. Inclusive bytes at the peak: main 289000, spread_leaf
 * 288000, early_block 1000. The child's peak is 294000 (the 289000 it inherits, plus
 * child_block's 5000). No stdio: nothing else is allocated.
 * Exit status: 0, or 137 (SIGKILL) in "kill" mode; 3 when a file cannot be opened or
 * written, 4 when the child fails.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
/* Keeps each call a real call with its own frame (no tail call, no loop). */
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

#define BLOCKS 4500
#define LEVELS 13

static void *blocks[BLOCKS];
static void *early;

NOINLINE static void *early_block(void) { return malloc(1000); }

NOINLINE static void *spread_leaf(void) { return malloc(64); }

NOINLINE static void *spread_a(unsigned path, int level);
NOINLINE static void *spread_b(unsigned path, int level);

/* Two functions with the same body: bit `level` of `path` picks which one is called next,
 * so each path is a different sequence of return addresses (a different stack). */
#define SPREAD_BODY                                                                       \
    {                                                                                     \
        void *p;                                                                          \
        if (level == LEVELS)                                                              \
            p = spread_leaf();                                                            \
        else if ((path >> level) & 1)                                                     \
            p = spread_b(path, level + 1);                                                \
        else                                                                              \
            p = spread_a(path, level + 1);                                                \
        KEEP_FRAME();                                                                     \
        return p;                                                                         \
    }

NOINLINE static void *spread_a(unsigned path, int level) SPREAD_BODY
NOINLINE static void *spread_b(unsigned path, int level) SPREAD_BODY

NOINLINE static void *child_block(void) { return malloc(5000); }

static void close_all(void)
{
    struct rlimit lim;
    long max = 65536;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < (rlim_t)max)
        max = (long)lim.rlim_cur;
    for (long fd = 3; fd < max; fd++)
        close((int)fd);
}

/* dup2s `file` onto every open descriptor above 2 but `keep1` and `keep2`. */
static void dup_over_all(int file, int keep1, int keep2)
{
    struct rlimit lim;
    long max = 65536;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < (rlim_t)max)
        max = (long)lim.rlim_cur;
    for (long fd = 3; fd < max; fd++)
        if (fd != file && fd != keep1 && fd != keep2 && fcntl((int)fd, F_GETFD) != -1)
            dup2(file, (int)fd);
}

static int open_in(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        exit(3);
    return fd;
}

static void put(int fd, const char *text)
{
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n)
        exit(3);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4)
        return 2;
    const char *dir = argv[1];
    int kill_self = strcmp(argv[2], "kill") == 0;
    int dup_mode = argc == 4 && strcmp(argv[3], "dup") == 0;

    early = early_block();
    if (!dup_mode)
        close_all();
    int a = open_in(dir, "a.txt");
    int b = open_in(dir, "b.txt");
    if (dup_mode)
        dup_over_all(a, a, b);
    put(a, "a1\n");
    put(b, "b1\n");
    for (unsigned i = 0; i < BLOCKS; i++)
        blocks[i] = spread_a(i, 0);
    put(a, "a2\n");
    put(b, "b2\n");

    pid_t pid = fork();
    if (pid < 0)
        return 4;
    if (pid == 0) {
        if (!dup_mode)
            close_all();
        int c = open_in(dir, "c.txt");
        int opened[64], n = 0;
        if (dup_mode) {
            dup_over_all(c, c, c);
            for (int fd = 3; fd < 65536 && n < 64; fd++)
                if (fcntl(fd, F_GETFD) != -1)
                    opened[n++] = fd;
        }
        put(c, "c1\n");
        void *p = child_block();
        for (int i = 0; i < n; i++)
            if (fcntl(opened[i], F_GETFD) == -1)
                _exit(5);
        put(c, "c2\n");
        free(p);
        _exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 4;

    if (kill_self)
        raise(SIGKILL);
    for (unsigned i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    free(early);
    return 0;
}
