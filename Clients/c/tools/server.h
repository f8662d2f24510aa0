/* Runs a real `vigil serve` for the tests: a temporary data directory, a
 * free port (or a given one, to restart on the same address), its log in a
 * file. Not part of libvigil. */
#ifndef VIGIL_TOOLS_SERVER_H
#define VIGIL_TOOLS_SERVER_H

#include <sys/types.h>

typedef struct vserver {
    const char *bin;
    char data_dir[512];
    char log_path[600];
    char address[64];
    int port;
    pid_t pid;
    int starts;
} vserver;

/* Starts the server on `port` (0: a free one) with the data directory;
 * extra arguments end with NULL. Waits for "listening on". 0 or -1. */
int server_start(vserver *s, const char *const *extra);
/* Starts any program that logs "listening on HOST:PORT" (argv ends with
 * NULL); its log goes to data_dir.logN. */
int process_start(vserver *s, const char *const *argv);
/* Sends the signal and waits for the process to end. */
void server_stop(vserver *s, int sig);
/* Removes a directory tree. */
void remove_tree(const char *path);

#endif
