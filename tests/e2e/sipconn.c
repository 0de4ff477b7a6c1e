/*
 * sipconn: open N TCP connections to a SIP server from one local source
 * address, send one OPTIONS request on each, report what came back, and
 * hold the connections until told otherwise.  Used by iplimit's
 * end-to-end tests against a real Kamailio.
 *
 *   sipconn [-6] [-u] [-x] [-P] -s SRC -d DST -p PORT [-n N] [-t MS]
 *
 *   -s SRC   local address to bind (e.g. 127.0.0.2, ::1)
 *   -d DST   server address       -p PORT  server port
 *   -n N     connections to open one after another (default 1)
 *   -t MS    how long to wait for a connection and for a reply (default 3000)
 *   -u       UDP: send one OPTIONS from SRC, print "udp RESULT", exit
 *   -x       exit after the first round instead of holding the connections
 *   -P       connect all N first, then send on each, then read the replies
 *            (N connections wait in the server's listen queue at once)
 *   -6       addresses are IPv6 (also guessed from a ':' in DST)
 *
 * Output, one line each, flushed at once:
 *   conn I LPORT RESULT      RESULT: ok | reset | closed | timeout |
 *                            connect-failed | status-NNN | error
 *   summary ok=A reset=B closed=C timeout=D failed=E other=F
 * Then, while holding, commands on stdin (one per line):
 *   close I   close connection I              -> "closed I"
 *   open      open one more connection        -> "conn I LPORT RESULT"
 *   ping      OPTIONS again on every open one -> "ping I RESULT" ..., then
 *                                                "pinged ok=A bad=B"
 *   count     -> "open N" (connections this process still holds)
 * stdin EOF or SIGTERM/SIGINT closes everything and exits 0.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 20000

enum result { RES_OK, RES_RESET, RES_CLOSED, RES_TIMEOUT, RES_CONNECT, RES_STATUS, RES_ERROR };
static const char *const result_name[] = {
	"ok", "reset", "closed", "timeout", "connect-failed", "status", "error",
};

static int family = AF_INET;
static struct sockaddr_storage src_addr, dst_addr;
static socklen_t addr_len;
static const char *src_text, *dst_text;
static int dst_port;
static int timeout_ms = 3000;
static int conns[MAX_CONNS];
static int nconns;
static unsigned seq;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void die(const char *what)
{
	fprintf(stderr, "sipconn: %s: %s\n", what, strerror(errno));
	exit(2);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void parse_addr(const char *text, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((unsigned short)port);
		if (inet_pton(AF_INET6, text, &s6->sin6_addr) != 1) {
			fprintf(stderr, "sipconn: bad IPv6 address %s\n", text);
			exit(2);
		}
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)port);
		if (inet_pton(AF_INET, text, &s4->sin_addr) != 1) {
			fprintf(stderr, "sipconn: bad IPv4 address %s\n", text);
			exit(2);
		}
	}
}

static int local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Writes one OPTIONS request with Content-Length: 0 into buf. */
static int build_options(char *buf, size_t size, const char *proto, int lport)
{
	const char *lb = family == AF_INET6 ? "[" : "";
	const char *rb = family == AF_INET6 ? "]" : "";
	unsigned n = ++seq;
	return snprintf(buf, size,
		"OPTIONS sip:e2e@%s%s%s:%d SIP/2.0\r\n"
		"Via: SIP/2.0/%s %s%s%s:%d;branch=z9hG4bK-sipconn-%d-%u;rport\r\n"
		"Max-Forwards: 70\r\n"
		"From: <sip:sipconn@%s%s%s>;tag=%d-%u\r\n"
		"To: <sip:e2e@%s%s%s>\r\n"
		"Call-ID: sipconn-%d-%u@%s%s%s\r\n"
		"CSeq: %u OPTIONS\r\n"
		"Content-Length: 0\r\n"
		"\r\n",
		lb, dst_text, rb, dst_port,
		proto, lb, src_text, rb, lport, (int)getpid(), n,
		lb, src_text, rb, (int)getpid(), n,
		lb, dst_text, rb,
		(int)getpid(), n, lb, src_text, rb,
		n);
}

/* Reads one SIP response head from fd by the deadline; returns a result
 * and, for a response, its status. */
static enum result read_reply_by(int fd, int *status, long long deadline)
{
	char buf[4096];
	size_t used = 0;

	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return RES_TIMEOUT;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, (int)left);
		if (r < 0) {
			if (errno == EINTR && !stop)
				continue;
			return RES_ERROR;
		}
		if (r == 0)
			return RES_TIMEOUT;
		ssize_t got = recv(fd, buf + used, sizeof(buf) - 1 - used, 0);
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return errno == ECONNRESET || errno == EPIPE ? RES_RESET : RES_ERROR;
		}
		if (got == 0)
			return RES_CLOSED;
		used += (size_t)got;
		buf[used] = '\0';
		if (strstr(buf, "\r\n\r\n") == NULL) {
			if (used >= sizeof(buf) - 1)
				return RES_ERROR;
			continue;
		}
		if (sscanf(buf, "SIP/2.0 %d", status) != 1)
			return RES_ERROR;
		return *status == 200 ? RES_OK : RES_STATUS;
	}
}

static enum result send_request(int fd, const char *proto)
{
	char req[1024];
	int len = build_options(req, sizeof(req), proto, local_port(fd));
	if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len)
		return errno == ECONNRESET || errno == EPIPE ? RES_RESET : RES_ERROR;
	return RES_OK;
}

static enum result send_and_wait(int fd, const char *proto, int *status)
{
	enum result r = send_request(fd, proto);
	if (r != RES_OK)
		return r;
	return read_reply_by(fd, status, now_ms() + timeout_ms);
}

/* Connects with a deadline (SO_SNDTIMEO bounds connect on Linux). */
static int open_conn(void)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	int one = 1;
	/* Pick the port at connect() time so TIME_WAIT pairs never block us. */
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (bind(fd, (struct sockaddr *)&src_addr, addr_len) < 0)
		die("bind");
	if (connect(fd, (struct sockaddr *)&dst_addr, addr_len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void print_result(const char *what, int i, int lport, enum result r, int status)
{
	if (r == RES_STATUS)
		printf("%s %d %d status-%d\n", what, i, lport, status);
	else
		printf("%s %d %d %s\n", what, i, lport, result_name[r]);
	fflush(stdout);
}

/* Opens connection number nconns, asks once, prints the result. */
static enum result one_conn(void)
{
	int i = nconns, status = 0, lport = 0;
	enum result r;
	if (nconns >= MAX_CONNS) {
		fprintf(stderr, "sipconn: too many connections\n");
		exit(2);
	}
	int fd = open_conn();
	if (fd < 0) {
		r = RES_CONNECT;
	} else {
		lport = local_port(fd);
		r = send_and_wait(fd, "TCP", &status);
	}
	/* Keep answered connections open; drop the others. */
	if (r == RES_OK) {
		conns[nconns++] = fd;
	} else {
		if (fd >= 0)
			close(fd);
		conns[nconns++] = -1;
	}
	print_result("conn", i, lport, r, status);
	return r;
}

/* -P: connects all n first (so they wait in the listen queue together),
 * then sends on each, then reads every reply by one deadline. */
static void parallel_round(int n, int count[])
{
	int first = nconns;
	int *lports = calloc((size_t)n, sizeof(int));
	if (!lports || nconns + n > MAX_CONNS) {
		fprintf(stderr, "sipconn: too many connections\n");
		exit(2);
	}
	for (int i = 0; i < n; i++) {
		conns[first + i] = open_conn();
		lports[i] = conns[first + i] >= 0 ? local_port(conns[first + i]) : 0;
	}
	nconns += n;
	enum result *res = calloc((size_t)n, sizeof(*res));
	int *status = calloc((size_t)n, sizeof(int));
	if (!res || !status)
		die("calloc");
	for (int i = 0; i < n; i++)
		res[i] = conns[first + i] < 0 ? RES_CONNECT : send_request(conns[first + i], "TCP");
	long long deadline = now_ms() + timeout_ms;
	for (int i = 0; i < n; i++) {
		int fd = conns[first + i];
		if (res[i] == RES_OK)
			res[i] = read_reply_by(fd, &status[i], deadline);
		if (res[i] != RES_OK && fd >= 0) {
			close(fd);
			conns[first + i] = -1;
		}
		print_result("conn", first + i, lports[i], res[i], status[i]);
		count[res[i]]++;
	}
	free(lports);
	free(res);
	free(status);
}

static int udp_probe(void)
{
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int status = 0;
	enum result r;
	if (fd < 0)
		die("socket");
	if (bind(fd, (struct sockaddr *)&src_addr, addr_len) < 0)
		die("bind");
	if (connect(fd, (struct sockaddr *)&dst_addr, addr_len) < 0)
		die("connect");
	char req[1024], buf[4096];
	int len = build_options(req, sizeof(req), "UDP", local_port(fd));
	if (send(fd, req, (size_t)len, 0) != len) {
		r = RES_ERROR;
	} else {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n = poll(&p, 1, timeout_ms);
		if (n <= 0) {
			r = RES_TIMEOUT;
		} else {
			ssize_t got = recv(fd, buf, sizeof(buf) - 1, 0);
			if (got <= 0) {
				r = RES_ERROR;
			} else {
				buf[got] = '\0';
				if (sscanf(buf, "SIP/2.0 %d", &status) != 1)
					r = RES_ERROR;
				else
					r = status == 200 ? RES_OK : RES_STATUS;
			}
		}
	}
	close(fd);
	if (r == RES_STATUS)
		printf("udp status-%d\n", status);
	else
		printf("udp %s\n", result_name[r]);
	fflush(stdout);
	return r == RES_OK ? 0 : 1;
}

static void ping_all(void)
{
	int ok = 0, bad = 0;
	for (int i = 0; i < nconns && !stop; i++) {
		int status = 0;
		if (conns[i] < 0)
			continue;
		enum result r = send_and_wait(conns[i], "TCP", &status);
		print_result("ping", i, local_port(conns[i]), r, status);
		if (r == RES_OK) {
			ok++;
		} else {
			bad++;
			close(conns[i]);
			conns[i] = -1;
		}
	}
	printf("pinged ok=%d bad=%d\n", ok, bad);
	fflush(stdout);
}

static void close_all(void)
{
	for (int i = 0; i < nconns; i++)
		if (conns[i] >= 0) {
			close(conns[i]);
			conns[i] = -1;
		}
}

static void usage(void)
{
	fprintf(stderr, "usage: sipconn [-6] [-u] [-x] [-P] -s SRC -d DST -p PORT [-n N] [-t MS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int n = 1, udp = 0, exit_early = 0, parallel = 0, opt;

	while ((opt = getopt(argc, argv, "6uxPs:d:p:n:t:")) != -1) {
		switch (opt) {
		case 'P': parallel = 1; break;
		case '6': family = AF_INET6; break;
		case 'u': udp = 1; break;
		case 'x': exit_early = 1; break;
		case 's': src_text = optarg; break;
		case 'd': dst_text = optarg; break;
		case 'p': dst_port = atoi(optarg); break;
		case 'n': n = atoi(optarg); break;
		case 't': timeout_ms = atoi(optarg); break;
		default: usage();
		}
	}
	if (!src_text || !dst_text || dst_port <= 0 || dst_port > 65535 || n < 0 ||
	    n > MAX_CONNS || timeout_ms <= 0)
		usage();
	if (strchr(dst_text, ':'))
		family = AF_INET6;
	parse_addr(src_text, 0, &src_addr);
	parse_addr(dst_text, dst_port, &dst_addr);
	addr_len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: interrupt the blocking read */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (udp)
		return udp_probe();

	int count[RES_ERROR + 1] = { 0 };
	if (parallel)
		parallel_round(n, count);
	else
		for (int i = 0; i < n && !stop; i++)
			count[one_conn()]++;
	printf("summary ok=%d reset=%d closed=%d timeout=%d failed=%d other=%d\n",
	       count[RES_OK], count[RES_RESET], count[RES_CLOSED], count[RES_TIMEOUT],
	       count[RES_CONNECT], count[RES_STATUS] + count[RES_ERROR]);
	fflush(stdout);
	if (exit_early || stop) {
		close_all();
		return 0;
	}

	char line[256];
	while (!stop && fgets(line, sizeof(line), stdin)) {
		int idx;
		if (sscanf(line, "close %d", &idx) == 1) {
			if (idx >= 0 && idx < nconns && conns[idx] >= 0) {
				close(conns[idx]);
				conns[idx] = -1;
			}
			printf("closed %d\n", idx);
			fflush(stdout);
		} else if (strncmp(line, "open", 4) == 0) {
			one_conn();
		} else if (strncmp(line, "ping", 4) == 0) {
			ping_all();
		} else if (strncmp(line, "count", 5) == 0) {
			int open_now = 0;
			for (int i = 0; i < nconns; i++)
				open_now += conns[i] >= 0;
			printf("open %d\n", open_now);
			fflush(stdout);
		} else {
			fprintf(stderr, "sipconn: unknown command: %s", line);
		}
	}
	close_all();
	return 0;
}
