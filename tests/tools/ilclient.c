/* ilclient: opens N TCP connections from a chosen source address, checks each
 * with PING/PONG, prints one result line and holds the good connections open
 * until stdin reaches EOF, SIGTERM/SIGINT, or the hold limit (-H seconds).
 *
 *   ilclient -s SRC -d DST -p PORT -n N [-t MS] [-r ROUNDS] [-w MS] [-c] [-g] [-H S]
 *
 * -t  timeout for each connect and each PONG (default 2000 ms)
 * -r  PING/PONG rounds per connection (default 1)
 * -w  before the first PING, wait up to MS for the server to close first, so
 *     that its FIN or RST is seen as such (a close with our PING unread
 *     would always turn into an RST)
 * -c  connect all N first and print "connected=K", then talk on each
 * -g  with -c: after "connected=K", wait for a line on stdin (or EOF, at
 *     most the hold limit) before talking, so a test can act in between
 *
 * Result line: ok=X fail=Y reset=R eof=E timeout=T error=O
 * (fail = R + E + T + O; reset: ECONNRESET/EPIPE, eof: orderly close). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { RES_OK, RES_RESET, RES_EOF, RES_TIMEOUT, RES_ERROR, RES_COUNT };

struct opts {
    const char *src, *dst;
    int port, n, timeout, rounds, wait_first, connect_first, gate, hold;
};

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: ilclient -s SRC -d DST -p PORT -n N [-t MS] [-r ROUNDS] "
                    "[-w MS] [-c [-g]] [-H SECONDS]\n");
    exit(2);
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static int num(const char *s, int min, int max)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < min || v > max)
        usage();
    return (int)v;
}

static socklen_t make_addr(const char *ip, int port, struct sockaddr_storage *ss)
{
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof *ss);
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        return sizeof *in;
    }
    if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        return sizeof *in6;
    }
    fprintf(stderr, "ilclient: bad address %s\n", ip);
    exit(2);
}

static int classify(int err)
{
    if (err == ECONNRESET || err == EPIPE)
        return RES_RESET;
    if (err == ETIMEDOUT)
        return RES_TIMEOUT;
    return RES_ERROR;
}

/* Waits for events on fd until the absolute deadline; 0 on timeout. */
static int wait_fd(int fd, short events, long deadline)
{
    struct pollfd p = {.fd = fd, .events = events};

    for (;;) {
        long left = deadline - now_ms();
        int r = poll(&p, 1, left > 0 ? (int)left : 0);
        if (r >= 0 || errno != EINTR)
            return r > 0;
    }
}

/* Non-blocking connect from src; returns the fd or -1 with *res set. */
static int open_conn(const struct opts *o, int *res)
{
    struct sockaddr_storage s, d;
    socklen_t slen = make_addr(o->src, 0, &s), dlen = make_addr(o->dst, o->port, &d);
    int err = 0;
    socklen_t elen = sizeof err;
    int fd = socket(d.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    *res = RES_ERROR;
    if (fd < 0 || bind(fd, (struct sockaddr *)&s, slen) < 0) {
        perror("ilclient: socket/bind");
        goto fail;
    }
    if (connect(fd, (struct sockaddr *)&d, dlen) < 0 && errno != EINPROGRESS) {
        *res = classify(errno);
        goto fail;
    }
    if (!wait_fd(fd, POLLOUT, now_ms() + o->timeout)) {
        *res = RES_TIMEOUT;
        goto fail;
    }
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err == 0)
        return fd;
    *res = classify(err);
fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Reads once; RES_OK with data, else why the connection ended. */
static int read_some(int fd, char *buf, size_t cap, size_t *len)
{
    ssize_t r = recv(fd, buf + *len, cap - *len, 0);

    if (r > 0) {
        *len += (size_t)r;
        return RES_OK;
    }
    if (r == 0)
        return RES_EOF;
    if (errno == EAGAIN || errno == EINTR)
        return RES_OK;
    return classify(errno);
}

static int ping(int fd, int timeout)
{
    char buf[64];
    size_t len = 0;
    long deadline = now_ms() + timeout;

    if (send(fd, "PING\n", 5, MSG_NOSIGNAL) != 5)
        return classify(errno);
    while (len < 5 || memcmp(buf, "PONG\n", 5) != 0) {
        int r;
        if (len >= 5)
            return RES_ERROR;
        if (!wait_fd(fd, POLLIN, deadline))
            return RES_TIMEOUT;
        if ((r = read_some(fd, buf, sizeof buf, &len)) != RES_OK)
            return r;
    }
    return RES_OK;
}

/* -w: a rejected connection is closed by the server without any request. */
static int server_closes_first(int fd, int ms)
{
    char buf[64];
    size_t len = 0;

    int r;

    if (ms <= 0 || !wait_fd(fd, POLLIN, now_ms() + ms))
        return RES_OK;
    r = read_some(fd, buf, sizeof buf, &len);
    return r == RES_OK && len > 0 ? RES_ERROR : r;
}

static int talk(const struct opts *o, int fd)
{
    int r = server_closes_first(fd, o->wait_first);

    for (int i = 0; r == RES_OK && i < o->rounds; i++)
        r = ping(fd, o->timeout);
    return r;
}

/* Reads stdin until a newline (if gate) or EOF, a signal or the deadline. */
static void wait_stdin(int seconds, int gate)
{
    long deadline = now_ms() + seconds * 1000L;
    char buf[256];

    while (!stop && now_ms() < deadline) {
        ssize_t n;
        if (!wait_fd(0, POLLIN, deadline))
            continue;
        n = read(0, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR))
            return;
        if (gate && n > 0 && memchr(buf, '\n', (size_t)n))
            return;
    }
}

static int run(const struct opts *o, int *fds, int *count)
{
    int held = 0;

    for (int i = 0; i < o->n; i++) {
        int r;
        fds[i] = open_conn(o, &r);
        if (fds[i] < 0)
            count[r]++;
    }
    if (o->connect_first) {
        int k = 0;
        for (int i = 0; i < o->n; i++)
            k += fds[i] >= 0;
        printf("connected=%d\n", k);
        fflush(stdout);
        if (o->gate)
            wait_stdin(o->hold, 1);
    }
    for (int i = 0; i < o->n; i++) {
        int r;
        if (fds[i] < 0)
            continue;
        r = talk(o, fds[i]);
        count[r]++;
        if (r == RES_OK) {
            fds[held++] = fds[i];
        } else {
            close(fds[i]);
        }
    }
    return held;
}

static void parse(int argc, char **argv, struct opts *o)
{
    int opt;

    while ((opt = getopt(argc, argv, "s:d:p:n:t:r:w:cgH:")) != -1) {
        switch (opt) {
        case 's': o->src = optarg; break;
        case 'd': o->dst = optarg; break;
        case 'p': o->port = num(optarg, 1, 65535); break;
        case 'n': o->n = num(optarg, 1, 10000); break;
        case 't': o->timeout = num(optarg, 1, 600000); break;
        case 'r': o->rounds = num(optarg, 1, 1000); break;
        case 'w': o->wait_first = num(optarg, 0, 600000); break;
        case 'c': o->connect_first = 1; break;
        case 'g': o->gate = 1; break;
        case 'H': o->hold = num(optarg, 0, 86400); break;
        default: usage();
        }
    }
    if (!o->src || !o->dst || !o->port || !o->n)
        usage();
}

int main(int argc, char **argv)
{
    struct opts o = {.timeout = 2000, .rounds = 1, .hold = 300};
    int count[RES_COUNT] = {0};
    int *fds, held;

    parse(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    fds = calloc((size_t)o.n, sizeof *fds);
    if (!fds)
        return 1;
    held = run(&o, fds, count);
    printf("ok=%d fail=%d reset=%d eof=%d timeout=%d error=%d\n", count[RES_OK],
           o.n - count[RES_OK], count[RES_RESET], count[RES_EOF], count[RES_TIMEOUT], count[RES_ERROR]);
    fflush(stdout);
    wait_stdin(o.hold, 0);
    for (int i = 0; i < held; i++)
        close(fds[i]);
    return 0;
}
