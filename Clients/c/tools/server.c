#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int server_start(vserver *s, const char *const *extra) {
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", s->port);
    const char *argv[64];
    int n = 0;
    argv[n++] = s->bin;
    argv[n++] = "serve";
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--data-dir";
    argv[n++] = s->data_dir;
    argv[n++] = "--retention";
    argv[n++] = "forever";
    for (int i = 0; extra && extra[i] && n < 62; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    return process_start(s, argv);
}

int process_start(vserver *s, const char *const *argv) {
    s->starts++;
    snprintf(s->log_path, sizeof s->log_path, "%s.log%d", s->data_dir, s->starts);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    s->pid = pid;
    /* Wait for "listening on HOST:PORT" in the log. */
    for (int i = 0; i < 600; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "server exited during start; log %s\n", s->log_path);
            s->pid = 0;
            return -1;
        }
        FILE *f = fopen(s->log_path, "r");
        if (f) {
            char line[1024];
            while (fgets(line, sizeof line, f)) {
                char *p = strstr(line, "listening on ");
                if (!p) continue;
                p += strlen("listening on ");
                char *colon = strrchr(p, ':');
                if (!colon) continue;
                int port = atoi(colon + 1);
                if (port > 0) {
                    s->port = port;
                    snprintf(s->address, sizeof s->address, "127.0.0.1:%d", port);
                    fclose(f);
                    return 0;
                }
            }
            fclose(f);
        }
        sleep_ms(50);
    }
    fprintf(stderr, "server did not start within 30 s; log %s\n", s->log_path);
    server_stop(s, SIGKILL);
    return -1;
}

void server_stop(vserver *s, int sig) {
    if (s->pid <= 0) return;
    kill(s->pid, sig);
    int status;
    while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR) {
    }
    s->pid = 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void remove_tree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }
