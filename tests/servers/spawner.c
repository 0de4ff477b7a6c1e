/* spawner: one process that holds its connections (poll) and starts a
 * program the way subprocess-style code does, with vfork, while it holds
 * them (tests/integration/vfork.bats). Each time it holds -n N
 * connections it spawns once; the child does -v HOW, then execs:
 *   close   close() each held connection
 *   range   close_range(3, ~0U, 0) (Python's subprocess, close_fds=True)
 *   dup2    dup2(the first connection, 0), then close_range(3, ~0U, 0)
 *           (subprocess.Popen(stdin=conn))
 *   fclose  fdopen(the first connection) and fclose() it, then range
 *   clone   as range, in a child of clone(CLONE_VM | CLONE_VFORK | SIGCHLD)
 *   clone-close  as close, in such a child
 *   none    nothing
 * -e sleep: the child execs this program with --sleep (it stays until
 * SIGTERM); otherwise with --exit (it ends at once), or -x PATH (a program
 * run with no arguments: the suite cross gives /bin/true, since qemu-user
 * cannot exec a foreign program). Prints "spawned PID" for each child and
 * "reaped PID" once it has exited; the parent keeps serving meanwhile.
 * Common options as the other test servers: -l ADDR -p PORT -a LOG. */
#include "common.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *self;
static const char *how = "range";
static const char *exec_path; /* -x */
static int exec_sleep;

static void exec_next(void)
{
    char *sleeper[] = {self, "--sleep", NULL};
    char *quitter[] = {self, "--exit", NULL};
    char *other[] = {(char *)exec_path, NULL};
    if (exec_sleep)
        execv(self, sleeper);
    else if (exec_path)
        execv(exec_path, other);
    else
        execv(self, quitter);
    _exit(127);
}

/* What the child does before it execs; only calls a vfork child may make
 * in practice (no allocation but fdopen's, which Python's child avoids and
 * this test takes on purpose: fclose is wrapped too). */
static void child_work(const int *held, int n)
{
    if (strcmp(how, "close") == 0 || strcmp(how, "clone-close") == 0) {
        for (int i = 0; i < n; i++)
            close(held[i]);
    } else if (strcmp(how, "dup2") == 0) {
        dup2(held[0], 0);
        close_range(3, ~0U, 0);
    } else if (strcmp(how, "fclose") == 0) {
        FILE *f = fdopen(held[0], "r");
        if (f)
            fclose(f);
        close_range(3, ~0U, 0);
    } else if (strcmp(how, "range") == 0 || strcmp(how, "clone") == 0) {
        close_range(3, ~0U, 0);
    }
}

static const int *clone_held;
static int clone_n;

static int clone_child(void *arg)
{
    (void)arg;
    child_work(clone_held, clone_n);
    exec_next();
    return 127;
}

static pid_t spawn(const int *held, int n)
{
    if (strncmp(how, "clone", 5) == 0) {
        static char stack[64 * 1024] __attribute__((aligned(16)));
        clone_held = held, clone_n = n;
        return clone(clone_child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
    }
    pid_t pid = vfork();
    if (pid == 0) {
        child_work(held, n);
        exec_next();
    }
    return pid;
}

/* Spawns with the held connections' fds (the set's slots 1 on). */
static void spawn_now(const struct srv_pollset *set)
{
    int held[SRV_POLL_MAX];
    for (int i = 1; i < set->n; i++)
        held[i - 1] = set->fds[i].fd;
    pid_t pid = spawn(held, set->n - 1);
    if (pid < 0)
        perror("spawn");
    else
        printf("spawned %d\n", (int)pid);
}

static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        printf("reaped %d\n", (int)pid);
}

static void serve(int lfd, int spawn_at)
{
    static struct srv_pollset set;
    srv_poll_init(&set, lfd);
    for (;;) {
        reap();
        if (poll(set.fds, (nfds_t)set.n, 200) < 0)
            continue;
        if ((set.fds[0].revents & POLLIN) && !srv_poll_full(&set)) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0) {
                srv_poll_add(&set, fd);
                if (set.n - 1 == spawn_at)
                    spawn_now(&set);
            }
        }
        srv_poll_serve(&set, close);
    }
}

int main(int argc, char **argv)
{
    static const char usage[] =
        "spawner [-n N] [-v close|range|dup2|fclose|clone|clone-close|none] [-e sleep] [-x PATH] -l ADDR -p PORT "
        "[-a LOG]";
    self = argv[0];
    if (argc == 2 && strcmp(argv[1], "--exit") == 0)
        return 0;
    if (argc == 2 && strcmp(argv[1], "--sleep") == 0) {
        srv_on_signal(SIGTERM, SIG_DFL);
        for (;;)
            pause();
    }
    struct srv_args a = {"127.0.0.1", 0, NULL};
    int opt, spawn_at = 3;
    while ((opt = getopt(argc, argv, "l:p:a:n:v:e:x:")) != -1) {
        if (srv_common_opt(&a, opt, optarg))
            continue;
        switch (opt) {
        case 'n': spawn_at = srv_atoi(optarg, 1, SRV_POLL_MAX); break;
        case 'v': how = optarg; break;
        case 'e': exec_sleep = strcmp(optarg, "sleep") == 0; break;
        case 'x': exec_path = optarg; break;
        default: srv_usage_exit(usage);
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    srv_exit_on_term();
    if (a.log)
        srv_log_open(a.log);
    int lfd = srv_listen(&a);
    srv_ready(lfd);
    serve(lfd, spawn_at);
    return 0;
}
