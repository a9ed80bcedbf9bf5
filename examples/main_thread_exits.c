/*
 * main_thread_exits.c: the main thread ends with pthread_exit while a second thread runs
 * on and ends the process.
 *
 * Exists because the profile was once written with the process facts read through
 * /proc/self, the thread-group leader's view: once the main thread has ended the leader is
 * a zombie without a memory map, so the command line read as empty and the executable's
 * path as unknown (every frame of the executable an unnamed address).
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0 -pthread`. Usage: main_thread_exits MODE
 *   exit      the worker ends the process with exit(7)                -> exit status 7
 *   return    the worker returns; the process ends with the last thread -> exit status 0
 *   wait DIR  as return, but first the worker writes its pid to DIR/ready (DIR/ready.tmp,
 *             renamed) and waits (up to 60 s, else exit 3) for DIR/go to exist: a report
 *             made meanwhile must see the process as still running, although
 *             /proc/PID/cmdline, the leader's, reads as empty
 * The worker waits (up to 10 s, else exit 3) until the main thread is gone, which it sees
 * as /proc/self/exe no longer being readable, then allocates and ends as MODE says. Exit 2
 * on bad usage, 4 when DIR/ready cannot be written. No stdio.
 *
 * EXPECTED, at the peak (nothing is freed; the peak is at the end):
 *   main_hold    malloc(1000)     1000
 *   worker_hold  malloc(500000)   500000
 * plus what glibc allocates for the thread (its DTV, in pthread_create) and for unwinding
 * the main thread (pthread_exit loads libgcc_s), which vary with glibc's version.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctrl_files.h"

#define NOINLINE __attribute__((noinline))

static void *held[2];
static int exit_mode;
static const char *wait_dir;

NOINLINE static void main_hold(void) {
    held[0] = malloc(1000);
    memset(held[0], 1, 1000);
}

NOINLINE static void worker_hold(void) {
    held[1] = malloc(500000);
    memset(held[1], 2, 500000);
}

/* Whether the thread-group leader still has its memory map. */
static int leader_alive(void) {
    char buf[4096];
    return readlink("/proc/self/exe", buf, sizeof buf) >= 0;
}

static void *worker(void *arg) {
    (void)arg;
    const struct timespec ms = {0, 1000000};
    for (int i = 0; leader_alive(); i++) {
        if (i == 10000) _exit(3);
        nanosleep(&ms, NULL);
    }
    worker_hold();
    if (exit_mode) exit(7);
    if (wait_dir) {
        say_ready(wait_dir);
        wait_for_file(wait_dir, "go");
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (strcmp(argv[1], "exit") == 0)
        exit_mode = 1;
    else if (strcmp(argv[1], "wait") == 0 && argc > 2)
        wait_dir = argv[2];
    else if (strcmp(argv[1], "return") != 0)
        return 2;
    main_hold();
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) return 1;
    pthread_exit(NULL);
}
