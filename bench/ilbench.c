/* ilbench: a bounded TCP churn load generator for iplimit's benchmarks.
 *
 * Keeps CONC connections in flight; each one is: nonblocking connect from
 * the next source address, send one request (PING line, or a SIP OPTIONS
 * with -m sip), wait for the reply (PONG / "SIP/2.0 200"), close.  A
 * connection that ends (EOF or reset) before its reply is counted as
 * rejected; one that takes longer than the per-connection timeout as a
 * timeout.  The run stops after COUNT connections or SECONDS, whichever
 * comes first, and prints one line of key=value results:
 *
 *   ok=N rejected=N timeouts=N errors=N secs=S rate=R p50_us=.. p99_us=.. max_us=..
 *
 * rate is (ok + rejected) per second; the latencies are from connect() to
 * the reply, over the ok connections only.
 *
 * Usage: ilbench -a ADDR -p PORT [-c CONC] [-n COUNT] [-t SECONDS]
 *                [-s SRC -N NSRC] [-m ping|sip] [-i INTERVAL_MS] [-F]
 *   -s/-N   bind the connections to NSRC consecutive IPv4 addresses from SRC
 *   -i      pace: each slot waits INTERVAL_MS between its connections
 *   -F      close with FIN (default: SO_LINGER 0, an RST, so the client
 *           leaves no TIME_WAIT behind and runs can follow each other) */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONC 4096
#define CONN_TIMEOUT_NS (2000LL * 1000 * 1000)
#define MAX_SAMPLES (4u << 20)

enum slot_state { IDLE, CONNECTING, WAITING, PAUSED };

struct slot {
    int fd;
    enum slot_state state;
    int64_t started;  /* ns, monotonic */
    int64_t resume;   /* ns, when PAUSED */
    size_t got;
    char buf[512];
};

static struct sockaddr_in dst;
static uint32_t src_base; /* host order; 0 = no bind */
static uint32_t nsrc = 1, next_src;
static int use_sip, fin_close;
static int64_t interval_ns;
static unsigned long long n_ok, n_rej, n_timeout, n_err, n_started, max_count;
static uint32_t *samples;
static size_t nsamples;
static unsigned seq;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static int open_conn(struct slot *s, int epfd)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        n_err++;
        return -1;
    }
    if (src_base) {
        int one = 1;
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(src_base + next_src);
        next_src = (next_src + 1) % nsrc;
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
            close(fd);
            n_err++;
            return -1;
        }
    }
    s->started = now_ns();
    s->got = 0;
    n_started++;
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        close(fd);
        n_err++;
        return -1;
    }
    s->fd = fd;
    s->state = CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl");
    return 0;
}

static void end_conn(struct slot *s, int epfd)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
    if (!fin_close) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(s->fd);
    s->fd = -1;
    if (interval_ns) {
        s->state = PAUSED;
        s->resume = s->started + interval_ns;
    } else {
        s->state = IDLE;
    }
}

static int send_request(struct slot *s)
{
    char req[512];
    int len;
    if (use_sip) {
        struct sockaddr_in me;
        socklen_t ml = sizeof me;
        getsockname(s->fd, (struct sockaddr *)&me, &ml);
        char mine[INET_ADDRSTRLEN], theirs[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &me.sin_addr, mine, sizeof mine);
        inet_ntop(AF_INET, &dst.sin_addr, theirs, sizeof theirs);
        unsigned id = ++seq;
        len = snprintf(req, sizeof req,
                       "OPTIONS sip:bench@%s:%d SIP/2.0\r\n"
                       "Via: SIP/2.0/TCP %s:%d;branch=z9hG4bK-ilb-%d-%u;rport\r\n"
                       "Max-Forwards: 70\r\n"
                       "From: <sip:ilbench@%s>;tag=%u\r\n"
                       "To: <sip:bench@%s>\r\n"
                       "Call-ID: ilb-%d-%u@%s\r\n"
                       "CSeq: 1 OPTIONS\r\n"
                       "Content-Length: 0\r\n\r\n",
                       theirs, ntohs(dst.sin_port), mine, ntohs(me.sin_port), (int)getpid(), id,
                       mine, id, theirs, (int)getpid(), id, mine);
    } else {
        len = snprintf(req, sizeof req, "PING\n");
    }
    return send(s->fd, req, (size_t)len, MSG_NOSIGNAL) == len ? 0 : -1;
}

static int reply_complete(const struct slot *s)
{
    if (use_sip)
        return memmem(s->buf, s->got, "\r\n\r\n", 4) != NULL;
    return memchr(s->buf, '\n', s->got) != NULL;
}

static int reply_ok(const struct slot *s)
{
    if (use_sip)
        return s->got >= 12 && memcmp(s->buf, "SIP/2.0 200", 11) == 0;
    return s->got >= 4 && memcmp(s->buf, "PONG", 4) == 0;
}

static void record(int64_t ns)
{
    if (nsamples < MAX_SAMPLES)
        samples[nsamples++] = (uint32_t)(ns / 1000 > UINT32_MAX ? UINT32_MAX : ns / 1000);
}

static void on_event(struct slot *s, uint32_t events, int epfd)
{
    if (s->state == CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            if (err == ECONNRESET || err == ECONNREFUSED)
                n_rej++;
            else
                n_err++;
            end_conn(s, epfd);
            return;
        }
        if (send_request(s) < 0) {
            n_rej++;
            end_conn(s, epfd);
            return;
        }
        s->state = WAITING;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = s};
        epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
        return;
    }
    if (s->state != WAITING)
        return;
    for (;;) {
        ssize_t n = recv(s->fd, s->buf + s->got, sizeof s->buf - 1 - s->got, 0);
        if (n > 0) {
            s->got += (size_t)n;
            if (reply_complete(s) || s->got >= sizeof s->buf - 1) {
                if (reply_ok(s)) {
                    n_ok++;
                    record(now_ns() - s->started);
                } else {
                    n_err++;
                }
                end_conn(s, epfd);
                return;
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        /* EOF or reset before the whole reply: the server turned us away. */
        n_rej++;
        end_conn(s, epfd);
        return;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(double p)
{
    if (!nsamples)
        return 0;
    size_t i = (size_t)(p * (double)(nsamples - 1) + 0.5);
    return samples[i];
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 0, conc = 8, opt;
    double secs = 5;
    max_count = 0;
    while ((opt = getopt(argc, argv, "a:p:c:n:t:s:N:m:i:F")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': conc = atoi(optarg); break;
        case 'n': max_count = strtoull(optarg, NULL, 10); break;
        case 't': secs = atof(optarg); break;
        case 's': {
            struct in_addr a;
            if (inet_pton(AF_INET, optarg, &a) != 1)
                die("-s");
            src_base = ntohl(a.s_addr);
            break;
        }
        case 'N': nsrc = (uint32_t)atoi(optarg); break;
        case 'm': use_sip = strcmp(optarg, "sip") == 0; break;
        case 'i': interval_ns = (int64_t)(atof(optarg) * 1e6); break;
        case 'F': fin_close = 1; break;
        default:
            fprintf(stderr, "usage: ilbench -a ADDR -p PORT [-c CONC] [-n COUNT] [-t SECONDS] "
                            "[-s SRC -N NSRC] [-m ping|sip] [-i MS] [-F]\n");
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || conc < 1 || conc > MAX_CONC || nsrc < 1 || secs <= 0 ||
        secs > 3600) {
        fprintf(stderr, "ilbench: bad arguments\n");
        return 2;
    }
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &dst.sin_addr) != 1)
        die("-a");
    samples = malloc(MAX_SAMPLES * sizeof *samples);
    struct slot *slots = calloc((size_t)conc, sizeof *slots);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!samples || !slots || epfd < 0)
        die("setup");

    int64_t t0 = now_ns(), deadline = t0 + (int64_t)(secs * 1e9);
    for (int i = 0; i < conc; i++) {
        slots[i].fd = -1;
        slots[i].state = IDLE;
    }
    struct epoll_event evs[256];
    int stopping = 0;
    for (;;) {
        int64_t now = now_ns();
        if (now >= deadline || (max_count && n_started >= max_count))
            stopping = 1;
        int busy = 0;
        int64_t wake = deadline;
        for (int i = 0; i < conc; i++) {
            struct slot *s = &slots[i];
            if ((s->state == CONNECTING || s->state == WAITING) &&
                now - s->started > CONN_TIMEOUT_NS) {
                n_timeout++;
                end_conn(s, epfd);
            }
            if (s->state == PAUSED && now >= s->resume)
                s->state = IDLE;
            if (s->state == IDLE && !stopping && !(max_count && n_started >= max_count))
                open_conn(s, epfd);
            if (s->state == CONNECTING || s->state == WAITING)
                busy++;
            if (s->state == PAUSED && s->resume < wake)
                wake = s->resume;
        }
        if (stopping && !busy)
            break;
        int timeout_ms = 50;
        if (interval_ns) {
            int64_t d = (wake - now) / 1000000;
            timeout_ms = d < 0 ? 0 : d < 50 ? (int)d : 50;
        }
        int n = epoll_wait(epfd, evs, 256, timeout_ms);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events, epfd);
    }
    double el = (double)(now_ns() - t0) / 1e9;
    qsort(samples, nsamples, sizeof *samples, cmp_u32);
    printf("ok=%llu rejected=%llu timeouts=%llu errors=%llu secs=%.3f rate=%.1f p50_us=%u "
           "p99_us=%u max_us=%u\n",
           n_ok, n_rej, n_timeout, n_err, el, (double)(n_ok + n_rej) / el, pct(0.5), pct(0.99),
           nsamples ? samples[nsamples - 1] : 0);
    return 0;
}
