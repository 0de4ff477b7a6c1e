/* prefork: -w N worker processes share one blocking listener; each worker
 * accepts one connection at a time and serves it until EOF. */
#include "common.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 256

static void serve(int fd, const struct sockaddr_storage *ss)
{
    struct linebuf lb = {0};
    char ip[IP_STR];

    srv_peer_str(ss, ip);
    srv_log("accept", ip);
    while (srv_serve_read(fd, &lb))
        ;
    close(fd);
    srv_log("close", ip);
}

static void accept_failed(int err)
{
    struct timespec pause = {0, 10 * 1000 * 1000};

    if (err == EINTR)
        return;
    fprintf(stderr, "accept error(%d)\n", err);
    if (err != EAGAIN && err != ECONNABORTED)
        nanosleep(&pause, NULL);
}

static void worker(int lfd)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept(lfd, (struct sockaddr *)&ss, &len);

        if (fd < 0) {
            accept_failed(errno);
            continue;
        }
        srv_check_peer(fd, &ss, len);
        serve(fd, &ss);
    }
}

/* Reports workers that die; SIGTERM ends everything (srv_exit_on_term). */
static void supervise(void)
{
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, 0);

        if (pid < 0 && errno == ECHILD)
            return;
        if (pid > 0) {
            srv_untrack_child(pid);
            fprintf(stderr, "worker %d exited (status %d)\n", (int)pid, st);
        }
    }
}

int main(int argc, char **argv)
{
    static const char usage[] = "prefork -l ADDR -p PORT [-a LOG] [-w WORKERS]";
    struct srv_args a = {"127.0.0.1", 0, NULL};
    int opt, nworkers = 4, lfd;

    while ((opt = getopt(argc, argv, "l:p:a:w:")) != -1) {
        if (srv_common_opt(&a, opt, optarg))
            continue;
        if (opt != 'w')
            srv_usage_exit(usage);
        nworkers = srv_atoi(optarg, 1, MAX_WORKERS);
    }
    lfd = srv_listen(&a);
    srv_log_open(a.log);
    srv_exit_on_term();
    for (int i = 0; i < nworkers; i++) {
        pid_t parent = getpid(), pid = fork();

        if (pid == 0) {
            srv_child_init(parent);
            worker(lfd);
        }
        if (pid < 0)
            perror("fork");
        else
            srv_track_child(pid);
    }
    srv_ready(lfd);
    supervise();
    return 0;
}
