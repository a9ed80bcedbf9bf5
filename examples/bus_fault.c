/*
 * bus_fault.c: holds a known amount, then dies of a real SIGBUS (a store to a page of a
 * shared file mapping that lies wholly past the end of the file).
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0 -pthread`.
 * Usage: bus_fault TMPDIR
 * Creates and unlinks a temporary file in TMPDIR (mkstemp), maps one page of it while it is
 * empty, and writes to that page. Core dumps are disabled first. Exit status seen by a shell:
 * 135 (128 + SIGBUS). Exits 2 on bad usage, 3 if the setup fails, 99 if no signal came.
 * No stdio.
 *
 * EXPECTED PEAK: 250000 bytes, one malloc(250000) in bus_hold, live when the signal arrives.
 * The file mapping is not anonymous, so it is not an allocation.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static char *held;

NOINLINE static void bus_hold(void) {
    held = malloc(250000);
    memset(held, 0x44, 250000);
}

NOINLINE static void bus_touch(const char *dir) {
    char path[4096];
    size_t n = strlen(dir);
    if (n + 32 > sizeof path) _exit(2);
    memcpy(path, dir, n);
    memcpy(path + n, "/bus_fault.XXXXXX", 18);
    int fd = mkstemp(path);
    if (fd < 0) _exit(3);
    unlink(path);
    volatile char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (page == MAP_FAILED) _exit(3);
    page[0] = 1; /* the file is empty: SIGBUS */
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    bus_hold();
    bus_touch(argv[1]);
    return 99;
}
