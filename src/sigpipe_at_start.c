/*
 * sigpipe_at_start.c: notes, before Rust's runtime starts, whether peakprof was started with
 * SIGPIPE ignored. Linked into the peakprof binary only (build.rs).
 *
 * Why C: Rust's runtime sets SIGPIPE to ignored before `main` (stable Rust has no way to keep
 * it), and its process spawning gives the child the default action. A program started with
 * SIGPIPE ignored (systemd starts services so, and many supervisors do) would then run
 * under peakprof with the default action, and die of a write to a closed pipe or socket
 * where it would get EPIPE. A constructor runs before `main`, so it still sees what
 * peakprof inherited; it leaves the answer in the environment for launch.rs, which passes
 * it to the preload with the other signals to ignore again (and not this variable).
 */
#include <signal.h>
#include <stdlib.h>

__attribute__((constructor)) static void peakprof_note_sigpipe(void) {
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_IGN)
        setenv("PEAKPROF_SIGPIPE_AT_START", "ignored", 1);
    else
        unsetenv("PEAKPROF_SIGPIPE_AT_START"); /* not one inherited from elsewhere */
}
