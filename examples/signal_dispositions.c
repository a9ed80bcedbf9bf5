/*
 * signal_dispositions.c: prints, for SIGSEGV and SIGBUS, whether the signal still has its
 * default action when main starts, one line each:
 *   SIGSEGV default      or   SIGSEGV handled
 *   SIGBUS default       or   SIGBUS handled
 * Exits 0. Allocates nothing before printing (printf's stdout buffer, one malloc of the
 * pipe's or file's block size, comes with the first line).
 *
 * Why it exists: a preloaded profiler that installs crash handlers before main changes what
 * some programs allocate. Rust's std installs its stack-overflow handler, with an alternate
 * signal stack (an anonymous mmap) and a thread-info map, only when at least one of SIGSEGV
 * and SIGBUS has the default action at startup (see examples/peak_rust.rs). The tests run this
 * under `peakprof run` to know which of the two ground truths of peak_rust applies.
 */
#include <signal.h>
#include <stdio.h>

static const char *disposition(int sig) {
    struct sigaction old;
    if (sigaction(sig, NULL, &old) != 0) return "unknown";
    return old.sa_handler == SIG_DFL ? "default" : "handled";
}

int main(void) {
    const char *segv = disposition(SIGSEGV);
    const char *bus = disposition(SIGBUS);
    printf("SIGSEGV %s\nSIGBUS %s\n", segv, bus);
    return 0;
}
