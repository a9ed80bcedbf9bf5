/*
 * signal_dispositions.c: prints, for each signal named on the command line (INT, QUIT, HUP,
 * TERM, SEGV, BUS, CHLD, USR1, USR2), or for SIGSEGV and SIGBUS when none is named, what it
 * does when main starts, one line each:
 *   SIGSEGV default      or   SIGSEGV handled      or   SIGSEGV ignored
 * followed by " blocked" when the signal is blocked (named signals only).
 * Exits 0 (2 for a name it does not know). Allocates nothing before printing (printf's
 * stdout buffer, one malloc of the pipe's or file's block size, comes with the first line).
 *
 * Why it exists:
 * - A preloaded profiler that installs crash handlers before main changes what some
 *   programs allocate. Rust's std installs its stack-overflow handler, with an alternate
 *   signal stack (an anonymous mmap) and a thread-info map, only when at least one of
 *   SIGSEGV and SIGBUS has the default action at startup (see examples/peak_rust.rs). The
 *   tests run this under `peakprof run` to know which of the two ground truths of
 *   peak_rust applies.
 * - A signal the program inherits ignored (`nohup`, a background job of a non-interactive
 *   shell, a daemon's SIGCHLD) must reach it ignored under `peakprof run` too, and one
 *   it inherits blocked, blocked.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char *disposition(int sig) {
    struct sigaction old;
    if (sigaction(sig, NULL, &old) != 0) return "unknown";
    if (old.sa_handler == SIG_IGN) return "ignored";
    return old.sa_handler == SIG_DFL ? "default" : "handled";
}

static const struct {
    const char *name;
    int sig;
} known[] = {
    {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"HUP", SIGHUP},
    {"TERM", SIGTERM}, {"SEGV", SIGSEGV}, {"BUS", SIGBUS}, {"CHLD", SIGCHLD},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},
};

int main(int argc, char **argv) {
    if (argc < 2) {
        const char *segv = disposition(SIGSEGV);
        const char *bus = disposition(SIGBUS);
        printf("SIGSEGV %s\nSIGBUS %s\n", segv, bus);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        int sig = 0;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (strcmp(argv[i], known[k].name) == 0) sig = known[k].sig;
        if (sig == 0) {
            fprintf(stderr, "signal_dispositions: unknown signal name %s\n", argv[i]);
            return 2;
        }
        sigset_t mask;
        int blocked = sigprocmask(SIG_BLOCK, NULL, &mask) == 0 && sigismember(&mask, sig) == 1;
        printf("SIG%s %s%s\n", argv[i], disposition(sig), blocked ? " blocked" : "");
    }
    return 0;
}
