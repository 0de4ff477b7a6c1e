/* fdsafe: servers that do to their fds what the library must survive
 * (tests/integration/fdsafe.bats).
 *
 *   -m exec      fork per connection; the child execs this program as the
 *                connection's handler; the parent closes its copy at once
 *   -m reexec    fork per connection; the child moves the connection to fd
 *                3, closes every fd from 4 up (-c), execs a handler on fd 3
 *                (sshd's re-exec)
 *   -m rawclose  one process, poll(); closes connections with
 *                syscall(SYS_close); -A accepts with syscall(SYS_accept4)
 *   -m rawclone  accept; syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0) (-3:
 *                SYS_clone3); the child drops its groups and serves; the
 *                parent closes its copy at once
 *   -m libclone  the same with libc's clone(fn, stack, SIGCHLD, arg)
 *                -x (rawclone): the child logs "exit IP PID" and ends with
 *                syscall(SYS_exit_group, 0), the connection still open
 *   -m probe     syscall() pass-through checks, one "probe ok|FAIL NAME"
 *                line each; exits with the number of failures
 * Options:
 *   -s           at start, close every fd from 3 up (-c says how)
 *   -c HOW       closefrom | close_range | raw (syscall(SYS_close_range)) |
 *                loop (close() each) | asm (close_range by inline assembly,
 *                which no wrapper sees)
 *   -k           fork a child that only waits, before -s (a helper process
 *                holding what the main process had)
 *   -P           drop CAP_SYS_ADMIN and CAP_CHECKPOINT_RESTORE (no
 *                /proc/PID/map_files) for this process and what it execs
 *   -o           at start, check the library's own fd: close() and
 *                syscall(SYS_close) of it report success and leave it open;
 *                dup2/dup3 onto it give the number to this program and
 *                the library's fd moves ("own ..." lines on stdout)
 * Prints "lfd=N" (the listener's fd) before "ready port=P", and with -s
 * "first=N", the first fd the program gets after closing.
 * Common options as the other test servers: -l ADDR -p PORT -a LOG. */
#include "common.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>


static char *self;
static const char *log_path = "";
static const char *how = "closefrom";
static int raw_accept, use_clone3, raw_exit;

static long asm_close_range(unsigned first, unsigned last)
{
#if defined(__x86_64__)
    long r;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "0"((long)SYS_close_range), "D"((long)first), "S"((long)last), "d"(0L)
                     : "rcx", "r11", "memory");
    return r;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = SYS_close_range;
    register long x0 __asm__("x0") = first;
    register long x1 __asm__("x1") = last;
    register long x2 __asm__("x2") = 0;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
#else
    (void)first, (void)last;
    return -ENOSYS;
#endif
}

/* Closes every fd from lowfd up, the way -c says. */
static void close_from(int lowfd)
{
    if (strcmp(how, "closefrom") == 0) {
        closefrom(lowfd);
    } else if (strcmp(how, "close_range") == 0) {
        if (close_range((unsigned)lowfd, ~0U, 0) != 0)
            perror("close_range");
    } else if (strcmp(how, "raw") == 0) {
        if (syscall(SYS_close_range, lowfd, ~0U, 0) != 0)
            perror("syscall(SYS_close_range)");
    } else if (strcmp(how, "loop") == 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = lowfd; fd < max; fd++)
            close((int)fd);
    } else if (strcmp(how, "asm") == 0) {
        long r = asm_close_range((unsigned)lowfd, ~0U);
        if (r != 0)
            fprintf(stderr, "asm close_range: %ld\n", r);
    } else {
        fprintf(stderr, "unknown -c %s\n", how);
        exit(2);
    }
}

static void exec_handler(int fd)
{
    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", fd);
    char *argv[] = {self, "--handler", fdarg, (char *)log_path, NULL};
    execv(self, argv);
    perror("execv");
    _exit(127);
}

static int clone_child_fd, clone_lfd;
static pid_t clone_parent;

static int clone_child(void *arg)
{
    (void)arg;
    srv_child_init(clone_parent);
    close(clone_lfd);
    if (setgroups(0, NULL) != 0 && errno != EPERM)
        perror("setgroups");
    srv_serve_conn(clone_child_fd);
    _exit(0);
}

/* exec, reexec, rawclone, libclone: a process per connection. */
static void per_connection(int lfd, const char *mode)
{
    pid_t parent = getpid();
    srv_on_signal(SIGCHLD, srv_reap_children);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        sigset_t set, old;
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        sigprocmask(SIG_BLOCK, &set, &old);
        long pid;
        if (strcmp(mode, "libclone") == 0) {
            static char stack[256 * 1024] __attribute__((aligned(16)));
            clone_child_fd = fd; /* the child has a copy of this memory */
            clone_parent = parent;
            clone_lfd = lfd;
            pid = clone(clone_child, stack + sizeof stack, SIGCHLD, NULL);
        } else if (strcmp(mode, "rawclone") == 0) {
            if (use_clone3) {
                struct clone_args args = {.exit_signal = SIGCHLD};
                pid = syscall(SYS_clone3, &args, sizeof args);
            } else {
                pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
            }
        } else {
            pid = fork();
        }
        if (pid == 0) {
            sigprocmask(SIG_SETMASK, &old, NULL);
            srv_child_init(parent);
            close(lfd);
            if (strcmp(mode, "exec") == 0)
                exec_handler(fd);
            if (strcmp(mode, "reexec") == 0) {
                if (fd != 3) {
                    dup2(fd, 3);
                    close(fd);
                }
                close_from(4);
                exec_handler(3);
            }
            if (setgroups(0, NULL) != 0 && errno != EPERM)
                perror("setgroups");
            if (raw_exit) {
                struct linebuf lb = {0};
                char what[IP_STR + 16];
                srv_fd_peer(fd, what);
                srv_log("accept", what);
                while (srv_serve_read(fd, &lb))
                    ;
                snprintf(what + strlen(what), 16, " %d", (int)getpid());
                srv_log("exit", what);
                syscall(SYS_exit_group, 0);
            }
            srv_serve_conn(fd);
            _exit(0);
        }
        if (pid < 0)
            perror("fork");
        else
            srv_track_child((pid_t)pid);
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(fd);
    }
}

static int raw_close(int fd)
{
    return (int)syscall(SYS_close, fd);
}

static void rawclose(int lfd)
{
    static struct srv_pollset set;
    srv_poll_init(&set, lfd);
    for (;;) {
        if (poll(set.fds, (nfds_t)set.n, -1) < 0)
            continue;
        if ((set.fds[0].revents & POLLIN) && !srv_poll_full(&set)) {
            int fd = raw_accept ? (int)syscall(SYS_accept4, lfd, NULL, NULL, SOCK_CLOEXEC)
                                : accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0)
                srv_poll_add(&set, fd);
        }
        srv_poll_serve(&set, raw_close);
    }
}

/* --- the library's own fd */

static int is_segment(int fd)
{
    char path[64], link[128];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0)
        return 0;
    link[n] = '\0';
    return strncmp(link, "/memfd:iplimit", 14) == 0;
}

static int find_segment(int except)
{
    for (int fd = 3; fd < 65536; fd++)
        if (fd != except && is_segment(fd))
            return fd;
    return -1;
}

static int fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static void check_own(void)
{
    int own = find_segment(-1);
    printf("own fd=%d\n", own);
    if (own < 0)
        return;
    errno = 4242;
    int r = close(own);
    printf("own close=%d errno_kept=%d open=%d\n", r, errno == 4242, is_segment(own));
    errno = 4242;
    r = (int)syscall(SYS_close, own);
    printf("own rawclose=%d errno_kept=%d open=%d\n", r, errno == 4242, is_segment(own));
    close_from(own); /* the -c way, starting at our fd itself */
    printf("own closefrom open=%d\n", is_segment(own));
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    r = dup2(null, own);
    int moved = find_segment(own);
    printf("own dup2=%d mine=%d moved=%d\n", r == own, fd_open(own) && !is_segment(own),
           moved >= 0);
    errno = 4242;
    r = close(own);
    printf("own hostclose=%d gone=%d\n", r, !fd_open(own));
    if (moved < 0)
        return;
    r = dup3(null, moved, O_CLOEXEC);
    int moved2 = find_segment(moved);
    printf("own dup3=%d mine=%d moved=%d\n", r == moved, fd_open(moved) && !is_segment(moved),
           moved2 >= 0);
    close(moved);
    close(null);
    fflush(stdout);
}

/* --- -P: no CAP_SYS_ADMIN, no CAP_CHECKPOINT_RESTORE */

#ifndef CAP_CHECKPOINT_RESTORE
#define CAP_CHECKPOINT_RESTORE 40
#endif

static void drop_map_files_caps(void)
{
    static const int caps[] = {CAP_SYS_ADMIN, CAP_CHECKPOINT_RESTORE};
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    for (unsigned i = 0; i < 2; i++)
        prctl(PR_CAPBSET_DROP, caps[i], 0, 0, 0);
    if (syscall(SYS_capget, &hdr, data) != 0) {
        perror("capget");
        exit(2);
    }
    for (unsigned i = 0; i < 2; i++) {
        uint32_t bit = 1u << (caps[i] % 32);
        data[caps[i] / 32].effective &= ~bit;
        data[caps[i] / 32].permitted &= ~bit;
        data[caps[i] / 32].inheritable &= ~bit;
    }
    if (syscall(SYS_capset, &hdr, data) != 0) {
        perror("capset");
        exit(2);
    }
}

/* --- -m probe */

static int failures;

static void probe(const char *name, int ok, long r)
{
    printf("probe %s %s (r=%ld errno=%d)\n", ok ? "ok" : "FAIL", name, r, errno);
    failures += !ok;
}

static int run_probe(void)
{
    long r;
    Dl_info info;
    long (*entry)(long, ...) = syscall;
    printf("probe info syscall() from %s\n",
           dladdr((void *)entry, &info) && info.dli_fname ? info.dli_fname : "?");
    errno = 777;
    r = syscall(SYS_getpid);
    probe("getpid value, errno untouched", r == getpid() && errno == 777, r);
    char c;
    errno = 0;
    r = syscall(SYS_read, -1, &c, 1);
    probe("read(-1) -1/EBADF", r == -1 && errno == EBADF, r);
    errno = 0;
    r = syscall(-1L);
    probe("number -1: -1/ENOSYS", r == -1 && errno == ENOSYS, r);
    errno = 0;
    r = syscall(100000L);
    probe("number 100000: -1/ENOSYS", r == -1 && errno == ENOSYS, r);
    errno = 0;
    r = syscall(SYS_close, -1);
    probe("close(-1) -1/EBADF", r == -1 && errno == EBADF, r);
    errno = 0;
    r = syscall(SYS_dup, -1);
    probe("dup(-1) -1/EBADF", r == -1 && errno == EBADF, r);
    errno = 0;
    r = syscall(SYS_fcntl, -1, F_GETFD);
    probe("fcntl(-1) -1/EBADF", r == -1 && errno == EBADF, r);
    errno = 0;
    r = syscall(SYS_close_range, 10, 5, 0);
    probe("close_range(10, 5) -1/EINVAL", r == -1 && errno == EINVAL, r);
    errno = 0;
    r = syscall(SYS_dup3, 1, 1, 0);
    probe("dup3(1, 1) -1/EINVAL", r == -1 && errno == EINVAL, r);
    errno = 0;
    r = syscall(SYS_accept4, -1, NULL, NULL, 0);
    probe("accept4(-1) -1/EBADF", r == -1 && errno == EBADF, r);
    errno = 555;
    long d = syscall(SYS_fcntl, 1, F_DUPFD_CLOEXEC, 100);
    probe("fcntl(F_DUPFD_CLOEXEC, 100) >= 100", d >= 100 && errno == 555, d);
    r = syscall(SYS_close, d);
    probe("close of it 0, errno untouched", r == 0 && errno == 555, r);
    /* The sixth argument: mmap's offset. */
    int mfd = (int)syscall(SYS_memfd_create, "probe", 0);
    char page[8192];
    memset(page, 'A', 4096);
    memset(page + 4096, 'B', 4096);
    int wrote = mfd >= 0 && write(mfd, page, sizeof page) == (ssize_t)sizeof page;
    long p = syscall(SYS_mmap, 0L, 4096L, (long)PROT_READ, (long)MAP_SHARED, (long)mfd, 4096L);
    probe("mmap's 6th argument (offset) forwarded",
          wrote && p != -1 && ((const char *)p)[0] == 'B', p);
    errno = 0;
    r = syscall(SYS_clone, SIGCHLD | CLONE_VM | CLONE_FILES | CLONE_THREAD, 0, 0, 0, 0);
    probe("clone(CLONE_THREAD without CLONE_SIGHAND) -1/EINVAL", r == -1 && errno == EINVAL, r);
    errno = 0;
    r = syscall(SYS_clone3, (void *)8, 64);
    probe("clone3(bad pointer) -1/EFAULT", r == -1 && errno == EFAULT, r);
    r = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (r == 0)
        _exit(7);
    int status = 0;
    probe("clone(SIGCHLD) forks", r > 0 && waitpid((pid_t)r, &status, 0) == r &&
                                      WIFEXITED(status) && WEXITSTATUS(status) == 7, r);
    return failures;
}

int main(int argc, char **argv)
{
    static const char usage[] =
        "fdsafe -m exec|reexec|rawclose|rawclone|libclone|probe [-c HOW] [-s] [-k] [-o] [-P] [-A] [-3] [-x] "
        "-l ADDR -p PORT [-a LOG]";
    self = argv[0];
    if (argc == 4 && strcmp(argv[1], "--handler") == 0) {
        if (argv[3][0])
            srv_log_open(argv[3]);
        int fd = srv_atoi(argv[2], 0, 1 << 20);
        srv_on_signal(SIGTERM, SIG_DFL);
        srv_serve_conn(fd);
        return 0;
    }
    struct srv_args a = {"127.0.0.1", 0, NULL};
    const char *mode = "exec";
    int opt, close_all = 0, keeper = 0, own = 0, unpriv = 0;
    while ((opt = getopt(argc, argv, "l:p:a:m:c:skoPA3x")) != -1) {
        if (srv_common_opt(&a, opt, optarg))
            continue;
        switch (opt) {
        case 'm': mode = optarg; break;
        case 'c': how = optarg; break;
        case 's': close_all = 1; break;
        case 'k': keeper = 1; break;
        case 'o': own = 1; break;
        case 'P': unpriv = 1; break;
        case 'A': raw_accept = 1; break;
        case '3': use_clone3 = 1; break;
        case 'x': raw_exit = 1; break;
        default: srv_usage_exit(usage);
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(mode, "probe") == 0)
        return run_probe();
    if (unpriv)
        drop_map_files_caps();
    srv_exit_on_term();
    if (keeper) {
        pid_t parent = getpid(), pid = fork();
        if (pid == 0) {
            srv_child_init(parent);
            for (;;)
                pause();
        }
        if (pid > 0)
            srv_track_child(pid);
    }
    if (own)
        check_own();
    if (close_all) {
        close_from(3);
        int first = dup(0); /* the first fd the host gets after closing */
        printf("first=%d\n", first);
        close(first);
    }
    if (a.log) {
        log_path = a.log;
        srv_log_open(a.log);
    }
    int lfd = srv_listen(&a);
    printf("lfd=%d\n", lfd);
    srv_ready(lfd);
    if (strcmp(mode, "rawclose") == 0)
        rawclose(lfd);
    else
        per_connection(lfd, mode);
    return 0;
}
