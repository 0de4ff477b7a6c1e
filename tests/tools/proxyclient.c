/* proxyclient: a load balancer that speaks the PROXY protocol. Opens N TCP
 * connections from SRC (the balancer's address), then on each in turn
 * sends a PROXY header naming CLIENT followed by "\nPING\n", and waits for
 * "PONG". Prints one line per connection and a result line, then holds
 * the good connections open until stdin reaches EOF or SIGTERM.
 *
 *   proxyclient -s SRC -d DST -p PORT -n N -c CLIENT [-v 1|2] [-l] [-g]
 *               [-b MS] [-R HEX] [-P] [-A] [-t MS]
 *
 * -v  header version (default 2)
 * -l  v2 LOCAL (a health check: no addresses)
 * -g  gate: after connecting all N, print "connected=N" and wait for a
 *     line on stdin before sending anything (the header comes late, with
 *     the first message, like an AWS NLB)
 * -b  send the header one byte at a time, MS between bytes
 * -R  send these bytes (hex) instead of a header
 * -P  send no PING after the header, wait for PONG anyway (never comes)
 * -A  send on every connection first, print "sent=N", then wait for the
 *     answers (with the server stopped, every header is there at accept)
 * -t  timeout for each connect and each PONG (default 3000 ms)
 *
 * The test servers answer "HDR" to a PROXY header they read (tests/servers/
 * common.c): "headers_seen=H" counts those before a PONG.
 * Lines: "conn I ok|reset|eof|timeout|error", "headers_seen=H"; result
 * line: ok=X reset=R eof=E timeout=T error=O */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { RES_OK, RES_RESET, RES_EOF, RES_TIMEOUT, RES_ERROR, RES_COUNT };
static const char *const res_name[] = {"ok", "reset", "eof", "timeout", "error"};

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: proxyclient -s SRC -d DST -p PORT -n N -c CLIENT [-v 1|2] [-l] "
                    "[-g] [-b MS] [-R HEX] [-P] [-A] [-t MS]\n");
    exit(2);
}

static int to_sockaddr(const char *ip, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof *sin;
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof *sin6;
        return 0;
    }
    return -1;
}

/* The header for client (port 40000+i) to dst:port. */
static size_t make_header(unsigned char *out, int version, int local, const char *client,
                          const char *dst, int port, int i)
{
    unsigned char caddr[16], daddr[16];
    int v6 = strchr(client, ':') != NULL;
    int dst_v6 = strchr(dst, ':') != NULL;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, client, caddr) != 1)
        usage();
    /* A header's two addresses share a family: an IPv6 client to an IPv4
     * server is written with the server as ::ffff:a.b.c.d, and the reverse
     * with the server as 127.0.0.1 (the address does not matter here). */
    if (v6 && !dst_v6) {
        memset(daddr, 0, 10);
        memset(daddr + 10, 0xff, 2);
        inet_pton(AF_INET, dst, daddr + 12);
    } else if (!v6 && dst_v6) {
        inet_pton(AF_INET, "127.0.0.1", daddr);
    } else {
        inet_pton(v6 ? AF_INET6 : AF_INET, dst, daddr);
    }
    int sport = 40000 + i;
    if (version == 1) {
        char dtext[INET6_ADDRSTRLEN];
        inet_ntop(v6 ? AF_INET6 : AF_INET, daddr, dtext, sizeof dtext);
        return (size_t)sprintf((char *)out, "PROXY %s %s %s %d %d\r\n", v6 ? "TCP6" : "TCP4",
                               client, dtext, sport, port);
    }
    static const unsigned char sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                          0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    memcpy(out, sig, 12);
    out[12] = local ? 0x20 : 0x21;
    if (local) {
        out[13] = 0;
        out[14] = out[15] = 0;
        return 16;
    }
    size_t alen = v6 ? 16 : 4;
    /* 7 bytes of TLV (a PP2_TYPE_NOOP) after the addresses: skipped. */
    size_t len = 2 * alen + 4 + 7;
    out[13] = v6 ? 0x21 : 0x11;
    out[14] = (unsigned char)(len >> 8);
    out[15] = (unsigned char)len;
    unsigned char *p = out + 16;
    memcpy(p, caddr, alen);
    memcpy(p + alen, daddr, alen);
    p += 2 * alen;
    *p++ = (unsigned char)(sport >> 8);
    *p++ = (unsigned char)sport;
    *p++ = (unsigned char)(port >> 8);
    *p++ = (unsigned char)port;
    *p++ = 0x04; /* PP2_TYPE_NOOP */
    *p++ = 0;
    *p++ = 4;
    memcpy(p, "pad!", 4);
    return 16 + len;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t from_hex(const char *hex, unsigned char *out, size_t room)
{
    size_t n = 0;
    while (hex[0] && hex[1] && n < room) {
        int hi = hexval(hex[0]), lo = hexval(hex[1]);
        if (hi < 0 || lo < 0)
            usage();
        out[n++] = (unsigned char)(hi << 4 | lo);
        hex += 2;
    }
    return n;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static int send_bytes(int fd, const unsigned char *p, size_t n, int gap_ms)
{
    if (gap_ms <= 0)
        return send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
    for (size_t i = 0; i < n; i++) {
        if (send(fd, p + i, 1, MSG_NOSIGNAL) != 1)
            return -1;
        struct timespec ts = {0, (long)gap_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* Waits for "PONG\n"; classifies what came instead. Counts the "HDR"
 * lines before it (the server saw our header) in *hdr. */
static int await_pong(int fd, int timeout, int *hdr)
{
    char buf[256];
    size_t got = 0;
    long deadline = now_ms() + timeout;
    for (;;) {
        char *nl;
        while ((nl = memchr(buf, '\n', got)) != NULL) {
            size_t len = (size_t)(nl - buf) + 1;
            if (len == 5 && memcmp(buf, "PONG\n", 5) == 0)
                return RES_OK;
            if (len == 4 && memcmp(buf, "HDR\n", 4) == 0)
                (*hdr)++;
            else
                return RES_ERROR;
            memmove(buf, buf + len, got - len);
            got -= len;
        }
        if (got == sizeof buf)
            return RES_ERROR;
        long left = deadline - now_ms();
        if (left <= 0)
            return RES_TIMEOUT;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return RES_TIMEOUT;
        ssize_t n = recv(fd, buf + got, sizeof buf - got, 0);
        if (n == 0)
            return RES_EOF;
        if (n < 0)
            return errno == ECONNRESET || errno == EPIPE ? RES_RESET : RES_ERROR;
        got += (size_t)n;
    }
}

int main(int argc, char **argv)
{
    const char *src = NULL, *dst = NULL, *client = NULL, *raw = NULL;
    int port = 0, n = 0, version = 2, local = 0, gate = 0, gap = 0, ping = 1, timeout = 3000;
    int all_first = 0, headers_seen = 0;
    int opt;
    while ((opt = getopt(argc, argv, "s:d:p:n:c:v:lgb:R:PAt:")) != -1) {
        switch (opt) {
        case 's': src = optarg; break;
        case 'd': dst = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'n': n = atoi(optarg); break;
        case 'c': client = optarg; break;
        case 'v': version = atoi(optarg); break;
        case 'l': local = 1; break;
        case 'g': gate = 1; break;
        case 'b': gap = atoi(optarg); break;
        case 'R': raw = optarg; break;
        case 'P': ping = 0; break;
        case 'A': all_first = 1; break;
        case 't': timeout = atoi(optarg); break;
        default: usage();
        }
    }
    if (!src || !dst || port <= 0 || n <= 0 || n > 1000 || (!client && !raw && !local) ||
        (version != 1 && version != 2))
        usage();
    if (!client)
        client = "127.0.0.1";
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct sockaddr_storage sa, da;
    socklen_t slen, dlen;
    if (to_sockaddr(src, 0, &sa, &slen) || to_sockaddr(dst, port, &da, &dlen))
        usage();
    int *fds = calloc((size_t)n, sizeof *fds);
    int *res = calloc((size_t)n, sizeof *res);
    int count[RES_COUNT] = {0};
    for (int i = 0; i < n; i++) {
        fds[i] = socket(da.ss_family, SOCK_STREAM, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, slen) != 0 ||
            connect(fds[i], (struct sockaddr *)&da, dlen) != 0) {
            fprintf(stderr, "connect %d: %s\n", i, strerror(errno));
            res[i] = RES_ERROR;
        } else {
            res[i] = -1;
        }
    }
    printf("connected=%d\n", n);
    if (gate) {
        char line[64];
        if (!fgets(line, sizeof line, stdin))
            return 1;
    }
    /* Sends the header (and PING) on connection i; -1 when that failed. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            if (res[i] == RES_ERROR)
                continue;
            if (pass == 0 || !all_first) {
                unsigned char hdr[1200];
                size_t len = raw ? from_hex(raw, hdr, sizeof hdr)
                                 : make_header(hdr, version, local, client, dst, port, i);
                /* A newline first: the test servers answer lines that start
                 * with PING, and a v2 header does not end with one. */
                if (ping) {
                    memcpy(hdr + len, "\nPING\n", 6);
                    len += 6;
                }
                /* Slow mode: the header a byte at a time, PING with its last byte. */
                size_t slow = gap > 0 ? len - (ping ? 7 : 1) : 0;
                if ((slow && send_bytes(fds[i], hdr, slow, gap)) ||
                    send_bytes(fds[i], hdr + slow, len - slow, 0)) {
                    res[i] = errno == ECONNRESET || errno == EPIPE ? RES_RESET : RES_ERROR;
                    continue;
                }
            }
            if (pass == 1 || !all_first)
                res[i] = await_pong(fds[i], timeout, &headers_seen);
        }
        if (pass == 0 && all_first)
            printf("sent=%d\n", n);
        if (!all_first)
            break;
    }
    for (int i = 0; i < n; i++) {
        count[res[i]]++;
        printf("conn %d %s\n", i, res_name[res[i]]);
    }
    printf("headers_seen=%d\n", headers_seen);
    printf("ok=%d reset=%d eof=%d timeout=%d error=%d\n", count[RES_OK], count[RES_RESET],
           count[RES_EOF], count[RES_TIMEOUT], count[RES_ERROR]);
    /* Hold until stdin ends (or SIGTERM). */
    char buf[64];
    while (!stop && read(0, buf, sizeof buf) > 0)
        ;
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return 0;
}
