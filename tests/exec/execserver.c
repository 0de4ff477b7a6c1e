/* execserver: servers that exec, to test that the table and the counted
 * connections survive exec.
 *
 *   execserver -m inetd   ... accept; fork; the child execs this program as a
 *                             handler of the connection (as inetd and sshd do);
 *                             the parent closes its copy at once
 *   execserver -m workers -w N ... fork+exec N workers that accept on the
 *                             inherited listener and serve with poll()
 *
 * -x CALL   exec by CALL: execv (the default), execve, execvp, execvpe,
 *           execl, execlp, execle, fexecve, or syscall (syscall(SYS_execve))
 *
 * Common options as the other test servers: -l ADDR -p PORT -a LOG. */
#include "../servers/common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>


static char *self;
static const char *log_path = "";
static int no_preload; /* -n: exec the handlers without LD_PRELOAD */
static const char *exec_call = "execv";

extern char **environ;

/* Execs argv (argv[0] is self) by the call -x names; returns only on failure. */
static void exec_by(char *argv[])
{
    const char *x = exec_call;
    if (strcmp(x, "execv") == 0) {
        execv(self, argv);
    } else if (strcmp(x, "execve") == 0) {
        execve(self, argv, environ);
    } else if (strcmp(x, "execvp") == 0) {
        execvp(self, argv);
    } else if (strcmp(x, "execvpe") == 0) {
        execvpe(self, argv, environ);
    } else if (strcmp(x, "execl") == 0) {
        execl(self, argv[0], argv[1], argv[2], argv[3], (char *)NULL);
    } else if (strcmp(x, "execlp") == 0) {
        execlp(self, argv[0], argv[1], argv[2], argv[3], (char *)NULL);
    } else if (strcmp(x, "execle") == 0) {
        execle(self, argv[0], argv[1], argv[2], argv[3], (char *)NULL, environ);
    } else if (strcmp(x, "fexecve") == 0) {
        int fd = open(self, O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            fexecve(fd, argv, environ);
    } else if (strcmp(x, "syscall") == 0) {
        syscall(SYS_execve, self, argv, environ);
    } else {
        fprintf(stderr, "unknown -x %s\n", x);
        errno = EINVAL;
    }
}

static void exec_self(const char *role, int fd)
{
    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", fd);
    char *argv[] = {self, (char *)role, fdarg, (char *)log_path, NULL};
    if (no_preload)
        unsetenv("LD_PRELOAD");
    exec_by(argv);
    perror(exec_call);
    _exit(127);
}

static void worker(int lfd)
{
    /* Every worker polls the one listener, so a connection wakes them all
     * and only one gets it: a blocking accept() would leave the others
     * stuck in it, with their own connections unserved, until the next
     * connection. Non-blocking, they go back to poll(). */
    int flags = fcntl(lfd, F_GETFL);
    if (flags >= 0)
        fcntl(lfd, F_SETFL, flags | O_NONBLOCK);
    static struct srv_pollset set;
    srv_poll_init(&set, lfd);
    for (;;) {
        if (poll(set.fds, (nfds_t)set.n, -1) < 0)
            continue;
        if ((set.fds[0].revents & POLLIN) && !srv_poll_full(&set)) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0)
                srv_poll_add(&set, fd);
        }
        srv_poll_serve(&set, close);
    }
}

static void inetd(int lfd)
{
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        pid_t pid = fork();
        if (pid == 0) {
            close(lfd);
            exec_self("--handler", fd);
        }
        if (pid > 0)
            srv_track_child(pid);
        close(fd);
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
    }
}

static void start_workers(int lfd, int nworkers)
{
    for (int i = 0; i < nworkers; i++) {
        pid_t pid = fork();
        if (pid == 0)
            exec_self("--worker", lfd);
        if (pid > 0)
            srv_track_child(pid);
    }
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    static const char usage[] = "execserver -m inetd|workers -l ADDR -p PORT [-a LOG] [-w N] [-n] "
                                "[-x CALL]";
    self = argv[0];
    if (argc == 4 && (strcmp(argv[1], "--handler") == 0 || strcmp(argv[1], "--worker") == 0)) {
        if (argv[3][0])
            srv_log_open(argv[3]);
        srv_child_init(getppid());
        int fd = srv_atoi(argv[2], 0, 1 << 20);
        if (strcmp(argv[1], "--handler") == 0)
            srv_serve_conn(fd);
        else
            worker(fd);
        return 0;
    }
    struct srv_args a = {"127.0.0.1", 0, NULL};
    const char *mode = "inetd";
    int opt, nworkers = 2;
    while ((opt = getopt(argc, argv, "l:p:a:m:w:nx:")) != -1) {
        if (srv_common_opt(&a, opt, optarg))
            continue;
        if (opt == 'm')
            mode = optarg;
        else if (opt == 'n')
            no_preload = 1;
        else if (opt == 'x')
            exec_call = optarg;
        else if (opt == 'w')
            nworkers = srv_atoi(optarg, 1, 64);
        else
            srv_usage_exit(usage);
    }
    if (a.log) {
        log_path = a.log;
        srv_log_open(a.log);
    }
    srv_exit_on_term();
    int lfd = srv_listen(&a);
    srv_ready(lfd);
    if (strcmp(mode, "workers") == 0)
        start_workers(lfd, nworkers);
    else
        inetd(lfd);
    return 0;
}
