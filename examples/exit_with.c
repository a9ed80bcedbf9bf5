/*
 * exit_with.c: exits with the code given as argv[1], holding one known block.
 *
 * Usage: exit_with CODE [return|exit|_exit]   (default: return from main)
 *   return  main returns CODE
 *   exit    exit(CODE): atexit handlers and stdio flushing run
 *   _exit   _exit(CODE): the process ends at once; no atexit handlers, no destructors
 *
 * EXPECTED PEAK: 4242 bytes, one malloc(4242) in exit_hold, still live (deliberately never
 * freed) when the process ends in every mode. Inclusive bytes at the peak: main 4242,
 * exit_hold 4242. Nothing else is allocated: no stdio, atoi/strcmp do not allocate.
 *
 * Verified (glibc 2.36, gcc 12.2, x86_64) with examples/tools/alloc_trace.c +
 * peak_from_trace.py and valgrind --trace-malloc=yes: the only call is malloc(4242), in all
 * three modes.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static char *held;

NOINLINE static void exit_hold(void) {
    held = malloc(4242);
    memset(held, 1, 4242);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int code = atoi(argv[1]);
    const char *mode = argc > 2 ? argv[2] : "return";
    exit_hold();
    if (strcmp(mode, "_exit") == 0) _exit(code);
    if (strcmp(mode, "exit") == 0) exit(code);
    return code;
}
