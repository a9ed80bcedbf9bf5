/* churn: many small malloc/free pairs made from deep, varied call stacks.
 *
 * usage: churn [N]        N = number of malloc/free pairs (default 20,000,000)
 *
 * This is the worst case for a profiler that records a call stack on every allocation:
 * the allocations are cheap (small sizes served from tcache/fastbins), the stacks are
 * 20-40 frames deep, and there are a few hundred distinct stacks, so a profiler cannot
 * get away with caching one stack per call site.
 *
 * Built -O2 -g without -fno-omit-frame-pointer, like a Debian package: a profiler has to
 * unwind with DWARF CFI (or however else it copes), not by walking frame pointers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Blocks stay live in this ring until a later iteration lands on the same slot. The slot
 * is picked pseudo-randomly, so lifetimes are geometric (mean RING iterations) rather than
 * a fixed FIFO delay, and the live set stays small (about RING blocks, ~260 KiB). */
#define RING 1000
static void *ring[RING];
static uint64_t checksum;

/* splitmix64: a cheap deterministic hash of the iteration number, so every run (and every
 * profiler) sees exactly the same sequence of sizes, slots and stacks. */
static inline uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The empty asm after each call keeps the call from being a tail call (which -O2 would
 * turn into a jump, dropping the frame) and stops gcc from turning the recursion into a
 * loop, so the stacks really are as deep as they claim. */
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

__attribute__((noinline)) static void leaf(uint64_t h)
{
    /* 16..512 bytes in steps of 8 (63 sizes). Not every byte size: heaptrack 1.4.0's
     * interpreter (Debian bookworm) grows without bound on 497 sizes x 700 stacks
     * (KDE bug 477018, tsl::robin_set hashing); see benches/README.md. */
    size_t size = 16 + 8 * ((h >> 40) % 63);
    unsigned slot = (unsigned)((h >> 16) % RING);
    free(ring[slot]);
    char *p = malloc(size);
    if (!p) {
        fprintf(stderr, "churn: out of memory\n");
        exit(2);
    }
    p[0] = (char)h;          /* touch it, as a real program would */
    p[size - 1] = (char)(h >> 8);
    ring[slot] = p;
    checksum += (uintptr_t)p & 0xfff;
}

static void rec_a(uint64_t h, unsigned path, int depth);
static void rec_b(uint64_t h, unsigned path, int depth);

/* Two mutually recursive helpers: at each of the first 5 levels, one bit of `path` picks
 * which one is called next, so the same depth reached through different paths gives
 * different stacks. 32 paths x 11 depths = 352 distinct stacks. */
__attribute__((noinline)) static void rec_a(uint64_t h, unsigned path, int depth)
{
    if (depth == 0) {
        leaf(h);
    } else if ((path >> (depth % 5)) & 1) {
        rec_b(h, path, depth - 1);
    } else {
        rec_a(h, path, depth - 1);
    }
    KEEP_FRAME();
}

__attribute__((noinline)) static void rec_b(uint64_t h, unsigned path, int depth)
{
    if (depth == 0) {
        leaf(h ^ 1);
    } else if ((path >> (depth % 5)) & 1) {
        rec_a(h, path, depth - 1);
    } else {
        rec_b(h, path, depth - 1);
    }
    KEEP_FRAME();
}

__attribute__((noinline)) static void one(uint64_t i)
{
    uint64_t h = mix(i);
    unsigned path = (unsigned)(h & 31);
    int depth = 18 + 2 * (int)((h >> 5) % 11); /* 18..38 helpers + main/one/leaf = 21..41 frames */
    rec_a(h, path, depth);
    KEEP_FRAME();
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000000ull;
    for (uint64_t i = 0; i < n; i++)
        one(i);
    for (unsigned i = 0; i < RING; i++)
        free(ring[i]);
    /* Printed so the work cannot be optimised away; the runner discards stdout. */
    printf("churn: %llu pairs, checksum %llu\n", (unsigned long long)n,
           (unsigned long long)checksum);
    return 0;
}
