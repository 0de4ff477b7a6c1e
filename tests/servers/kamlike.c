/* kamlike: imitates Kamailio's tcp main (see shared/reference/kamailio-tcp.md).
 * Main forks -r N readers first, then watches the BLOCKING listener with
 * level-triggered epoll and calls accept() once per wake-up; EAGAIN is silent,
 * any other errno is logged as "accept error(N)". When an accepted connection
 * becomes readable main passes it to a reader by SCM_RIGHTS; the reader answers
 * what is there, closes its copy, logs "release IP" and tells main, which
 * watches the fd again. Main closes its fd (log "close IP") only after a reader
 * saw EOF. Main's fd is the one accept returned, for the connection's life. */
#include "common.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_READERS 64

enum { HANDOFF, RELEASE, GONE };

struct msg {
    int type;
    int id; /* main's fd for the connection */
    char ip[IP_STR];
};

struct conn {
    char ip[IP_STR];
    int at_reader;
};

static struct conn **conns;
static int max_fd;
static int epfd;
static int readers[MAX_READERS];
static int nreaders = 2;
static int next_reader;

static int send_msg(int sock, const struct msg *m, int fd)
{
    char cbuf[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec iov = {(void *)m, sizeof *m};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    if (fd >= 0) {
        struct cmsghdr *cm;
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    }
    return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof *m ? 0 : -1;
}

/* Returns bytes received (0 = peer gone); *fd gets a passed fd or -1. */
static ssize_t recv_msg(int sock, struct msg *m, int *fd)
{
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {m, sizeof *m};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *cm;
    ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

    *fd = -1;
    for (cm = CMSG_FIRSTHDR(&mh); n > 0 && cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            memcpy(fd, CMSG_DATA(cm), sizeof *fd);
    return n;
}

/* Serves what the client sent; returns 0 if the client is gone. */
static int reader_serve(int fd)
{
    struct linebuf lb = {0};
    struct pollfd p = {.fd = fd, .events = POLLIN};

    if (poll(&p, 1, 1000) <= 0)
        return 1;
    return srv_serve_read(fd, &lb);
}

static void reader(int sock)
{
    for (;;) {
        struct msg m;
        int fd;
        ssize_t n = recv_msg(sock, &m, &fd);

        if (n == 0 || (n < 0 && errno != EINTR))
            _exit(0);
        if (n != (ssize_t)sizeof m || m.type != HANDOFF || fd < 0)
            continue;
        m.type = reader_serve(fd) ? RELEASE : GONE;
        close(fd);
        srv_log("release", m.ip);
        send_msg(sock, &m, -1);
    }
}

static void watch(int fd, int on)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

    epoll_ctl(epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, &ev);
}

static void new_conn(int lfd)
{
    struct sockaddr_storage su;
    socklen_t su_len = sizeof su;
    int fd = accept(lfd, (struct sockaddr *)&su, &su_len);

    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            fprintf(stderr, "accept error(%d)\n", errno);
        return;
    }
    if (fd >= max_fd || !(conns[fd] = calloc(1, sizeof **conns))) {
        fprintf(stderr, "no room for fd %d\n", fd);
        close(fd);
        return;
    }
    srv_check_peer(fd, &su, su_len);
    srv_peer_str(&su, conns[fd]->ip);
    srv_log("accept", conns[fd]->ip);
    watch(fd, 1);
}

static void close_conn(int fd)
{
    close(fd);
    srv_log("close", conns[fd]->ip);
    free(conns[fd]);
    conns[fd] = NULL;
}

static void pass_to_reader(int fd)
{
    struct msg m = {.type = HANDOFF, .id = fd};

    watch(fd, 0);
    memcpy(m.ip, conns[fd]->ip, sizeof m.ip);
    next_reader = (next_reader + 1) % nreaders;
    if (send_msg(readers[next_reader], &m, fd) < 0) {
        fprintf(stderr, "handoff failed: %s\n", strerror(errno));
        close_conn(fd);
        return;
    }
    conns[fd]->at_reader = 1;
}

static void from_reader(int sock)
{
    struct msg m;
    int fd;
    ssize_t n = recv_msg(sock, &m, &fd);

    if (fd >= 0)
        close(fd);
    if (n == 0) {
        fprintf(stderr, "reader gone\n");
        watch(sock, 0);
    }
    if (n != (ssize_t)sizeof m || m.id < 0 || m.id >= max_fd || !conns[m.id] ||
        !conns[m.id]->at_reader)
        return;
    conns[m.id]->at_reader = 0;
    if (m.type == GONE)
        close_conn(m.id);
    else
        watch(m.id, 1);
}

static int is_reader(int fd)
{
    for (int i = 0; i < nreaders; i++)
        if (readers[i] == fd)
            return 1;
    return 0;
}

static void tcp_main(int lfd)
{
    struct epoll_event evs[64];

    for (;;) {
        int n = epoll_wait(epfd, evs, 64, -1);

        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd)
                new_conn(lfd);
            else if (is_reader(fd))
                from_reader(fd);
            else if (fd < max_fd && conns[fd] && !conns[fd]->at_reader)
                pass_to_reader(fd);
        }
    }
}

static void fork_readers(void)
{
    for (int i = 0; i < nreaders; i++) {
        int sv[2];
        pid_t parent = getpid(), pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
            perror("socketpair");
            exit(1);
        }
        pid = fork();
        if (pid == 0) {
            srv_child_init(parent);
            close(sv[0]);
            for (int j = 0; j < i; j++)
                close(readers[j]);
            reader(sv[1]);
        }
        if (pid < 0) {
            perror("fork");
            exit(1);
        }
        srv_track_child(pid);
        close(sv[1]);
        readers[i] = sv[0];
    }
}

int main(int argc, char **argv)
{
    static const char usage[] = "kamlike -l ADDR -p PORT [-a LOG] [-r READERS]";
    struct srv_args a = {"127.0.0.1", 0, NULL};
    struct rlimit rl;
    int opt, lfd;

    while ((opt = getopt(argc, argv, "l:p:a:r:")) != -1) {
        if (srv_common_opt(&a, opt, optarg))
            continue;
        if (opt != 'r')
            srv_usage_exit(usage);
        nreaders = srv_atoi(optarg, 1, MAX_READERS);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    max_fd = rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur;
    conns = calloc((size_t)max_fd, sizeof *conns);
    lfd = srv_listen(&a);
    srv_log_open(a.log);
    srv_exit_on_term();
    fork_readers();
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || epfd < 0) {
        perror("setup");
        return 1;
    }
    for (int i = 0; i < nreaders; i++)
        watch(readers[i], 1);
    watch(lfd, 1);
    srv_ready(lfd);
    tcp_main(lfd);
    return 0;
}
