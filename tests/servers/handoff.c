/* handoff: a primary that accepts and hands each connection to a worker
 * process by SCM_RIGHTS, closing its own copy at once (issue 10: the
 * connection must stay counted while a worker holds it, and while the fd
 * is in flight between them).
 *
 *   handoff -l ADDR -p PORT [-a LOG] [-w N] [-b K] [-m] [-1] [-C] [-r] [-g FILE]
 *
 * -w  N workers (default 2), forked first, each on a SOCK_SEQPACKET pair
 * -b  the primary waits for K accepted connections and sends them in ONE
 *     message with K fds (default 1), round robin over the workers
 * -m  sendmmsg: the K fds as K messages of one fd in one call; the workers
 *     receive with recvmmsg
 * -1  with -m: the workers' recvmmsg asks for one message per call, so
 *     every call returns exactly one, however many are queued
 * -C  the workers receive with MSG_CMSG_CLOEXEC
 * -r  every send and receive is a raw system call: syscall(SYS_sendmsg),
 *     SYS_recvmsg, SYS_sendmmsg, SYS_recvmmsg
 * -g  the workers receive nothing until FILE exists (polled every 20 ms, at
 *     most 60 s): the fds stay in flight after the primary closed its copies
 *
 * Log lines: "accept IP" (primary), "handed IP" (primary, after its close),
 * "batch K" (a worker got a message with K fds), "cloexec-lost IP" (a fd
 * received with -C lacks FD_CLOEXEC), "close IP" (a worker closed it on
 * EOF). Workers answer PING lines with PONG. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 16
#define MAX_BATCH 16
#define MAX_CONNS 512

static int nworkers = 2, batch = 1, use_mmsg, one_per_call, use_cloexec, use_raw;
static const char *gate;

struct held {
    int fd;
    char ip[IP_STR];
    struct linebuf lb;
};

/* The four calls, by libc or (-r) by raw system call. */
static ssize_t do_sendmsg(int sock, const struct msghdr *mh, int flags)
{
    return use_raw ? syscall(SYS_sendmsg, sock, mh, flags) : sendmsg(sock, mh, flags);
}

static ssize_t do_recvmsg(int sock, struct msghdr *mh, int flags)
{
    return use_raw ? syscall(SYS_recvmsg, sock, mh, flags) : recvmsg(sock, mh, flags);
}

static int do_sendmmsg(int sock, struct mmsghdr *vec, unsigned n, int flags)
{
    return use_raw ? (int)syscall(SYS_sendmmsg, sock, vec, n, flags)
                   : sendmmsg(sock, vec, n, flags);
}

static int do_recvmmsg(int sock, struct mmsghdr *vec, unsigned n, int flags)
{
    return use_raw ? (int)syscall(SYS_recvmmsg, sock, vec, n, flags, NULL)
                   : recvmmsg(sock, vec, n, flags, NULL);
}

static void wait_gate(void)
{
    struct timespec ts = {0, 20 * 1000 * 1000};
    for (int i = 0; gate && i < 3000; i++) {
        if (access(gate, F_OK) == 0)
            return;
        nanosleep(&ts, NULL);
    }
}

static void keep(struct held *conns, int *n, int fd)
{
    char ip[IP_STR];
    if (use_cloexec && !(fcntl(fd, F_GETFD) & FD_CLOEXEC)) {
        srv_fd_peer(fd, ip);
        srv_log("cloexec-lost", ip);
    }
    if (*n == MAX_CONNS) {
        fprintf(stderr, "worker: too many connections\n");
        close(fd);
        return;
    }
    conns[*n].fd = fd;
    conns[*n].lb.len = 0;
    srv_fd_peer(fd, conns[*n].ip);
    (*n)++;
}

/* Takes the fds out of one received message. */
static void take_fds(struct msghdr *mh, struct held *conns, int *n)
{
    char what[16];
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        snprintf(what, sizeof what, "%d", k);
        srv_log("batch", what);
        for (int i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            keep(conns, n, fd);
        }
    }
    if (mh->msg_flags & MSG_CTRUNC)
        fprintf(stderr, "worker: control truncated\n");
}

/* Returns 0 once the primary is gone. */
static int receive(int sock, struct held *conns, int *n)
{
    int flags = MSG_DONTWAIT | (use_cloexec ? MSG_CMSG_CLOEXEC : 0);
    if (use_mmsg) {
        struct mmsghdr vec[MAX_BATCH];
        char data[MAX_BATCH];
        char cbuf[MAX_BATCH][CMSG_SPACE(MAX_BATCH * sizeof(int))];
        struct iovec iov[MAX_BATCH];
        memset(vec, 0, sizeof vec);
        for (int i = 0; i < MAX_BATCH; i++) {
            iov[i] = (struct iovec){&data[i], 1};
            vec[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1,
                                             .msg_control = cbuf[i],
                                             .msg_controllen = sizeof cbuf[i]};
        }
        int got = do_recvmmsg(sock, vec, one_per_call ? 1 : MAX_BATCH, flags);
        if (got < 0)
            return errno == EAGAIN || errno == EINTR;
        for (int i = 0; i < got; i++) {
            if (vec[i].msg_len == 0)
                return 0;
            take_fds(&vec[i].msg_hdr, conns, n);
        }
        return got > 0;
    }
    char data;
    char cbuf[CMSG_SPACE(MAX_BATCH * sizeof(int))];
    struct iovec iov = {&data, 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof cbuf};
    ssize_t got = do_recvmsg(sock, &mh, flags);
    if (got < 0)
        return errno == EAGAIN || errno == EINTR;
    if (got == 0)
        return 0;
    take_fds(&mh, conns, n);
    return 1;
}

static void worker(int sock)
{
    static struct held conns[MAX_CONNS];
    struct pollfd p[MAX_CONNS + 1];
    int n = 0;

    wait_gate();
    for (;;) {
        p[0] = (struct pollfd){.fd = sock, .events = POLLIN};
        for (int i = 0; i < n; i++)
            p[i + 1] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
        if (poll(p, (nfds_t)n + 1, -1) < 0)
            continue;
        for (int i = n - 1; i >= 0; i--) {
            if (!p[i + 1].revents || srv_serve_read(conns[i].fd, &conns[i].lb))
                continue;
            close(conns[i].fd);
            srv_log("close", conns[i].ip);
            conns[i] = conns[--n];
        }
        if (p[0].revents && !receive(sock, conns, &n))
            _exit(0);
    }
}

static int send_batch(int sock, const int *fds, int k)
{
    char data = 'h';
    struct iovec iov = {&data, 1};
    if (use_mmsg) {
        struct mmsghdr vec[MAX_BATCH];
        char cbuf[MAX_BATCH][CMSG_SPACE(sizeof(int))];
        memset(vec, 0, sizeof vec);
        memset(cbuf, 0, sizeof cbuf);
        for (int i = 0; i < k; i++) {
            struct msghdr *mh = &vec[i].msg_hdr;
            *mh = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf[i],
                                  .msg_controllen = sizeof cbuf[i]};
            struct cmsghdr *cm = CMSG_FIRSTHDR(mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cm), &fds[i], sizeof(int));
        }
        return do_sendmmsg(sock, vec, (unsigned)k, MSG_NOSIGNAL) == k ? 0 : -1;
    }
    char cbuf[CMSG_SPACE(MAX_BATCH * sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = CMSG_SPACE((size_t)k * sizeof(int))};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN((size_t)k * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, (size_t)k * sizeof(int));
    return do_sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static void primary(int lfd, const int *workers)
{
    int fds[MAX_BATCH], k = 0, next = 0;
    char ips[MAX_BATCH][IP_STR];

    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept(lfd, (struct sockaddr *)&ss, &len);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "accept error(%d)\n", errno);
            continue;
        }
        srv_check_peer(fd, &ss, len);
        srv_peer_str(&ss, ips[k]);
        srv_log("accept", ips[k]);
        fds[k++] = fd;
        if (k < batch)
            continue;
        if (send_batch(workers[next], fds, k) < 0)
            fprintf(stderr, "handoff failed: %s\n", strerror(errno));
        next = (next + 1) % nworkers;
        for (int i = 0; i < k; i++) {
            close(fds[i]);
            srv_log("handed", ips[i]);
        }
        k = 0;
    }
}

int main(int argc, char **argv)
{
    static const char usage[] = "handoff -l ADDR -p PORT [-a LOG] [-w N] [-b K] [-m] [-1] "
                                "[-C] [-r] [-g FILE]";
    struct srv_args a = {"127.0.0.1", 0, NULL};
    int opt, workers[MAX_WORKERS];

    while ((opt = getopt(argc, argv, "l:p:a:w:b:m1Crg:")) != -1) {
        if (srv_common_opt(&a, opt, optarg))
            continue;
        switch (opt) {
        case 'w': nworkers = srv_atoi(optarg, 1, MAX_WORKERS); break;
        case 'b': batch = srv_atoi(optarg, 1, MAX_BATCH); break;
        case 'm': use_mmsg = 1; break;
        case '1': one_per_call = 1; break;
        case 'C': use_cloexec = 1; break;
        case 'r': use_raw = 1; break;
        case 'g': gate = optarg; break;
        default: srv_usage_exit(usage);
        }
    }
    int lfd = srv_listen(&a);
    srv_log_open(a.log);
    srv_exit_on_term();
    for (int i = 0; i < nworkers; i++) {
        int sv[2];
        pid_t parent = getpid(), pid;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
            perror("socketpair");
            return 1;
        }
        pid = fork();
        if (pid == 0) {
            srv_child_init(parent);
            close(lfd);
            close(sv[0]);
            for (int j = 0; j < i; j++)
                close(workers[j]);
            worker(sv[1]);
        }
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        srv_track_child(pid);
        close(sv[1]);
        workers[i] = sv[0];
    }
    srv_ready(lfd);
    primary(lfd, workers);
    return 0;
}
