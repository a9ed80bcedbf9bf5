/* The variadic members of the exec family, for exec.rs (stable Rust cannot define a
 * variadic function). Each collects its arguments into an argv on its own stack, as glibc
 * does, and calls the profiler's execve or execvp, which mark the image's live file. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>

extern char **environ;
int peakprof_execve_marked(const char *path, char *const argv[], char *const envp[]);
int peakprof_execvp_marked(const char *file, char *const argv[]);

/* Sets `n` to the number of arguments from `arg` up to (not counting) the terminating
 * NULL; -1 when absurdly many. */
#define COUNT_ARGS(arg, n)                                                                     \
    do {                                                                                       \
        va_list ap;                                                                            \
        va_start(ap, arg);                                                                     \
        for (n = 1; va_arg(ap, const char *) != NULL; n++)                                    \
            if (n > 1 << 20) {                                                                 \
                n = -1;                                                                        \
                break;                                                                         \
            }                                                                                  \
        va_end(ap);                                                                            \
    } while (0)

/* Fills argv[0..n] (argv[n] = NULL) from `arg` and the variadic list `*ap`. */
static void fill(const char **argv, long n, const char *arg, va_list *ap) {
    argv[0] = arg;
    for (long i = 1; i <= n; i++)
        argv[i] = va_arg(*ap, const char *);
}

/* Declares `argv` (on the stack, as glibc does) holding `arg` and the variadic arguments up
 * to their NULL, and leaves `ap` just past that NULL (execle's environment follows it);
 * returns -1 (E2BIG) from the caller when there are absurdly many. */
#define BUILD_ARGV(arg, argv, ap)                                                              \
    long n_;                                                                                   \
    COUNT_ARGS(arg, n_);                                                                       \
    if (n_ < 0) {                                                                              \
        errno = E2BIG;                                                                         \
        return -1;                                                                             \
    }                                                                                          \
    const char *argv[n_ + 1];                                                                  \
    va_list ap;                                                                                \
    va_start(ap, arg);                                                                         \
    fill(argv, n_, arg, &ap)

int peakprof_execl(const char *path, const char *arg, ...) {
    BUILD_ARGV(arg, argv, ap);
    va_end(ap);
    return peakprof_execve_marked(path, (char *const *)argv, environ);
}

int peakprof_execlp(const char *file, const char *arg, ...) {
    BUILD_ARGV(arg, argv, ap);
    va_end(ap);
    return peakprof_execvp_marked(file, (char *const *)argv);
}

/* execle: the environment follows the NULL that ends the arguments. */
int peakprof_execle(const char *path, const char *arg, ...) {
    BUILD_ARGV(arg, argv, ap);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return peakprof_execve_marked(path, (char *const *)argv, envp);
}

/* For child_env.rs: calls `body(array, room, ctx)` with `pointers` null pointers and
 * `bytes` zero bytes on this stack, sized exactly (a completed environment for an exec,
 * which may run where the stack is small: a signal handler's alternate stack, a thread
 * made with a minimal one). At least one of each, so neither array is empty. */
void peakprof_on_stack(size_t pointers, size_t bytes,
                       void (*body)(const char **array, char *room, void *ctx), void *ctx) {
    const char *array[pointers ? pointers : 1];
    char room[bytes ? bytes : 1];
    for (size_t i = 0; i < (pointers ? pointers : 1); i++)
        array[i] = NULL;
    for (size_t i = 0; i < (bytes ? bytes : 1); i++)
        room[i] = 0;
    body(array, room, ctx);
}
