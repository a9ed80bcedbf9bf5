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

/* Bounds of the current thread's stack, found once per thread: the fast unwinder reads
 * only inside them. 0/0 until known; 1/1 when they cannot be known. */
static __thread uintptr_t stack_lo __attribute__((tls_model("initial-exec")));
static __thread uintptr_t stack_hi __attribute__((tls_model("initial-exec")));

void peakprof_stack_bounds(uintptr_t *lo, uintptr_t *hi) {
    *lo = stack_lo;
    *hi = stack_hi;
}

void peakprof_set_stack_bounds(uintptr_t lo, uintptr_t hi) {
    stack_lo = lo;
    stack_hi = hi;
}
