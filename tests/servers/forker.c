/* forker: one blocking accept() loop; a child is forked per connection, the
 * parent closes its copy at once, the child serves and exits.
 * -x: the child logs "exit IP PID" and exits without closing the connection
 *     (the kernel closes it); -X the same by _exit(), -E by _Exit(). */
#include "common.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int exit_unclosed; /* 0, or the option: 'x' exit, 'X' _exit, 'E' _Exit */

static void child(int lfd, int fd, const char *ip, pid_t parent)
{
    struct linebuf lb = {0};

    srv_child_init(parent);
    close(lfd);
    while (srv_serve_read(fd, &lb))
        ;
    if (exit_unclosed) {
        char what[IP_STR + 16];
        snprintf(what, sizeof what, "%s %d", ip, (int)getpid());
        srv_log("exit", what);
        if (exit_unclosed == 'X')
            _exit(0);
        if (exit_unclosed == 'E')
            _Exit(0);
        exit(0);
    }
    close(fd);
    srv_log("close", ip);
    _exit(0);
}

static void spawn(int lfd, int fd, const struct sockaddr_storage *ss)
{
    char ip[IP_STR];
    sigset_t set, old;
    pid_t parent = getpid(), pid;

    srv_peer_str(ss, ip);
    srv_log("accept", ip);
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);
    pid = fork();
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        child(lfd, fd, ip, parent);
    }
    if (pid < 0)
        perror("fork");
    else
        srv_track_child(pid);
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(fd);
}

int main(int argc, char **argv)
{
    static const char usage[] = "forker -l ADDR -p PORT [-a LOG] [-x|-X|-E]";
    struct srv_args a = {"127.0.0.1", 0, NULL};
    struct timespec pause = {0, 10 * 1000 * 1000};
    int opt, lfd;

    while ((opt = getopt(argc, argv, "l:p:a:xXE")) != -1) {
        if (srv_common_opt(&a, opt, optarg))
            continue;
        if (opt != 'x' && opt != 'X' && opt != 'E')
            srv_usage_exit(usage);
        exit_unclosed = opt;
    }
    lfd = srv_listen(&a);
    srv_log_open(a.log);
    srv_exit_on_term();
    srv_on_signal(SIGCHLD, srv_reap_children);
    srv_ready(lfd);
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept(lfd, (struct sockaddr *)&ss, &len);

        if (fd >= 0) {
            srv_check_peer(fd, &ss, len);
            spawn(lfd, fd, &ss);
        } else if (errno != EINTR) {
            fprintf(stderr, "accept error(%d)\n", errno);
            if (errno != EAGAIN && errno != ECONNABORTED)
                nanosleep(&pause, NULL);
        }
    }
}
