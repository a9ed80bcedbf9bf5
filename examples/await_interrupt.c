/*
 * await_interrupt.c: waits for SIGINT or SIGQUIT and records who sent each one, so a test can
 * tell a signal peakprof passed on (si_code SI_USER, si_pid = peakprof) from one the terminal
 * sent the whole process group (SI_KERNEL, si_pid 0), and count them.
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0 -pthread`.
 * Usage: await_interrupt DIR exit|until-term
 *   1. catches SIGINT, SIGQUIT and SIGTERM (handlers record; main does the I/O)
 *   2. writes its pid to DIR/ready (written to DIR/ready.tmp, then renamed)
 *   3. waits. After each SIGINT or SIGQUIT it rewrites DIR/got (the same way) with one line
 *      per such signal received so far, in order: `SIGINT si_code=0 si_pid=1234`.
 *      `exit`: then exits 7 (the first was SIGINT) or 8 (SIGQUIT).
 *      `until-term`: goes on waiting; SIGTERM ends it with 0 (DIR/got rewritten first when a
 *      SIGINT or SIGQUIT came with it).
 * After 60 s without an ending it dies of SIGALRM (exit 142 under peakprof), so a test whose
 * signal never arrives fails instead of hanging. Exits 2 on bad usage, 4 when a file cannot
 * be written. Allocates nothing; no stdio.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h> /* rename(2) only; no stdio stream is ever used */
#include <string.h>
#include <unistd.h>

#define MAX_SEEN 16

static volatile sig_atomic_t seen_count, terminated;
static struct {
    int signo, code;
    pid_t pid;
} seen[MAX_SEEN];

static void on_signal(int signo, siginfo_t *info, void *ctx) {
    (void)ctx;
    if (signo == SIGTERM) {
        terminated = 1;
        return;
    }
    int n = seen_count;
    if (n < MAX_SEEN) {
        seen[n].signo = signo;
        seen[n].code = info->si_code;
        seen[n].pid = info->si_pid;
        seen_count = n + 1;
    }
}

static char *append(char *at, const char *end, const char *s) {
    while (*s && at < end) *at++ = *s++;
    return at;
}

static char *append_int(char *at, const char *end, long v) {
    char digits[24];
    int n = 0;
    unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;
    do digits[n++] = (char)('0' + u % 10); while ((u /= 10) > 0);
    if (v < 0 && at < end) *at++ = '-';
    while (n > 0 && at < end) *at++ = digits[--n];
    return at;
}

/* Writes `len` bytes of `text` to DIR/name atomically (DIR/name.tmp, then rename). */
static void publish(const char *dir, const char *name, const char *text, size_t len) {
    char tmp[4096], final[4096];
    if (strlen(dir) + strlen(name) + 6 > sizeof final) _exit(2);
    strcpy(final, dir);
    strcat(final, "/");
    strcat(final, name);
    strcpy(tmp, final);
    strcat(tmp, ".tmp");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) _exit(4);
    if (write(fd, text, len) != (ssize_t)len) _exit(4);
    close(fd);
    if (rename(tmp, final) != 0) _exit(4);
}

static void publish_seen(const char *dir, int n) {
    char text[MAX_SEEN * 64];
    char *at = text, *end = text + sizeof text;
    for (int i = 0; i < n; i++) {
        at = append(at, end, seen[i].signo == SIGINT ? "SIGINT" : "SIGQUIT");
        at = append(at, end, " si_code=");
        at = append_int(at, end, seen[i].code);
        at = append(at, end, " si_pid=");
        at = append_int(at, end, seen[i].pid);
        at = append(at, end, "\n");
    }
    publish(dir, "got", text, (size_t)(at - text));
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *dir = argv[1];
    int exit_on_first = strcmp(argv[2], "exit") == 0;
    if (!exit_on_first && strcmp(argv[2], "until-term") != 0) return 2;

    /* The handled signals are blocked except inside sigsuspend, so none can arrive between
     * checking the counters and waiting. */
    sigset_t handled, during_wait;
    sigemptyset(&handled);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGQUIT);
    sigaddset(&handled, SIGTERM);
    sigprocmask(SIG_BLOCK, &handled, &during_wait);
    sigdelset(&during_wait, SIGINT);
    sigdelset(&during_wait, SIGQUIT);
    sigdelset(&during_wait, SIGTERM);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sa.sa_mask = handled;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    char pid[32];
    char *end = append_int(pid, pid + sizeof pid - 1, getpid());
    *end++ = '\n';
    publish(dir, "ready", pid, (size_t)(end - pid));

    alarm(60);
    int published = 0;
    for (;;) {
        sigsuspend(&during_wait);
        int n = seen_count;
        if (n > published) {
            publish_seen(dir, n);
            published = n;
            if (exit_on_first) _exit(seen[0].signo == SIGINT ? 7 : 8);
        }
        if (terminated) _exit(0);
    }
}
