/* ilchurn: a client in a reconnect loop. Connects N times from SRC, one
 * connection at a time, as fast as it can: connect, PING, wait for PONG (or
 * the server's close), close. Prints one line:
 *
 *   ok=X fail=Y elapsed_ms=Z
 *
 * ok: connections that got their PONG (served); elapsed_ms: from just before
 * the first connect to just after the last connection ended (CLOCK_MONOTONIC),
 * so that a test can bound what a rate limit let through by the time it had.
 *
 *   ilchurn -s SRC -d DST -p PORT -n N [-t MS]
 *
 * -t: timeout for each connect and each PONG (default 2000 ms). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static socklen_t make_addr(const char *ip, int port, struct sockaddr_storage *ss)
{
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        return sizeof *in;
    }
    if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        return sizeof *in6;
    }
    fprintf(stderr, "ilchurn: bad address %s\n", ip);
    exit(2);
}

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

/* One connection: 1 if it was served (PONG), 0 otherwise. */
static int one(const struct sockaddr_storage *src, socklen_t slen,
               const struct sockaddr_storage *dst, socklen_t dlen, int timeout)
{
    int served = 0, err = 0;
    socklen_t elen = sizeof err;
    int fd = socket(dst->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct linger rst = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof rst); /* no TIME_WAIT left */
    if (bind(fd, (const struct sockaddr *)src, slen) != 0) {
        perror("ilchurn: bind");
        exit(2);
    }
    if (connect(fd, (const struct sockaddr *)dst, dlen) < 0 && errno != EINPROGRESS)
        goto out;
    long deadline = now_ms() + timeout;
    if (!wait_fd(fd, POLLOUT, deadline) || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) ||
        err)
        goto out;
    if (send(fd, "PING\n", 5, MSG_NOSIGNAL) != 5)
        goto out;
    char buf[16];
    size_t len = 0;
    while (len < 5 && wait_fd(fd, POLLIN, deadline)) {
        ssize_t r = recv(fd, buf + len, sizeof buf - len, 0);
        if (r <= 0 && !(r < 0 && (errno == EAGAIN || errno == EINTR)))
            break;
        if (r > 0)
            len += (size_t)r;
    }
    served = len >= 5 && memcmp(buf, "PONG\n", 5) == 0;
out:
    close(fd);
    return served;
}

int main(int argc, char **argv)
{
    const char *src = NULL, *dst = NULL;
    int port = 0, n = 0, timeout = 2000, opt;
    while ((opt = getopt(argc, argv, "s:d:p:n:t:")) != -1) {
        switch (opt) {
        case 's': src = optarg; break;
        case 'd': dst = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'n': n = atoi(optarg); break;
        case 't': timeout = atoi(optarg); break;
        default: return 2;
        }
    }
    if (!src || !dst || port <= 0 || port > 65535 || n <= 0 || n > 100000 || timeout <= 0) {
        fprintf(stderr, "usage: ilchurn -s SRC -d DST -p PORT -n N [-t MS]\n");
        return 2;
    }
    struct sockaddr_storage s, d;
    socklen_t slen = make_addr(src, 0, &s), dlen = make_addr(dst, port, &d);
    int ok = 0;
    long start = now_ms();
    for (int i = 0; i < n; i++)
        ok += one(&s, slen, &d, dlen, timeout);
    long elapsed = now_ms() - start;
    printf("ok=%d fail=%d elapsed_ms=%ld\n", ok, n - ok, elapsed);
    return 0;
}
