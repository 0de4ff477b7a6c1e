/* rawclone: one blocking accept() loop; a child per connection made by the
 * raw clone system call (syscall(SYS_clone, SIGCHLD, ...)), as some FTP
 * servers do, so glibc's fork handling never runs. The child drops its
 * supplementary groups with setgroups(0, NULL) (glibc broadcasts that to
 * every thread it knows of), logs "setgroups IP", serves PING/PONG and
 * exits; the parent closes its copy at once.
 * Needs root for setgroups; otherwise the child logs "setgroups-failed IP"
 * and serves anyway. */
#include "common.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void child(int lfd, int fd, const char *ip, pid_t parent)
{
    struct linebuf lb = {0};

    srv_child_init(parent);
    close(lfd);
    srv_log(setgroups(0, NULL) == 0 ? "setgroups" : "setgroups-failed", ip);
    while (srv_serve_read(fd, &lb))
        ;
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
    pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        child(lfd, fd, ip, parent);
    }
    if (pid < 0)
        perror("clone");
    else
        srv_track_child(pid);
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(fd);
}

int main(int argc, char **argv)
{
    static const char usage[] = "rawclone -l ADDR -p PORT [-a LOG]";
    struct srv_args a = {"127.0.0.1", 0, NULL};
    int opt, lfd;

    while ((opt = getopt(argc, argv, "l:p:a:")) != -1)
        if (!srv_common_opt(&a, opt, optarg))
            srv_usage_exit(usage);
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
        }
    }
}
