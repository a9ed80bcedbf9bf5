/*
 * dlopen_lib.c: a shared library loaded at run time by dlopen_main.c.
 *
 * Built by tests/e2e_robust.rs with `gcc -g -O0 -shared -fPIC`.
 * dl_lib_entry() calls dl_lib_alloc(), which mallocs 123456 bytes and returns them to the
 * caller, who keeps them after the library is dlclose'd (the block belongs to the program's
 * heap, not to the library). dl_lib_temp() mallocs and frees 5000 bytes.
 */
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

NOINLINE void *dl_lib_alloc(void) {
    void *p = malloc(123456);
    memset(p, 7, 123456);
    return p;
}

void *dl_lib_entry(void) {
    void *p = dl_lib_alloc();
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}
