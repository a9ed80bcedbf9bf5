/*
 * open_max.c: opens /dev/null until the descriptor limit refuses (EMFILE), then prints how
 * many it opened and exits 0. Run under a low limit (`ulimit -n 8`), it shows how many of
 * its descriptors a preloaded library takes from it.
 *
 * Usage: open_max   prints "opened N\n"; exit 0, or 1 if open failed for another reason.
 *        open_max keep   the same, but exits 3 at the limit, every descriptor still open
 *                        and the block not freed: a profiler that needs a descriptor to
 *                        write its final profile finds none.
 * EXPECTED PEAK: 100 bytes (one malloc(100), freed at the end, or with `keep` still live
 * at exit; nothing else allocates).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int keep = argc > 1 && strcmp(argv[1], "keep") == 0;
    void *p = malloc(100); /* the profiler has started: its files are open */
    int n = 0, fds[4096];
    for (;;) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0) {
            if (errno != EMFILE)
                return 1;
            break;
        }
        if (n < 4096)
            fds[n] = fd;
        n++;
    }
    if (!keep)
        for (int i = 0; i < n && i < 4096; i++)
            close(fds[i]);
    char line[32];
    int len = snprintf(line, sizeof line, "opened %d\n", n); /* no stdio buffer: no malloc */
    if (write(1, line, (size_t)len) != len)
        return 1;
    if (keep)
        return 3;
    free(p);
    return 0;
}
