/*
 * exec_ignoring.c: runs a program with some signals ignored, as a daemon or `nohup` leaves
 * them for the programs it starts (exec keeps an ignored signal ignored), or blocked (exec
 * keeps the signal mask too).
 *
 * Usage: exec_ignoring NAME... -- PROGRAM [ARGS...]
 *   NAME: INT, QUIT, HUP, TERM, CHLD, PIPE, USR1 or USR2 to ignore that signal;
 *   block:NAME to block it instead.
 * Exits 2 for bad usage, 127 when PROGRAM cannot be run; otherwise becomes PROGRAM.
 * Allocates nothing.
 *
 * Why it exists: a shell cannot always do this (dash's `trap '' CHLD` does not reach the
 * programs it execs), and the tests need SIGCHLD ignored in peakprof's own parent: the
 * kernel then reaps peakprof's children by itself.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *name;
    int sig;
} known[] = {
    {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"HUP", SIGHUP},
    {"TERM", SIGTERM}, {"CHLD", SIGCHLD}, {"PIPE", SIGPIPE},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
};

int main(int argc, char **argv) {
    sigset_t blocked;
    sigemptyset(&blocked);
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *name = argv[i];
        int block = strncmp(name, "block:", 6) == 0;
        if (block) name += 6;
        int sig = 0;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (strcmp(name, known[k].name) == 0) sig = known[k].sig;
        if (sig == 0) {
            fprintf(stderr, "exec_ignoring: unknown signal name %s\n", argv[i]);
            return 2;
        }
        if (block)
            sigaddset(&blocked, sig);
        else
            signal(sig, SIG_IGN);
    }
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    if (i + 1 >= argc) {
        fprintf(stderr, "usage: exec_ignoring NAME... -- PROGRAM [ARGS...]\n");
        return 2;
    }
    execvp(argv[i + 1], argv + i + 1);
    perror("exec_ignoring: exec");
    return 127;
}
