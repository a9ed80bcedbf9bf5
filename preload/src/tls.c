/* Per-thread state of the preload, in initial-exec TLS: accessing it never allocates and
 * never takes a lock, so it is safe inside malloc, during thread start-up and tear-down. */
#include <stdint.h>

static __thread int32_t in_hook __attribute__((tls_model("initial-exec")));

/* Returns 1 and marks the thread as inside a hook, or 0 when it already was. */
int32_t peakprof_guard_enter(void) {
    if (in_hook)
        return 0;
    in_hook = 1;
    return 1;
}

void peakprof_guard_leave(void) { in_hook = 0; }

int32_t peakprof_guard_active(void) { return in_hook; }
