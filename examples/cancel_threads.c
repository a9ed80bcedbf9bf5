/*
 * cancel_threads.c: threads allocating in a loop are cancelled (deferred cancellation,
 * pthread_testcancel) over and over; then main allocates once more. A preloaded profiler
 * whose hook reaches a cancellation point (open, read, write, close) is cancelled there:
 * the unwind aborts the program (it cannot pass through the hook) or, if it could, would
 * leave the profiler's lock held and the next allocation waiting forever.
 *
 * Usage: cancel_threads [ROUNDS]   (default 50). Built with `gcc -g -O0 -pthread`.
 * Prints "ok\n" (write(2), no stdio) and exits 0; exits 1 if a thread was not cancelled.
 *
 * EXPECTED: final_block malloc(5000000) is live at the peak, with little else (a cancelled
 * worker can leave its last 100-byte block); the peak is 5000000 plus at most a few KiB.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

NOINLINE static void *work_block(void) { return malloc(100); }

static void *worker(void *arg)
{
    (void)arg;
    for (;;) {
        void *volatile p = work_block();
        free(p);
        pthread_testcancel();
    }
    return NULL;
}

NOINLINE static void *final_block(void) { return malloc(5000000); }

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 50;
    for (int r = 0; r < rounds; r++) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
            pthread_create(&t[i], NULL, worker, NULL);
        usleep(2000);
        for (int i = 0; i < 4; i++)
            pthread_cancel(t[i]);
        for (int i = 0; i < 4; i++) {
            void *res;
            pthread_join(t[i], &res);
            if (res != PTHREAD_CANCELED)
                return 1;
        }
    }
    void *volatile big = final_block();
    if (write(1, "ok\n", 3) != 3)
        return 1;
    free(big);
    return 0;
}
