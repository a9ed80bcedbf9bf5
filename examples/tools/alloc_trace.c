/*
 * alloc_trace.c: an independent, deliberately simple LD_PRELOAD logger used to verify the
 * ground truth written at the top of each example. It is NOT part of peakprof and shares no
 * code with it: it exists so that the expected numbers in tests/e2e_peak.rs come from a
 * second implementation (besides valgrind, ltrace and heaptrack, which do not see mmap or
 * replace malloc themselves).
 *
 * It interposes the same entry points peakprof hooks (malloc family, anonymous
 * mmap/mmap64/munmap/mremap) and appends one line per call to $ALLOC_TRACE_FILE:
 *   <op> <tid> <args...> | <return addresses, innermost first>
 * peak_from_trace.py replays the log, finds the moment of peak total, and symbolizes the
 * live set at that moment.
 *
 * Build: gcc -O1 -g -shared -fPIC -o alloc_trace.so alloc_trace.c -lgcc_s -ldl
 * Use:   ALLOC_TRACE_FILE=/tmp/t.log LD_PRELOAD=./alloc_trace.so ./prog args
 *
 * The real allocator is reached through glibc's exported __libc_* entry points (no dlsym,
 * hence no bootstrap problem); mmap and friends go straight to the kernel through syscall().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <unwind.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

static __thread int in_hook;  /* calls made while logging are the logger's own: not logged */
static int log_fd = -2;       /* -2: not opened yet, -1: no log file requested */

#define MAX_FRAMES 48

struct bt { uintptr_t ip[MAX_FRAMES]; int n; };

static _Unwind_Reason_Code bt_cb(struct _Unwind_Context *ctx, void *arg) {
    struct bt *b = arg;
    if (b->n >= MAX_FRAMES) return _URC_END_OF_STACK;
    b->ip[b->n++] = _Unwind_GetIP(ctx);
    return _URC_NO_REASON;
}

static char *put_str(char *p, const char *s) { while (*s) *p++ = *s++; return p; }
static char *put_hex(char *p, uintptr_t v) {
    char tmp[20]; int n = 0;
    p = put_str(p, "0x");
    do { tmp[n++] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}
static char *put_dec(char *p, uintptr_t v) {
    char tmp[24]; int n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

static void dump_maps(const char *tag) {
    char buf[4096];
    int fd = open("/proc/self/maps", O_RDONLY);
    if (fd < 0) return;
    char *p = put_str(buf, tag);
    write(log_fd, buf, (size_t)(p - buf));
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) write(log_fd, buf, (size_t)r);
    close(fd);
    write(log_fd, "END_MAPS\n", 9);
}

static int ensure_log(void) {
    if (log_fd == -2) {
        const char *path = getenv("ALLOC_TRACE_FILE");
        log_fd = path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644) : -1;
        if (log_fd >= 0) dump_maps("MAPS\n");
    }
    return log_fd >= 0;
}

/* One line per event, written with a single write(2) so threads do not interleave. */
static void log_event(const char *op, int nargs, ...) {
    if (in_hook) return;
    in_hook = 1;
    int saved = errno;
    if (ensure_log()) {
        char line[2048];
        char *p = put_str(line, op);
        *p++ = ' ';
        p = put_dec(p, (uintptr_t)syscall(SYS_gettid));
        va_list ap; va_start(ap, nargs);
        for (int i = 0; i < nargs; i++) { *p++ = ' '; p = put_hex(p, va_arg(ap, uintptr_t)); }
        va_end(ap);
        struct bt b; b.n = 0;
        _Unwind_Backtrace(bt_cb, &b);
        p = put_str(p, " |");
        /* ip[0] is inside log_event, ip[1] inside the interposed function: skip both. */
        for (int i = 2; i < b.n && p < line + sizeof line - 24; i++) { *p++ = ' '; p = put_hex(p, b.ip[i]); }
        *p++ = '\n';
        write(log_fd, line, (size_t)(p - line));
    }
    errno = saved;
    in_hook = 0;
}

static void crash_handler(int sig) { signal(sig, SIG_DFL); raise(sig); }

/* With ALLOC_TRACE_CRASH_HANDLERS set, SIGSEGV and SIGBUS get a handler before main, as a
 * profiler that writes its profile on a crash does. Programs can notice: Rust's std, for one,
 * then skips its own stack-overflow handler, its alternate signal stack and its thread-info
 * map. This option shows what such a program allocates under such a profiler. */
__attribute__((constructor)) static void trace_init(void) {
    in_hook = 1;
    ensure_log();
    if (getenv("ALLOC_TRACE_CRASH_HANDLERS")) {
        signal(SIGSEGV, crash_handler);
        signal(SIGBUS, crash_handler);
    }
    in_hook = 0;
}
__attribute__((destructor)) static void trace_fini(void) {
    in_hook = 1;
    if (ensure_log()) dump_maps("MAPS_AT_EXIT\n");
    in_hook = 0;
}

void *malloc(size_t n) { void *p = __libc_malloc(n); log_event("malloc", 2, n, p); return p; }
void *calloc(size_t a, size_t b) { void *p = __libc_calloc(a, b); log_event("calloc", 3, a, b, p); return p; }
void *realloc(void *o, size_t n) { void *p = __libc_realloc(o, n); log_event("realloc", 3, o, n, p); return p; }
void *reallocarray(void *o, size_t a, size_t b) {
    size_t n;
    if (__builtin_mul_overflow(a, b, &n)) { errno = ENOMEM; return NULL; }
    void *p = __libc_realloc(o, n);
    log_event("reallocarray", 4, o, a, b, p);
    return p;
}
void free(void *o) { __libc_free(o); if (o) log_event("free", 1, o); }
int posix_memalign(void **out, size_t al, size_t n) {
    void *p = __libc_memalign(al, n);
    if (!p) return ENOMEM;
    *out = p;
    log_event("posix_memalign", 3, al, n, p);
    return 0;
}
void *aligned_alloc(size_t al, size_t n) { void *p = __libc_memalign(al, n); log_event("aligned_alloc", 3, al, n, p); return p; }
void *memalign(size_t al, size_t n) { void *p = __libc_memalign(al, n); log_event("memalign", 3, al, n, p); return p; }
void *valloc(size_t n) { void *p = __libc_valloc(n); log_event("valloc", 2, n, p); return p; }
void *pvalloc(size_t n) { void *p = __libc_pvalloc(n); log_event("pvalloc", 2, n, p); return p; }

static void *raw_mmap(void *a, size_t len, int prot, int flags, int fd, off_t off) {
    long r = syscall(SYS_mmap, a, len, prot, flags, fd, off);
    return (void *)r;  /* syscall() already maps -errno to -1 and sets errno */
}
void *mmap(void *a, size_t len, int prot, int flags, int fd, off_t off) {
    void *p = raw_mmap(a, len, prot, flags, fd, off);
    log_event("mmap", 5, a, len, (uintptr_t)flags, (uintptr_t)(intptr_t)fd, p);
    return p;
}
void *mmap64(void *a, size_t len, int prot, int flags, int fd, off_t off) {
    void *p = raw_mmap(a, len, prot, flags, fd, off);
    log_event("mmap64", 5, a, len, (uintptr_t)flags, (uintptr_t)(intptr_t)fd, p);
    return p;
}
int munmap(void *a, size_t len) {
    long r = syscall(SYS_munmap, a, len);
    log_event("munmap", 3, a, len, (uintptr_t)r);
    return (int)r;
}
void *mremap(void *o, size_t olen, size_t nlen, int flags, ...) {
    void *want = NULL;
    if (flags & MREMAP_FIXED) { va_list ap; va_start(ap, flags); want = va_arg(ap, void *); va_end(ap); }
    void *p = (void *)syscall(SYS_mremap, o, olen, nlen, flags, want);
    log_event("mremap", 5, o, olen, nlen, (uintptr_t)flags, p);
    return p;
}
