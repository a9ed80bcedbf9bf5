/*
 * fork_threads_memo.c: forks while other threads are alive, and prints how many of the
 * profiler's unwinder memo buffers wait for a new thread, in the parent and in the child:
 *   parent free 0
 *   child free 6
 *   child free after its threads 6
 * Exits 0 (3 when not run under peakprof: the count comes from the preloaded library).
 *
 * Why it exists: each thread that allocates gets a memo set (~22 KiB) from the profiler,
 * given back to a free list when the thread ends. A fork child has only the thread that
 * forked; the buffers of the others used to be lost to it (and the free list's lock, if
 * another thread held it at the fork, stayed held forever in the child).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 6

static pthread_barrier_t ready;
/* Where the threads' blocks go, so the compiler keeps the malloc/free pairs. */
static void *volatile sink;
static int release_fds[2];

static void *parked(void *arg) {
    (void)arg;
    /* An allocation: the thread's first stack capture takes a memo buffer. */
    sink = malloc(64);
    free(sink);
    pthread_barrier_wait(&ready);
    char c;
    if (read(release_fds[0], &c, 1) != 1) abort();
    return 0;
}

static void *brief(void *arg) {
    (void)arg;
    sink = malloc(64);
    free(sink);
    return 0;
}

int main(void) {
    size_t (*free_buffers)(void) =
        (size_t (*)(void))dlsym(RTLD_DEFAULT, "peakprof_debug_free_memo_buffers");
    if (!free_buffers) {
        fprintf(stderr, "fork_threads_memo: not running under peakprof\n");
        return 3;
    }
    if (pipe(release_fds) != 0) return 1;
    pthread_barrier_init(&ready, 0, THREADS + 1);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], 0, parked, 0) != 0) return 1;
    pthread_barrier_wait(&ready);
    printf("parent free %zu\n", free_buffers());
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        printf("child free %zu\n", free_buffers());
        pthread_t u[THREADS];
        for (int i = 0; i < THREADS; i++)
            if (pthread_create(&u[i], 0, brief, 0) != 0) _exit(1);
        for (int i = 0; i < THREADS; i++) pthread_join(u[i], 0);
        printf("child free after its threads %zu\n", free_buffers());
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return 1;
    char go[THREADS] = {0};
    if (write(release_fds[1], go, THREADS) != THREADS) return 1;
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
