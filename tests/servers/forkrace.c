/* forkrace: servers whose fds change while they fork (tests/integration/forkrace.bats).
 *
 * Threaded (default): two threads block in accept(); each connection is
 * served by a thread of its own and closed by it (-m says how); meanwhile
 *   -F N   a thread forks N times, each child calling _exit(0) at once (or
 *          after -k USEC, holding its copies of every fd meanwhile), the
 *          parent waiting for it; then prints "forks=N"
 *   -C N   a thread connects from 127.0.0.3 N times (PING, PONG, close),
 *          so that accepts and closes overlap the forks; then prints
 *          "churn=N ok=K"
 * Poll (-P): one thread, poll() over the listener and every connection;
 *   SIGUSR1: daemon(1, noclose) (-n: noclose 0); the surviving process logs
 *            "daemon PID" in the accept log
 *   SIGUSR2: a fork through libc's own fork(), past the fork wrapper (only
 *            the atfork handlers see it); the child holds its copies of
 *            every fd until SIGTERM and logs "hidden PID"
 *   SIGHUP:  closefrom(lowest connection fd): every connection closed
 * -m close|fclose|range|dup: how a connection is closed: close(), fclose()
 *    of an fdopen()ed stream, close_range(fd, fd, 0), or (dup) the fd is
 *    dup()ed at accept, the original closed and the copy used. */
#include "common.h"

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256

enum close_mode { BY_CLOSE, BY_FCLOSE, BY_RANGE, BY_DUP };

static enum close_mode mode = BY_CLOSE;
static int forks, keep_usec, churn, noclose = 1;
static struct srv_args args = {"127.0.0.1", 0, NULL};
static int listen_port;

static int take(int fd)
{
    if (mode != BY_DUP)
        return fd;
    int copy = dup(fd);
    if (copy < 0)
        return fd;
    close(fd);
    return copy;
}

static void finish(int fd)
{
    switch (mode) {
    case BY_FCLOSE: {
        FILE *f = fdopen(fd, "r+");
        if (f)
            fclose(f);
        else
            close(fd);
        break;
    }
    case BY_RANGE:
        if (close_range((unsigned)fd, (unsigned)fd, 0) != 0)
            close(fd);
        break;
    default:
        close(fd);
    }
}

/* ---- threaded ---- */

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
    finish(c->fd);
    srv_log("close", c->ip);
    free(c);
    return NULL;
}

static void *acceptor(void *arg)
{
    int lfd = *(int *)arg;
    pthread_attr_t attr;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept(lfd, (struct sockaddr *)&ss, &len);
        if (fd < 0)
            continue;
        struct conn *c = malloc(sizeof *c);
        pthread_t t;
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = take(fd);
        srv_peer_str(&ss, c->ip);
        srv_log("accept", c->ip);
        if (pthread_create(&t, &attr, serve, c) != 0) {
            finish(c->fd);
            free(c);
        }
    }
    return NULL;
}

static void *forker(void *arg)
{
    (void)arg;
    int made = 0;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            if (keep_usec) {
                struct timespec ts = {0, keep_usec * 1000L};
                nanosleep(&ts, NULL);
            }
            _exit(0);
        }
        if (pid > 0) {
            made++;
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
    }
    printf("forks=%d\n", made);
    fflush(stdout);
    return NULL;
}

static void *churner(void *arg)
{
    (void)arg;
    int ok = 0;
    for (int i = 0; i < churn; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
        inet_pton(AF_INET, "127.0.0.3", &src.sin_addr);
        inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
        dst.sin_port = htons((uint16_t)listen_port);
        char buf[8];
        if (fd >= 0 && bind(fd, (struct sockaddr *)&src, sizeof src) == 0 &&
            connect(fd, (struct sockaddr *)&dst, sizeof dst) == 0 &&
            write(fd, "PING\n", 5) == 5 && read(fd, buf, sizeof buf) > 0)
            ok++;
        if (fd >= 0)
            close(fd);
    }
    printf("churn=%d ok=%d\n", churn, ok);
    fflush(stdout);
    return NULL;
}

static int run_threaded(int lfd)
{
    static int lfd_arg;
    pthread_t t;
    sigset_t set;
    int sig;

    lfd_arg = lfd;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t, NULL, acceptor, &lfd_arg) != 0)
            return 1;
    srv_ready(lfd);
    if (forks && pthread_create(&t, NULL, forker, NULL) != 0)
        return 1;
    if (forks)
        pthread_detach(t);
    if (churn && pthread_create(&t, NULL, churner, NULL) != 0)
        return 1;
    if (churn)
        pthread_detach(t);
    sigwait(&set, &sig);
    return 0;
}

/* ---- poll ---- */

static volatile sig_atomic_t want_daemon, want_hidden_fork, want_closefrom;

static void on_usr1(int sig)
{
    (void)sig;
    want_daemon = 1;
}

static void on_usr2(int sig)
{
    (void)sig;
    want_hidden_fork = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    want_closefrom = 1;
}

static void on_term_exit(int sig)
{
    (void)sig;
    _exit(0);
}

static void log_pid(const char *what)
{
    char pid[24];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    srv_log(what, pid);
}

/* libc's fork, not the one the preloaded library exports. */
static pid_t hidden_fork(void)
{
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    pid_t (*libc_fork)(void) = libc ? (pid_t(*)(void))dlsym(libc, "fork") : NULL;
    return libc_fork ? libc_fork() : -1;
}

static __attribute__((noreturn)) int run_poll(int lfd)
{
    struct pollfd pfd[MAX_CONNS + 1];
    struct linebuf lb[MAX_CONNS + 1];
    char ip[MAX_CONNS + 1][IP_STR];
    int n = 1;

    srv_on_signal(SIGUSR1, on_usr1);
    srv_on_signal(SIGUSR2, on_usr2);
    srv_on_signal(SIGHUP, on_hup);
    srv_on_signal(SIGTERM, on_term_exit);
    signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
    pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
    srv_ready(lfd);
    for (;;) {
        if (want_daemon) {
            want_daemon = 0;
            if (daemon(1, noclose) == 0)
                log_pid("daemon");
            else
                srv_log("daemon-failed", strerror(errno));
        }
        if (want_hidden_fork) {
            want_hidden_fork = 0;
            pid_t pid = hidden_fork();
            if (pid == 0) {
                log_pid("hidden");
                for (;;)
                    pause();
            }
            if (pid < 0)
                srv_log("hidden-failed", strerror(errno));
        }
        if (want_closefrom) {
            want_closefrom = 0;
            int low = -1;
            for (int i = 1; i < n; i++)
                if (low < 0 || pfd[i].fd < low)
                    low = pfd[i].fd;
            if (low >= 0) {
                closefrom(low);
                for (int i = 1; i < n; i++)
                    srv_log("close", ip[i]);
                n = 1;
            }
            srv_log("closefrom", "done");
        }
        if (poll(pfd, (nfds_t)n, -1) < 0)
            continue;
        for (int i = n - 1; i >= 1; i--) {
            if (!pfd[i].revents)
                continue;
            if (srv_serve_read(pfd[i].fd, &lb[i]))
                continue;
            finish(pfd[i].fd);
            srv_log("close", ip[i]);
            n--;
            pfd[i] = pfd[n];
            lb[i] = lb[n];
            memcpy(ip[i], ip[n], IP_STR);
        }
        if (pfd[0].revents & POLLIN) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof ss;
            int fd = accept(lfd, (struct sockaddr *)&ss, &len);
            if (fd < 0)
                continue;
            if (n > MAX_CONNS) {
                close(fd);
                continue;
            }
            pfd[n] = (struct pollfd){.fd = take(fd), .events = POLLIN};
            lb[n].len = 0;
            srv_peer_str(&ss, ip[n]);
            srv_log("accept", ip[n]);
            n++;
        }
    }
}

int main(int argc, char **argv)
{
    static const char usage[] = "forkrace -l ADDR -p PORT [-a LOG] [-F N] [-k USEC] [-C N] "
                                "[-P] [-n] [-m close|fclose|range|dup]";
    int opt, poll_mode = 0;

    while ((opt = getopt(argc, argv, "l:p:a:F:k:C:Pnm:")) != -1) {
        if (srv_common_opt(&args, opt, optarg))
            continue;
        switch (opt) {
        case 'F':
            forks = srv_atoi(optarg, 0, 10000000);
            break;
        case 'k':
            keep_usec = srv_atoi(optarg, 0, 999999);
            break;
        case 'C':
            churn = srv_atoi(optarg, 0, 10000000);
            break;
        case 'P':
            poll_mode = 1;
            break;
        case 'n':
            noclose = 0;
            break;
        case 'm':
            if (!strcmp(optarg, "close"))
                mode = BY_CLOSE;
            else if (!strcmp(optarg, "fclose"))
                mode = BY_FCLOSE;
            else if (!strcmp(optarg, "range"))
                mode = BY_RANGE;
            else if (!strcmp(optarg, "dup"))
                mode = BY_DUP;
            else
                srv_usage_exit(usage);
            break;
        default:
            srv_usage_exit(usage);
        }
    }
    int lfd = srv_listen(&args);
    struct sockaddr_in bound;
    socklen_t blen = sizeof bound;
    if (getsockname(lfd, (struct sockaddr *)&bound, &blen) == 0)
        listen_port = ntohs(bound.sin_port);
    srv_log_open(args.log);
    return poll_mode ? run_poll(lfd) : run_threaded(lfd);
}
