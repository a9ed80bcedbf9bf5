/*
 * dlopen_main.c: loads a library with dlopen, calls its allocating function, dlcloses it, and
 * only then ends, still holding the block the library allocated.
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0` (no -ldl needed with glibc 2.34+; the test
 * passes -ldl anyway for older ones). Usage: dlopen_main LIBRARY.so [ROUNDS]
 * Each of ROUNDS rounds (default 1) dlopens the library, calls dl_lib_entry and keeps the
 * block it returns, then dlcloses the library (so it is unmapped, and usually mapped again
 * at the same address by the next round). Writes "dlopen_main: done\n" with write(2) and
 * exits 0 when everything worked, 1 when dlopen/dlsym/dlclose failed. No stdio.
 *
 * EXPECTED: ROUNDS blocks of 123456 bytes, each allocated in the library's dl_lib_alloc
 * (called from dl_lib_entry, called from main), are live at the peak and at exit, after the
 * library was unloaded. The loader's own allocations for the library (link map, scope
 * arrays, ...) are also live while it is loaded; they are not part of this example's exact
 * ground truth.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *kept[64];

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int rounds = argc > 2 ? atoi(argv[2]) : 1;
    if (rounds < 1 || rounds > 64) return 2;
    for (int i = 0; i < rounds; i++) {
        void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!h) return 1;
        void *(*entry)(void) = (void *(*)(void))dlsym(h, "dl_lib_entry");
        if (!entry) return 1;
        kept[i] = entry();
        if (!kept[i]) return 1;
        /* RTLD_LOCAL and no other reference: the library is unmapped here. */
        if (dlclose(h) != 0) return 1;
    }
    if (write(1, "dlopen_main: done\n", 18) < 0) return 1;
    return 0;
}
