/*
 * ctrl_files.h: how a waiting example and its test talk through files in a directory DIR,
 * with no allocation (no stdio, no snprintf), so the example's peak stays what it says.
 *   signal_file(DIR, NAME, TEXT)  writes TEXT to DIR/NAME atomically (DIR/NAME.tmp, then
 *                                 renamed); exits 4 when it cannot
 *   say_ready(DIR)                signal_file of this process's pid and a newline to
 *                                 DIR/ready
 *   wait_for_file(DIR, NAME)      polls (2 ms) until DIR/NAME exists; exits 3 after 60 s
 * Shared by hold_and_wait.c and main_thread_exits.c. A path longer than 4095 bytes exits 2.
 */
#ifndef CTRL_FILES_H
#define CTRL_FILES_H

#include <fcntl.h>
#include <stdio.h> /* rename(2) only; no stdio stream is ever used */
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char ctrl_path[4096];

static const char *in_dir(const char *dir, const char *name) {
    size_t n = strlen(dir), m = strlen(name);
    if (n + m + 2 > sizeof ctrl_path) _exit(2);
    memcpy(ctrl_path, dir, n);
    ctrl_path[n] = '/';
    memcpy(ctrl_path + n + 1, name, m + 1);
    return ctrl_path;
}

static void signal_file(const char *dir, const char *name, const char *text) {
    char tmp[4096], final[4096];
    strcpy(final, in_dir(dir, name));
    strcpy(tmp, final);
    strcat(tmp, ".tmp");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) _exit(4);
    if (write(fd, text, strlen(text)) < 0) _exit(4);
    close(fd);
    if (rename(tmp, final) != 0) _exit(4);
}

static void say_ready(const char *dir) {
    char text[32], digits[16];
    int n = 0, k = 0;
    for (long p = getpid(); p > 0; p /= 10) digits[k++] = (char)('0' + p % 10);
    while (k > 0) text[n++] = digits[--k];
    text[n++] = '\n';
    text[n] = 0;
    signal_file(dir, "ready", text);
}

static void wait_for_file(const char *dir, const char *name) {
    const struct timespec tick = {0, 2 * 1000 * 1000};
    struct stat st;
    for (int i = 0; i < 30000; i++) {
        if (stat(in_dir(dir, name), &st) == 0) return;
        nanosleep(&tick, NULL);
    }
    _exit(3);
}

#endif
