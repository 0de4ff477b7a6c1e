/* threaded: -t N threads block in accept() on one listener; every accepted
 * connection is served and closed by a thread of its own. */
#include "common.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256

struct conn {
    int fd;
    char ip[IP_STR];
};

static void *serve(void *arg)
{
    struct conn *c = arg;
    struct linebuf lb = {0};

    while (srv_serve_read(c->fd, &lb))
        ;
    close(c->fd);
    srv_log("close", c->ip);
    free(c);
    return NULL;
}

static void hand_off(int fd, const struct sockaddr_storage *ss)
{
    struct conn *c = malloc(sizeof *c);
    pthread_attr_t attr;
    pthread_t t;

    if (!c) {
        close(fd);
        return;
    }
    c->fd = fd;
    srv_peer_str(ss, c->ip);
    srv_log("accept", c->ip);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, serve, c) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        close(fd);
        free(c);
    }
    pthread_attr_destroy(&attr);
}

static void *acceptor(void *arg)
{
    int lfd = *(int *)arg;
    struct timespec pause = {0, 10 * 1000 * 1000};

    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept(lfd, (struct sockaddr *)&ss, &len);

        if (fd >= 0) {
            srv_check_peer(fd, &ss, len);
            hand_off(fd, &ss);
            continue;
        }
        fprintf(stderr, "accept error(%d)\n", errno);
        if (errno != EAGAIN && errno != ECONNABORTED && errno != EINTR)
            nanosleep(&pause, NULL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static const char usage[] = "threaded -l ADDR -p PORT [-a LOG] [-t THREADS]";
    struct srv_args a = {"127.0.0.1", 0, NULL};
    pthread_t t;
    sigset_t set;
    int opt, nthreads = 4, sig;
    static int lfd;

    while ((opt = getopt(argc, argv, "l:p:a:t:")) != -1) {
        if (srv_common_opt(&a, opt, optarg))
            continue;
        if (opt != 't')
            srv_usage_exit(usage);
        nthreads = srv_atoi(optarg, 1, MAX_THREADS);
    }
    lfd = srv_listen(&a);
    srv_log_open(a.log);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&t, NULL, acceptor, &lfd) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    srv_ready(lfd);
    sigwait(&set, &sig);
    return 0;
}
