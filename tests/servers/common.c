#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int log_fd = -1;

void srv_usage_exit(const char *usage)
{
    fprintf(stderr, "usage: %s\n", usage);
    exit(2);
}

int srv_atoi(const char *s, int min, int max)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "bad number: %s\n", s);
        exit(2);
    }
    return (int)v;
}

/* The read call srv_serve_read makes (-R, for the servers that take it). */
static enum read_call { RD_READ, RD_READV, RD_RECV, RD_RECVFROM, RD_RECVMSG, RD_READ_CHK,
                        RD_RECV_CHK, RD_RECVFROM_CHK } read_call;
static const char *const read_names[] = {"read", "readv", "recv", "recvfrom", "recvmsg",
                                         "__read_chk", "__recv_chk", "__recvfrom_chk"};

/* glibc's fortified entry points, declared only under _FORTIFY_SOURCE. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t size);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t size, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t size, int flags,
                       struct sockaddr *addr, socklen_t *addrlen);

static ssize_t read_by_call(int fd, void *buf, size_t n)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    struct iovec iov = {buf, n};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    switch (read_call) {
    case RD_READV: return readv(fd, &iov, 1);
    case RD_RECV: return recv(fd, buf, n, 0);
    case RD_RECVFROM: return recvfrom(fd, buf, n, 0, (struct sockaddr *)&ss, &len);
    case RD_RECVMSG: return recvmsg(fd, &mh, 0);
    case RD_READ_CHK: return __read_chk(fd, buf, n, n);
    case RD_RECV_CHK: return __recv_chk(fd, buf, n, n, 0);
    case RD_RECVFROM_CHK:
        return __recvfrom_chk(fd, buf, n, n, 0, (struct sockaddr *)&ss, &len);
    case RD_READ: break;
    }
    return read(fd, buf, n);
}

/* Handles the options every server shares; returns 0 if opt is not one. */
int srv_common_opt(struct srv_args *a, int opt, const char *arg)
{
    switch (opt) {
    case 'l': a->addr = arg; return 1;
    case 'p': a->port = srv_atoi(arg, 0, 65535); return 1;
    case 'a': a->log = arg; return 1;
    case 'R':
        for (size_t i = 0; i < sizeof read_names / sizeof read_names[0]; i++)
            if (strcmp(arg, read_names[i]) == 0) {
                read_call = (enum read_call)i;
                return 1;
            }
        fprintf(stderr, "unknown -R %s\n", arg);
        exit(2);
    }
    return 0;
}

static socklen_t make_addr(const char *addr, int port, struct sockaddr_storage *ss)
{
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    char tmp[IP_STR + 2];
    size_t n = strlen(addr);

    memset(ss, 0, sizeof *ss);
    if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        return sizeof *in;
    }
    if (n >= 2 && n < sizeof tmp && addr[0] == '[' && addr[n - 1] == ']') {
        memcpy(tmp, addr + 1, n - 2);
        tmp[n - 2] = '\0';
        addr = tmp;
    }
    if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        return sizeof *in6;
    }
    fprintf(stderr, "bad address: %s\n", addr);
    exit(2);
}

/* IPv6 listeners are dual-stack, so "::" also takes IPv4-mapped peers. */
int srv_listen(const struct srv_args *a)
{
    struct sockaddr_storage ss;
    socklen_t len = make_addr(a->addr, a->port, &ss);
    int one = 1, zero = 0;
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);

    if (fd < 0) {
        perror("socket");
        exit(1);
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0) {
        perror("bind/listen");
        exit(1);
    }
    return fd;
}

void srv_ready(int lfd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int port = 0;

    if (getsockname(lfd, (struct sockaddr *)&ss, &len) == 0)
        port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                             : ((struct sockaddr_in6 *)&ss)->sin6_port);
    printf("ready port=%d\n", port);
    fflush(stdout);
}

void srv_log_open(const char *path)
{
    if (!path)
        return;
    log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        perror(path);
        exit(1);
    }
}

/* One write() per line: O_APPEND keeps lines from several processes whole. */
void srv_log(const char *event, const char *ip)
{
    char line[128];
    int n;

    if (log_fd < 0)
        return;
    n = snprintf(line, sizeof line, "%s %s\n", event, ip);
    if (write(log_fd, line, (size_t)n) != n)
        perror("accept log");
}

void srv_peer_str(const struct sockaddr_storage *ss, char *buf)
{
    const void *a = ss->ss_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

    if ((ss->ss_family != AF_INET && ss->ss_family != AF_INET6) ||
        !inet_ntop(ss->ss_family, a, buf, IP_STR))
        strcpy(buf, "?");
}

void srv_fd_peer(int fd, char *buf)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        strcpy(buf, "?");
    else
        srv_peer_str(&ss, buf);
}

/* Reports on stderr when accept's address differs from the socket's peer. */
void srv_check_peer(int fd, const struct sockaddr_storage *ss, socklen_t len)
{
    struct sockaddr_storage real;
    socklen_t real_len = sizeof real;
    char a[IP_STR], b[IP_STR];

    memset(&real, 0, sizeof real);
    if (getpeername(fd, (struct sockaddr *)&real, &real_len) < 0)
        return;
    if (len == real_len && memcmp(ss, &real, len) == 0)
        return;
    srv_peer_str(ss, a);
    srv_peer_str(&real, b);
    fprintf(stderr, "peer mismatch: accept gave %s (len %u), getpeername %s (len %u)\n", a,
            (unsigned)len, b, (unsigned)real_len);
}

static int send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int handle_lines(int fd, struct linebuf *lb)
{
    char *nl;

    while ((nl = memchr(lb->buf, '\n', lb->len)) != NULL) {
        size_t used = (size_t)(nl - lb->buf) + 1;
        if (used >= 5 && memcmp(lb->buf, "PING", 4) == 0 && send_all(fd, "PONG\n", 5) < 0)
            return 0;
        /* A PROXY header reached the application (v1 line, or the "QUIT"
         * line ending the v2 signature): tests/integration/proxy.bats
         * checks that the library only peeks. */
        if (((used >= 6 && memcmp(lb->buf, "PROXY ", 6) == 0) ||
             (used == 5 && memcmp(lb->buf, "QUIT\n", 5) == 0)) &&
            send_all(fd, "HDR\n", 4) < 0)
            return 0;
        memmove(lb->buf, nl + 1, lb->len - used);
        lb->len -= used;
    }
    if (lb->len == sizeof lb->buf)
        lb->len = 0;
    return 1;
}

void srv_serve_conn(int fd)
{
    struct linebuf lb = {0};
    char ip[IP_STR];

    srv_fd_peer(fd, ip);
    srv_log("accept", ip);
    while (srv_serve_read(fd, &lb))
        ;
    close(fd);
    srv_log("close", ip);
}

/* One read; answers every complete PING line. Returns 0 once the peer is gone. */
int srv_serve_read(int fd, struct linebuf *lb)
{
    ssize_t n = read_by_call(fd, lb->buf + lb->len, sizeof lb->buf - lb->len);

    if (n < 0)
        return errno == EAGAIN || errno == EINTR;
    if (n == 0)
        return 0;
    lb->len += (size_t)n;
    return handle_lines(fd, lb);
}

/* No SA_RESTART: blocking calls return EINTR so loops can see the flag. */
void srv_on_signal(int sig, void (*fn)(int))
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}


#define MAX_CHILDREN 4096

static volatile pid_t children[MAX_CHILDREN];

void srv_track_child(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == 0) {
            children[i] = pid;
            return;
        }
    fprintf(stderr, "too many children\n");
}

void srv_untrack_child(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == pid)
            children[i] = 0;
}

void srv_reap_children(int sig)
{
    int saved = errno;
    pid_t pid;

    (void)sig;
    while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
        srv_untrack_child(pid);
    errno = saved;
}

static int children_left(void)
{
    int left = 0;

    for (int i = 0; i < MAX_CHILDREN; i++) {
        pid_t pid = children[i];
        if (pid > 0 && (waitpid(pid, NULL, WNOHANG) == 0))
            left++;
        else
            children[i] = 0;
    }
    return left;
}

static void signal_children(int sig)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] > 0)
            kill(children[i], sig);
}

static int reap_for(int ms)
{
    struct timespec ts = {0, 10 * 1000 * 1000};

    for (int t = 0; t < ms / 10; t++) {
        if (children_left() == 0)
            return 0;
        nanosleep(&ts, NULL);
    }
    return children_left();
}

/* Only async-signal-safe calls: SIGTERM to each child, SIGKILL after 3 s. */
static void stop_and_exit(int sig)
{
    (void)sig;
    signal_children(SIGTERM);
    if (reap_for(3000) > 0) {
        signal_children(SIGKILL);
        reap_for(3000);
    }
    _exit(0);
}

void srv_exit_on_term(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop_and_exit;
    sigfillset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

void srv_child_init(pid_t parent)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        children[i] = 0;
    srv_on_signal(SIGTERM, SIG_DFL);
    srv_on_signal(SIGINT, SIG_DFL);
    srv_on_signal(SIGCHLD, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(0);
}

void srv_poll_init(struct srv_pollset *s, int lfd)
{
    s->fds[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
    s->n = 1;
}

int srv_poll_full(const struct srv_pollset *s)
{
    return s->n > SRV_POLL_MAX;
}

void srv_poll_add(struct srv_pollset *s, int fd)
{
    int i = s->n++;
    memset(&s->bufs[i], 0, sizeof s->bufs[i]);
    srv_fd_peer(fd, s->ips[i]);
    srv_log("accept", s->ips[i]);
    s->fds[i] = (struct pollfd){.fd = fd, .events = POLLIN};
}

void srv_poll_serve(struct srv_pollset *s, int (*close_fn)(int))
{
    for (int i = 1; i < s->n; i++) {
        if (!s->fds[i].revents || srv_serve_read(s->fds[i].fd, &s->bufs[i]))
            continue;
        if (close_fn(s->fds[i].fd) != 0)
            perror("close");
        srv_log("close", s->ips[i]);
        int last = --s->n;
        s->fds[i] = s->fds[last];
        s->bufs[i] = s->bufs[last];
        memcpy(s->ips[i], s->ips[last], IP_STR);
        i--;
    }
}
