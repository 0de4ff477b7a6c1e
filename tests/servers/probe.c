/* probe: one process, a blocking listener in poll(), one accept per
 * wake-up; each connection echoes lines. Options that drive the paths the
 * common servers never take (issue 16):
 * -L N  give accept() an address buffer of N bytes (e.g. 16, a sockaddr_in,
 *       on a dual-stack [::] listener): the peer is then taken from
 *       getpeername, and a truncated buffer must not change the key
 * -E    set errno to a sentinel before every accept(); report on stderr
 *       "errno changed" when a successful accept() returns with another
 * -M    listen with IPPROTO_MPTCP (a plain TCP client falls back to TCP)
 * -k    keep a connection's fd open after the client's FIN (the socket
 *       sits in CLOSE_WAIT) until SIGUSR1, which closes all of them
 * -o OP how the server copies and closes each connection's fd, to drive one
 *       wrapped call at a time:
 *         dup, dupfd (fcntl F_DUPFD_CLOEXEC), dup2 (onto a free fd from
 *           100 up): at accept, serve on a copy and close the accepted fd
 *         dup2over: at EOF, dup2 /dev/null over the fd (an implicit close)
 *         close_range: at EOF, close_range(fd, fd, 0)
 *         fclose: fdopen at accept, fclose at EOF
 *         closefrom: at EOF keep the fd; SIGUSR2 closes every connection
 *           with one closefrom(lowest fd)
 *         dup3 (O_CLOEXEC, onto a free fd from 100 up), dupfd64 (fcntl64
 *           F_DUPFD_CLOEXEC): the same copies by the other wrappers
 *         dup3over: at EOF, dup3 /dev/null over the fd with O_CLOEXEC
 *         sysdup, sysdupfd, sysdup3: the copies made by raw system calls
 *           (syscall(SYS_dup), SYS_fcntl F_DUPFD_CLOEXEC, SYS_dup3 with
 *           O_CLOEXEC onto a free fd from 100 up)
 *         sysclose_range: at EOF, syscall(SYS_close_range, fd, fd, 0)
 *         accept4, sysaccept4: accept by accept4(..., SOCK_CLOEXEC), or by
 *           syscall(SYS_accept4, ...); reports "accept4 flags lost" when
 *           the fd lacks FD_CLOEXEC
 *         asmclose: at EOF, close the fd by inline assembly (behind the
 *           library's back), then close() it: reports "asmclose:" unless
 *           that close returns -1 with errno EBADF (x86_64 and aarch64;
 *           elsewhere a plain close) */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

#define MAX_CONNS 512
#define SENTINEL 4242

enum op { OP_CLOSE, OP_DUP, OP_DUPFD, OP_DUP2, OP_DUP2OVER, OP_CLOSE_RANGE, OP_FCLOSE,
          OP_CLOSEFROM, OP_SYSDUP, OP_SYSDUPFD, OP_SYSDUP3, OP_SYSCLOSE_RANGE, OP_SYSACCEPT4,
          OP_DUP3, OP_DUP3OVER, OP_DUPFD64, OP_ACCEPT4, OP_ASMCLOSE };
static const char *const op_names[] = {"close", "dup", "dupfd", "dup2", "dup2over",
                                       "close_range", "fclose", "closefrom", "sysdup",
                                       "sysdupfd", "sysdup3", "sysclose_range", "sysaccept4",
                                       "dup3", "dup3over", "dupfd64", "accept4", "asmclose"};

struct conn {
    int fd;
    FILE *fp;
    int half_closed;
    struct linebuf lb;
    char ip[IP_STR];
};

static struct conn conns[MAX_CONNS];
static int nconns;
static volatile sig_atomic_t close_kept, close_all;
static enum op op;
static int devnull = -1;

static void on_usr1(int sig)
{
    (void)sig;
    close_kept = 1;
}

static void on_usr2(int sig)
{
    (void)sig;
    close_all = 1;
}

static enum op parse_op(const char *name)
{
    for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
        if (strcmp(name, op_names[i]) == 0)
            return (enum op)i;
    fprintf(stderr, "unknown -o %s\n", name);
    exit(2);
}

/* The lowest fd from 100 up that is not open. */
static int free_fd_from_100(void)
{
    int free_fd = 100;
    while (free_fd < 1000 && fcntl(free_fd, F_GETFD) != -1)
        free_fd++;
    return free_fd;
}

/* The accept-time copies: the connection is served on the copy. */
static int copy_at_accept(int fd)
{
    int copy = fd;
    if (op == OP_DUP)
        copy = dup(fd);
    else if (op == OP_DUPFD)
        copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    else if (op == OP_DUP2)
        copy = dup2(fd, free_fd_from_100());
    else if (op == OP_DUP3)
        copy = dup3(fd, free_fd_from_100(), O_CLOEXEC);
    else if (op == OP_DUPFD64)
        copy = fcntl64(fd, F_DUPFD_CLOEXEC, 0);
    else if (op == OP_SYSDUP)
        copy = (int)syscall(SYS_dup, fd);
    else if (op == OP_SYSDUPFD)
        copy = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 0);
    else if (op == OP_SYSDUP3)
        copy = (int)syscall(SYS_dup3, fd, free_fd_from_100(), O_CLOEXEC);
    if (copy < 0) {
        perror("copy");
        return fd;
    }
    if (copy != fd)
        close(fd);
    return copy;
}

static int listen_mptcp(const struct srv_args *a)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(a->port)};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP);

    if (fd < 0) {
        perror("socket(IPPROTO_MPTCP)");
        exit(3); /* the suite skips on 3: no MPTCP in this kernel */
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (inet_pton(AF_INET, a->addr, &sin.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, 128) < 0) {
        perror("bind/listen");
        exit(1);
    }
    return fd;
}

static void take(int lfd, socklen_t room, int sentinel)
{
    struct sockaddr_storage ss;
    socklen_t len = room;

    if (sentinel)
        errno = SENTINEL;
    int fd = op == OP_SYSACCEPT4
                 ? (int)syscall(SYS_accept4, lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC)
             : op == OP_ACCEPT4 ? accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC)
                                : accept(lfd, (struct sockaddr *)&ss, &len);
    if (fd < 0) {
        if (errno != EAGAIN)
            fprintf(stderr, "accept error(%d)\n", errno);
        return;
    }
    if (sentinel && errno != SENTINEL)
        fprintf(stderr, "errno changed: %d after a successful accept\n", errno);
    if ((op == OP_SYSACCEPT4 || op == OP_ACCEPT4) && !(fcntl(fd, F_GETFD) & FD_CLOEXEC))
        fprintf(stderr, "accept4 flags lost: fd %d lacks FD_CLOEXEC\n", fd);
    if (nconns == MAX_CONNS) {
        close(fd);
        return;
    }
    struct conn *c = &conns[nconns++];
    memset(c, 0, sizeof *c);
    c->fd = copy_at_accept(fd);
    if (op == OP_FCLOSE && !(c->fp = fdopen(c->fd, "r+")))
        perror("fdopen");
    srv_fd_peer(c->fd, c->ip);
    srv_log("accept", c->ip);
}

/* close(2) made without libc or syscall(), so no wrapper sees it. */
static void close_unseen(int fd)
{
#if defined(__x86_64__)
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "0"((long)SYS_close), "D"((long)fd)
                     : "rcx", "r11", "memory");
    (void)ret;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = SYS_close;
    register long x0 __asm__("x0") = fd;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8) : "memory", "cc");
#else
    (void)fd;
#endif
}

static void close_conn(struct conn *c)
{
    if (op == OP_ASMCLOSE) {
        close_unseen(c->fd);
#if defined(__x86_64__) || defined(__aarch64__)
        errno = SENTINEL;
        int r = close(c->fd);
        if (r != -1 || errno != EBADF)
            fprintf(stderr, "asmclose: close returned %d, errno %d\n", r, errno);
#endif
    } else if (op == OP_DUP2OVER) {
        dup2(devnull, c->fd); /* closes the socket, leaves /dev/null */
        close(c->fd);
    } else if (op == OP_DUP3OVER) {
        if (dup3(devnull, c->fd, O_CLOEXEC) != c->fd)
            perror("copy: dup3");
        close(c->fd);
    } else if (op == OP_CLOSE_RANGE) {
        if (close_range((unsigned)c->fd, (unsigned)c->fd, 0) != 0)
            perror("close_range");
    } else if (op == OP_SYSCLOSE_RANGE) {
        if (syscall(SYS_close_range, (unsigned)c->fd, (unsigned)c->fd, 0) != 0)
            perror("close_range");
    } else if (c->fp) {
        fclose(c->fp);
    } else {
        close(c->fd);
    }
}

static void drop(int i)
{
    close_conn(&conns[i]);
    srv_log("close", conns[i].ip);
    conns[i] = conns[--nconns];
}

/* One closefrom() for every connection: the lowest fd and up. */
static void drop_all_closefrom(void)
{
    int lowest = -1;
    for (int i = 0; i < nconns; i++)
        if (lowest < 0 || conns[i].fd < lowest)
            lowest = conns[i].fd;
    if (lowest < 0)
        return;
    closefrom(lowest);
    for (int i = 0; i < nconns; i++)
        srv_log("close", conns[i].ip);
    nconns = 0;
}

static void serve(int i, int keep)
{
    if (srv_serve_read(conns[i].fd, &conns[i].lb) > 0)
        return;
    if (!keep && op != OP_CLOSEFROM) {
        drop(i);
        return;
    }
    conns[i].half_closed = 1;
    srv_log("eof", conns[i].ip);
}

int main(int argc, char **argv)
{
    struct srv_args a = {.addr = "127.0.0.1"};
    socklen_t room = sizeof(struct sockaddr_storage);
    int opt, sentinel = 0, mptcp = 0, keep = 0;

    while ((opt = getopt(argc, argv, "l:p:a:L:EMko:")) != -1) {
        if (srv_common_opt(&a, opt, optarg))
            continue;
        switch (opt) {
        case 'L': room = (socklen_t)srv_atoi(optarg, 0, sizeof(struct sockaddr_storage)); break;
        case 'E': sentinel = 1; break;
        case 'M': mptcp = 1; break;
        case 'k': keep = 1; break;
        case 'o': op = parse_op(optarg); break;
        default: srv_usage_exit("probe -l ADDR -p PORT [-a LOG] [-L N] [-E] [-M] [-k] [-o OP]");
        }
    }
    srv_log_open(a.log);
    srv_exit_on_term();
    srv_on_signal(SIGUSR1, on_usr1);
    srv_on_signal(SIGUSR2, on_usr2);
    /* Opened before the listener, so closefrom(lowest connection) spares it. */
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    int lfd = mptcp ? listen_mptcp(&a) : srv_listen(&a);
    srv_ready(lfd);
    for (;;) {
        struct pollfd pfd[MAX_CONNS + 1];
        int map[MAX_CONNS + 1], n = 0;
        if (close_all) {
            close_all = 0;
            drop_all_closefrom();
        }
        if (close_kept) {
            close_kept = 0;
            for (int i = nconns - 1; i >= 0; i--)
                if (conns[i].half_closed)
                    drop(i);
        }
        pfd[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int i = 0; i < nconns; i++)
            if (!conns[i].half_closed) {
                map[n] = i;
                pfd[n++] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
            }
        if (poll(pfd, (nfds_t)n, 200) <= 0)
            continue;
        for (int j = n - 1; j >= 1; j--)
            if (pfd[j].revents)
                serve(map[j], keep);
        if (pfd[0].revents & POLLIN)
            take(lfd, room, sentinel);
    }
}
