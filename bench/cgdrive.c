/* cgdrive: an in-process driver for counting instructions with
 * valgrind --tool=callgrind --collect-atstart=no.
 *
 * Only the calls under test run with collection on (CALLGRIND_TOGGLE_COLLECT
 * around them), so the totals of a run are exactly the instructions those
 * calls executed in user space: the same program run with and without
 * LD_PRELOAD=libiplimit.so gives the library's share by subtraction.
 *
 *   cgdrive cycles N KIDS PER_KID [SRC [WARMUP]]
 *       Forks KIDS children first; each listens on its own 127.0.0.1 port,
 *       prints "port P" and accepts PER_KID connections, which it keeps
 *       open (the benchmark's ilhold clients make them, from many
 *       sources).  The children inherit the library's shared table, so
 *       every held connection is in it.  When all are held, the parent
 *       prints "held pid=PID", waits for the file named by $CGDRIVE_GO if
 *       set (at most 120 s), runs WARMUP (default 200) uncounted cycles,
 *       then N cycles of: its own client
 *       (bound to SRC, default 127.0.0.1) connects to the parent's
 *       listener; [counted] accept(); client closes with an RST; [counted]
 *       close() of the accepted fd.  Then it releases the children.
 *       With CGDRIVE_HEADER=TEXT set, the client sends TEXT and CRLF (a
 *       PROXY v1 line) right after connecting, before the accept: with
 *       IPLIMIT_PROXY_FROM naming SRC, the counted accept peeks at it.
 *       CGDRIVE_HEADER=v2 sends a PROXY v2 header (TCP over IPv4, client
 *       192.0.2.1) instead.
 *   cgdrive read-pipe N     pipe(); write one byte; [counted] read() it, N times
 *   cgdrive recv-sock N     socketpair(); send one byte; [counted] recv() it, N times
 *   cgdrive close-bad N     [counted] close(-1), N times
 *   cgdrive close-pipe N    pipe(); [counted] close() of both ends, N times
 *   cgdrive close-file N    open("/dev/null"); [counted] close(), N times
 *   cgdrive syscall-getpid N  [counted] syscall(SYS_getpid), N times (a
 *                             number the library does not act on)
 *   cgdrive sendmsg-plain N  on a unix datagram pair: [counted] sendmsg() of one
 *                            byte without control data, then recvmsg(), N times
 *   cgdrive recvmsg-plain N  the same, counting the recvmsg() (which offers a
 *                            control buffer, as Kamailio's readers do)
 *
 * Every wait is bounded (600 s for the held set). */
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#define WARMUP 200
#define HOLD_WAIT_S 600

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static int listen_local(struct sockaddr_in *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        die("listen");
    if (bound)
        *bound = a;
    return fd;
}

/* A child of the held set: accept `want` connections and keep them. */
static void hold_child(int ready_fd, int release_fd, long want)
{
    int lfd = listen_local(NULL);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &len);
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    time_t end = time(NULL) + HOLD_WAIT_S;
    long held = 0;
    while (held < want && time(NULL) < end) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        if (poll(&p, 1, 1000) <= 0)
            continue;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept(lfd, (struct sockaddr *)&ss, &sl);
        if (fd >= 0)
            held++;
        else if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
            break;
    }
    char c = held == want ? 'y' : 'n';
    if (write(ready_fd, &c, 1) != 1)
        _exit(1);
    /* Keep everything open until the parent closes its end (or dies). */
    struct pollfd p = {.fd = release_fd, .events = POLLIN};
    poll(&p, 1, HOLD_WAIT_S * 1000);
    _exit(0);
}

/* The counted halves of one cycle; noinline keeps them visible in the
 * callgrind profile. */
static __attribute__((noinline)) int server_accept(int lfd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CALLGRIND_TOGGLE_COLLECT;
    int fd = accept(lfd, (struct sockaddr *)&ss, &len);
    CALLGRIND_TOGGLE_COLLECT;
    return fd;
}

static __attribute__((noinline)) void server_close(int fd)
{
    CALLGRIND_TOGGLE_COLLECT;
    close(fd);
    CALLGRIND_TOGGLE_COLLECT;
}

static void one_cycle(int lfd, const struct sockaddr_in *dst, const struct sockaddr_in *src,
                      int counted)
{
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0)
        die("client socket");
    int one = 1;
    setsockopt(c, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(c, (const struct sockaddr *)src, sizeof *src) < 0 ||
        connect(c, (const struct sockaddr *)dst, sizeof *dst) < 0)
        die("client connect");
    const char *header = getenv("CGDRIVE_HEADER");
    if (header && strcmp(header, "v2") == 0) {
        static const unsigned char v2[28] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51,
                                             0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c,
                                             192,  0,    2,    1,    127,  0,    0,    1,
                                             0x9c, 0x41, 0x13, 0xc4};
        if (send(c, v2, sizeof v2, 0) != (ssize_t)sizeof v2)
            die("client header");
    } else if (header) {
        char line[256];
        int len = snprintf(line, sizeof line, "%s\r\n", header);
        if (len <= 0 || len >= (int)sizeof line || send(c, line, (size_t)len, 0) != len)
            die("client header");
    }
    int a;
    if (counted) {
        a = server_accept(lfd);
    } else {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        a = accept(lfd, (struct sockaddr *)&ss, &len);
    }
    if (a < 0)
        die("accept");
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c);
    if (counted)
        server_close(a);
    else
        close(a);
}

static int cycles(long n, int kids, long per_kid, const char *src_text, long warmup)
{
    int ready[2], release[2];
    if (pipe(ready) < 0 || pipe(release) < 0)
        die("pipe");
    pid_t pids[64];
    if (kids < 0 || kids > 64)
        kids = 64;
    for (int i = 0; i < kids; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            close(ready[0]);
            close(release[1]);
            hold_child(ready[1], release[0], per_kid);
        }
        pids[i] = pid;
    }
    close(ready[1]);
    close(release[0]);
    int ok = 1;
    for (int i = 0; i < kids; i++) {
        struct pollfd p = {.fd = ready[0], .events = POLLIN};
        char c = 'n';
        if (poll(&p, 1, HOLD_WAIT_S * 1000) <= 0 || read(ready[0], &c, 1) != 1 || c != 'y')
            ok = 0;
    }
    printf(ok ? "held pid=%d\n" : "hold failed pid=%d\n", (int)getpid());
    fflush(stdout);
    /* CGDRIVE_GO=FILE: wait (at most 120 s) until FILE exists, so the
     * benchmark can inspect the full table before the counted cycles. */
    const char *go = getenv("CGDRIVE_GO");
    for (int i = 0; go && i < 1200 && access(go, F_OK) != 0; i++)
        poll(NULL, 0, 100);

    struct sockaddr_in dst, src = {.sin_family = AF_INET};
    int lfd = listen_local(&dst);
    if (inet_pton(AF_INET, src_text, &src.sin_addr) != 1)
        die("source address");
    for (long i = 0; i < warmup; i++)
        one_cycle(lfd, &dst, &src, 0);
    for (long i = 0; i < n; i++)
        one_cycle(lfd, &dst, &src, 1);

    close(release[1]);
    for (int i = 0; i < kids; i++)
        waitpid(pids[i], NULL, 0);
    printf("cycles %ld\n", n);
    return ok ? 0 : 1;
}

static __attribute__((noinline)) void counted_close(int fd)
{
    CALLGRIND_TOGGLE_COLLECT;
    close(fd);
    CALLGRIND_TOGGLE_COLLECT;
}

static int closes(const char *what, long n)
{
    for (long i = 0; i < n + WARMUP; i++) {
        int counted = i >= WARMUP;
        int fds[2] = {-1, -1};
        if (strcmp(what, "close-pipe") == 0) {
            if (pipe(fds) < 0)
                die("pipe");
        } else if (strcmp(what, "close-file") == 0) {
            if ((fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
                die("open");
        }
        for (int k = 0; k < 2; k++) {
            if (k == 1 && fds[1] < 0)
                break;
            if (counted)
                counted_close(fds[k]);
            else
                close(fds[k]);
        }
    }
    printf("%s %ld\n", what, n);
    return 0;
}

static __attribute__((noinline)) long counted_syscall(void)
{
    CALLGRIND_TOGGLE_COLLECT;
    long r = syscall(SYS_getpid);
    CALLGRIND_TOGGLE_COLLECT;
    return r;
}

static int syscalls(long n)
{
    long sum = 0;
    for (long i = 0; i < n + WARMUP; i++)
        sum += i >= WARMUP ? counted_syscall() : syscall(SYS_getpid);
    printf("syscall-getpid %ld (%d)\n", n, sum != 0);
    return 0;
}

/* Messages without SCM_RIGHTS: the cost the message wrappers add. */
static int messages(const char *what, long n)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
        die("socketpair");
    int count_send = strcmp(what, "sendmsg-plain") == 0;
    for (long i = 0; i < n + WARMUP; i++) {
        int counted = i >= WARMUP;
        char byte = 'x', cbuf[64];
        struct iovec iov = {&byte, 1};
        struct msghdr out = {.msg_iov = &iov, .msg_iovlen = 1};
        struct msghdr in = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                            .msg_controllen = sizeof cbuf};
        if (counted && count_send)
            CALLGRIND_TOGGLE_COLLECT;
        ssize_t sent = sendmsg(sv[0], &out, 0);
        if (counted && count_send)
            CALLGRIND_TOGGLE_COLLECT;
        if (counted && !count_send)
            CALLGRIND_TOGGLE_COLLECT;
        ssize_t got = recvmsg(sv[1], &in, 0);
        if (counted && !count_send)
            CALLGRIND_TOGGLE_COLLECT;
        if (sent != 1 || got != 1)
            die("sendmsg/recvmsg");
    }
    printf("%s %ld\n", what, n);
    return 0;
}

static __attribute__((noinline)) ssize_t counted_read(int fd, char *c, int use_recv)
{
    CALLGRIND_TOGGLE_COLLECT;
    ssize_t n = use_recv ? recv(fd, c, 1, 0) : read(fd, c, 1);
    CALLGRIND_TOGGLE_COLLECT;
    return n;
}

/* The read-family wrappers on fds the library does not track. */
static int reads(const char *what, long n)
{
    int use_recv = strcmp(what, "recv-sock") == 0;
    int fds[2];
    if (use_recv ? socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0 : pipe(fds) < 0)
        die(what);
    for (long i = 0; i < n + WARMUP; i++) {
        char c = 'x';
        if (write(fds[1], &c, 1) != 1)
            die("write");
        ssize_t got = i >= WARMUP ? counted_read(fds[0], &c, use_recv)
                                  : (use_recv ? recv(fds[0], &c, 1, 0) : read(fds[0], &c, 1));
        if (got != 1)
            die("read");
    }
    printf("%s %ld\n", what, n);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && (strcmp(argv[1], "read-pipe") == 0 || strcmp(argv[1], "recv-sock") == 0))
        return reads(argv[1], atol(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "cycles") == 0)
        return cycles(atol(argv[2]), argc > 3 ? atoi(argv[3]) : 0,
                      argc > 4 ? atol(argv[4]) : 0, argc > 5 ? argv[5] : "127.0.0.1",
                      argc > 6 ? atol(argv[6]) : WARMUP);
    if (argc == 3 && strncmp(argv[1], "close-", 6) == 0)
        return closes(argv[1], atol(argv[2]));
    if (argc == 3 && strcmp(argv[1], "syscall-getpid") == 0)
        return syscalls(atol(argv[2]));
    if (argc == 3 && (strcmp(argv[1], "sendmsg-plain") == 0 || strcmp(argv[1], "recvmsg-plain") == 0))
        return messages(argv[1], atol(argv[2]));
    fprintf(stderr, "usage: cgdrive cycles N [KIDS PER_KID [SRC]] | close-bad|close-pipe|"
                    "close-file|syscall-getpid N | sendmsg-plain|recvmsg-plain N | "
                    "read-pipe|recv-sock N\n");
    return 2;
}
