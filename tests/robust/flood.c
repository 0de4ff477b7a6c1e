/* ilflood: load for the flood and exhaustion tests (tests/robust/flood.bats,
 * exhaust.bats). Two modes, both bounded in count and time.
 *
 *   ilflood flood -s SRC [-S NSRC] -d DST -p PORT -T SECONDS -m MAX
 *                 [-c INFLIGHT] [-t MS] [-k KEEP] [-H SECONDS]
 *
 * Connects as fast as it can from SRC (or from NSRC consecutive IPv4
 * addresses starting at SRC, in turn) until SECONDS have passed or MAX
 * attempts were made, with up to INFLIGHT attempts at once (default 32, below
 * the test servers' backlog of 128). Each attempt sends PING and waits up to
 * MS (default 2000) for PONG (ok), an RST (rejected), an orderly close (eof).
 * The first KEEP good connections are held, later ones closed at once. Prints
 * "started" when the first attempt is made, then, once every attempt in
 * flight has ended,
 *   attempts=A ok=O rejected=R eof=E timeout=T error=X kept=K
 * and holds the kept connections until stdin reaches EOF, SIGTERM, or the
 * hold limit (-H, default 300 s).
 *
 *   ilflood hold -s SRC [-S NSRC] -n PER -d DST -p PORT [-t MS] [-i MS]
 *                [-v] [-H SECONDS]
 *
 * Opens PER connections from each of NSRC (default 1) consecutive sources, in
 * order, one at a time (so the server accepts them in this order); then
 * sends PING on each and waits (MS per connection at most, together) for
 * every PONG. Prints the ilclient result line
 *   ok=X fail=Y reset=R eof=E timeout=T error=O
 * (with -v first one "src IP ok=N" line per source). With -i, every MS
 * milliseconds it pings every good connection again; a connection that does
 * not answer is lost (closed). On stdin EOF, SIGTERM or the hold limit it
 * prints "rounds=R pongs=P lost=L" and exits. */
#include <arpa/inet.h>
#include <errno.h>
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
    int nsrc, port, seconds, max, inflight, timeout, keep, hold, per, interval, verbose;
};

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: ilflood flood -s SRC [-S NSRC] -d DST -p PORT -T SECONDS -m MAX "
            "[-c INFLIGHT] [-t MS] [-k KEEP] [-H SECONDS]\n"
            "       ilflood hold -s SRC [-S NSRC] -n PER -d DST -p PORT [-t MS] [-i MS] [-v] "
            "[-H SECONDS]\n");
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

static struct sockaddr_in addr_of(const char *ip, int offset, int port)
{
    struct sockaddr_in a;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
        fprintf(stderr, "ilflood: bad IPv4 address %s\n", ip);
        exit(2);
    }
    a.sin_addr.s_addr = htonl(ntohl(a.sin_addr.s_addr) + (unsigned)offset);
    return a;
}

static int classify(int err)
{
    if (err == ECONNRESET || err == EPIPE)
        return RES_RESET;
    if (err == ETIMEDOUT)
        return RES_TIMEOUT;
    return RES_ERROR;
}

/* Starts a non-blocking connect from source number i; -1 with *res set. */
static int start_conn(const struct opts *o, int i, int *res)
{
    struct sockaddr_in s = addr_of(o->src, i, 0), d = addr_of(o->dst, 0, o->port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    *res = RES_ERROR;
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&s, sizeof s) < 0 ||
        (connect(fd, (struct sockaddr *)&d, sizeof d) < 0 && errno != EINPROGRESS)) {
        *res = classify(errno);
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends PING once connected; RES_OK, or why not. */
static int send_ping(int fd)
{
    int err = 0;
    socklen_t elen = sizeof err;

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        err = errno;
    if (err)
        return classify(err);
    if (send(fd, "PING\n", 5, MSG_NOSIGNAL) != 5)
        return classify(errno);
    return RES_OK;
}

/* Reads the answer to one PING; -1 while incomplete. */
static int read_pong(int fd, char *buf, int *len)
{
    ssize_t r = recv(fd, buf + *len, (size_t)(5 - *len), 0);

    if (r == 0)
        return RES_EOF;
    if (r < 0)
        return errno == EAGAIN || errno == EINTR ? -1 : classify(errno);
    *len += (int)r;
    if (*len < 5)
        return -1;
    *len = 0;
    return memcmp(buf, "PONG\n", 5) == 0 ? RES_OK : RES_ERROR;
}

/* Holds until stdin reaches EOF, SIGTERM or the deadline; with interval > 0
 * returns after that many ms instead (1), else 0 when it is time to stop. */
static int hold_wait(long deadline, int interval)
{
    long until = interval > 0 ? now_ms() + interval : deadline;
    char buf[256];

    if (until > deadline)
        until = deadline;
    while (!stop) {
        long left = until - now_ms();
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        if (left <= 0)
            return interval > 0 && now_ms() < deadline;
        int r = poll(&p, 1, (int)left);
        if (r > 0 && read(STDIN_FILENO, buf, sizeof buf) <= 0)
            return 0;
        if (r > 0 && (p.revents & (POLLHUP | POLLERR)) && !(p.revents & POLLIN))
            return 0;
    }
    return 0;
}

/* ---- flood ---- */

struct attempt {
    int fd;
    int pinged;
    int len;
    long deadline;
    char buf[8];
};

static void flood(const struct opts *o)
{
    struct attempt *a = calloc((size_t)o->inflight, sizeof *a);
    struct pollfd *p = calloc((size_t)o->inflight, sizeof *p);
    int *kept = calloc((size_t)o->keep + 1, sizeof *kept);
    long count[RES_COUNT] = {0}, attempts = 0, deadline = now_ms() + o->seconds * 1000L;
    int active = 0, nkept = 0, next_src = 0;

    if (!a || !p || !kept) {
        perror("ilflood");
        exit(1);
    }
    for (int i = 0; i < o->inflight; i++)
        a[i].fd = -1;
    printf("started\n");
    fflush(stdout);
    while (active > 0 || (!stop && attempts < o->max && now_ms() < deadline)) {
        long now = now_ms();
        /* Fill the free places with new attempts. */
        for (int i = 0; i < o->inflight; i++) {
            if (a[i].fd >= 0 || stop || attempts >= o->max || now >= deadline)
                continue;
            int res;
            attempts++;
            a[i].fd = start_conn(o, next_src, &res);
            next_src = (next_src + 1) % o->nsrc;
            if (a[i].fd < 0) {
                count[res]++;
                continue;
            }
            a[i].pinged = 0;
            a[i].len = 0;
            a[i].deadline = now + o->timeout;
            active++;
        }
        for (int i = 0; i < o->inflight; i++) {
            p[i].fd = a[i].fd;
            p[i].events = a[i].pinged ? POLLIN : POLLOUT;
            p[i].revents = 0;
        }
        if (poll(p, (nfds_t)o->inflight, 50) < 0 && errno != EINTR) {
            perror("ilflood: poll");
            exit(1);
        }
        now = now_ms();
        for (int i = 0; i < o->inflight; i++) {
            int res = -1;
            if (a[i].fd < 0)
                continue;
            if (p[i].revents && !a[i].pinged) {
                res = send_ping(a[i].fd);
                if (res == RES_OK) {
                    a[i].pinged = 1;
                    res = -1;
                }
            } else if (p[i].revents) {
                res = read_pong(a[i].fd, a[i].buf, &a[i].len);
            }
            if (res < 0 && now >= a[i].deadline)
                res = RES_TIMEOUT;
            if (res < 0)
                continue;
            count[res]++;
            if (res == RES_OK && nkept < o->keep)
                kept[nkept++] = a[i].fd;
            else
                close(a[i].fd);
            a[i].fd = -1;
            active--;
        }
    }
    printf("attempts=%ld ok=%ld rejected=%ld eof=%ld timeout=%ld error=%ld kept=%d\n", attempts,
           count[RES_OK], count[RES_RESET], count[RES_EOF], count[RES_TIMEOUT], count[RES_ERROR], nkept);
    fflush(stdout);
    hold_wait(now_ms() + o->hold * 1000L, 0);
    for (int i = 0; i < nkept; i++)
        close(kept[i]);
}

/* ---- hold ---- */

struct held {
    int fd;
    int src;
    int len;
    char buf[8];
};

/* PING on every open connection, then every answer within timeout ms.
 * Counts the results in count[] (if given); failed connections are closed. */
static void ping_all(struct held *h, int n, int timeout, long *count)
{
    long deadline = now_ms() + timeout;
    int waiting = 0;
    struct pollfd *p = calloc((size_t)n, sizeof *p);

    if (!p) {
        perror("ilflood");
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        p[i].fd = -1;
        if (h[i].fd < 0)
            continue;
        int res = send_ping(h[i].fd);
        if (res != RES_OK) {
            count[res]++;
            close(h[i].fd);
            h[i].fd = -1;
            continue;
        }
        h[i].len = 0;
        p[i].fd = h[i].fd;
        p[i].events = POLLIN;
        waiting++;
    }
    while (waiting > 0) {
        long left = deadline - now_ms();
        int r = poll(p, (nfds_t)n, left > 0 ? (int)left : 0);
        if (r < 0 && errno == EINTR)
            continue;
        for (int i = 0; i < n; i++) {
            int res = -1;
            if (p[i].fd < 0)
                continue;
            if (p[i].revents)
                res = read_pong(h[i].fd, h[i].buf, &h[i].len);
            if (res < 0 && r == 0)
                res = RES_TIMEOUT;
            if (res < 0)
                continue;
            count[res]++;
            p[i].fd = -1;
            waiting--;
            if (res != RES_OK) {
                close(h[i].fd);
                h[i].fd = -1;
            }
        }
    }
    free(p);
}

/* Waits for a connect to finish; RES_OK or why not (the fd is then closed). */
static int finish_connect(int *fd, int timeout)
{
    struct pollfd p = {.fd = *fd, .events = POLLOUT};
    long deadline = now_ms() + timeout;
    int r, err = 0;
    socklen_t elen = sizeof err;

    do {
        long left = deadline - now_ms();
        r = poll(&p, 1, left > 0 ? (int)left : 0);
    } while (r < 0 && errno == EINTR);
    if (r == 0)
        err = ETIMEDOUT;
    else if (getsockopt(*fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        err = errno;
    if (!err)
        return RES_OK;
    close(*fd);
    *fd = -1;
    return classify(err);
}

static void hold(const struct opts *o)
{
    int n = o->nsrc * o->per;
    struct held *h = calloc((size_t)n, sizeof *h);
    long count[RES_COUNT] = {0}, deadline = now_ms() + o->hold * 1000L;
    long rounds = 0, pongs = 0, lost = 0;

    if (!h) {
        perror("ilflood");
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        int res;
        h[i].src = i / o->per;
        h[i].fd = start_conn(o, h[i].src, &res);
        if (h[i].fd >= 0)
            res = finish_connect(&h[i].fd, o->timeout);
        if (res != RES_OK)
            count[res]++;
    }
    ping_all(h, n, o->timeout, count);
    if (o->verbose) {
        for (int s = 0; s < o->nsrc; s++) {
            struct sockaddr_in a = addr_of(o->src, s, 0);
            char ip[INET_ADDRSTRLEN];
            int ok = 0;
            for (int i = s * o->per; i < (s + 1) * o->per; i++)
                ok += h[i].fd >= 0;
            inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
            printf("src %s ok=%d\n", ip, ok);
        }
    }
    printf("ok=%ld fail=%ld reset=%ld eof=%ld timeout=%ld error=%ld\n", count[RES_OK],
           n - count[RES_OK], count[RES_RESET], count[RES_EOF], count[RES_TIMEOUT], count[RES_ERROR]);
    fflush(stdout);
    while (hold_wait(deadline, o->interval)) {
        long c[RES_COUNT] = {0};
        ping_all(h, n, o->timeout, c);
        rounds++;
        pongs += c[RES_OK];
        lost += c[RES_RESET] + c[RES_EOF] + c[RES_TIMEOUT] + c[RES_ERROR];
    }
    for (int i = 0; i < n; i++)
        if (h[i].fd >= 0)
            close(h[i].fd);
    if (o->interval > 0)
        printf("rounds=%ld pongs=%ld lost=%ld\n", rounds, pongs, lost);
}

int main(int argc, char **argv)
{
    struct opts o = {.dst = "127.0.0.1", .nsrc = 1, .max = 0, .inflight = 32,
                     .timeout = 2000, .hold = 300, .per = 0};
    struct sigaction sa;
    int opt, is_flood;

    if (argc < 2)
        usage();
    if (strcmp(argv[1], "flood") == 0)
        is_flood = 1;
    else if (strcmp(argv[1], "hold") == 0)
        is_flood = 0;
    else
        usage();
    while ((opt = getopt(argc - 1, argv + 1, "s:S:d:p:T:m:c:t:k:H:n:i:v")) != -1) {
        switch (opt) {
        case 's': o.src = optarg; break;
        case 'S': o.nsrc = num(optarg, 1, 65536); break;
        case 'd': o.dst = optarg; break;
        case 'p': o.port = num(optarg, 1, 65535); break;
        case 'T': o.seconds = num(optarg, 1, 600); break;
        case 'm': o.max = num(optarg, 1, 10000000); break;
        case 'c': o.inflight = num(optarg, 1, 1024); break;
        case 't': o.timeout = num(optarg, 1, 60000); break;
        case 'k': o.keep = num(optarg, 0, 100000); break;
        case 'H': o.hold = num(optarg, 0, 3600); break;
        case 'n': o.per = num(optarg, 1, 100000); break;
        case 'i': o.interval = num(optarg, 1, 60000); break;
        case 'v': o.verbose = 1; break;
        default: usage();
        }
    }
    if (!o.src || !o.port || (is_flood && (!o.seconds || !o.max)) || (!is_flood && !o.per))
        usage();
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (is_flood)
        flood(&o);
    else
        hold(&o);
    return 0;
}
