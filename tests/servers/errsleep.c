/* errsleep: the sleep-on-error model (PostgreSQL's postmaster): one
 * process, one BLOCKING listener (or -N: non-blocking, waited for with
 * poll), and any failed accept() is logged and followed by a pause before
 * the next accept. Accepted connections are held open, never read.
 *
 * Each accept() return appends to the -a log, in order:
 *   "accept IP" or "error ERRNO", then "queue N"
 * where N is the listener's accept queue length just after the call
 * (TCP_INFO's tcpi_unacked on a listening socket), and after an error
 * "sleep MS" before pausing MS (-s, default 100).
 * -H N -g FILE: after N accepted connections, wait until FILE exists (at
 * most 60 s), then log "gate" and "queue N" and go on: a test can queue
 * connections in between. The backlog is 1024.
 * -T: after each "queue N" line (and the gate's), a line "time US" with the
 * monotonic clock in microseconds (for make bench; tests go by order). */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int timed;

static void log_queue(int lfd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    char n[16];

    if (getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        snprintf(n, sizeof n, "?");
    else
        snprintf(n, sizeof n, "%u", ti.tcpi_unacked);
    srv_log("queue", n);
    if (timed) {
        struct timespec ts;
        char us[32];
        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(us, sizeof us, "%lld", (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
        srv_log("time", us);
    }
}

static void wait_gate(int lfd, const char *gate)
{
    for (int i = 0; i < 60 * 100 && access(gate, F_OK) != 0; i++)
        sleep_ms(10);
    srv_log("gate", access(gate, F_OK) == 0 ? "open" : "timeout");
    log_queue(lfd);
}

int main(int argc, char **argv)
{
    static const char usage[] = "errsleep -l ADDR -p PORT [-a LOG] [-s MS] [-N] [-T] [-H N -g FILE]";
    struct srv_args a = {"127.0.0.1", 0, NULL};
    const char *gate = NULL;
    int opt, lfd, pause_ms = 100, nonblock = 0, hold = -1, accepted = 0;

    while ((opt = getopt(argc, argv, "l:p:a:s:NTH:g:")) != -1) {
        if (srv_common_opt(&a, opt, optarg))
            continue;
        switch (opt) {
        case 's': pause_ms = srv_atoi(optarg, 0, 10000); break;
        case 'N': nonblock = 1; break;
        case 'T': timed = 1; break;
        case 'H': hold = srv_atoi(optarg, 0, 100000); break;
        case 'g': gate = optarg; break;
        default: srv_usage_exit(usage);
        }
    }
    lfd = srv_listen(&a);
    if (listen(lfd, 1024) != 0) {
        perror("listen");
        return 1;
    }
    if (nonblock)
        fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
    srv_log_open(a.log);
    srv_exit_on_term();
    srv_ready(lfd);
    if (gate && hold == 0)
        wait_gate(lfd, gate);
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        char what[IP_STR];
        int fd;

        if (nonblock) {
            struct pollfd p = {.fd = lfd, .events = POLLIN};
            if (poll(&p, 1, -1) < 0)
                continue;
        }
        fd = accept(lfd, (struct sockaddr *)&ss, &len);
        if (fd >= 0) {
            srv_check_peer(fd, &ss, len);
            srv_peer_str(&ss, what);
            srv_log("accept", what);
        } else {
            snprintf(what, sizeof what, "%d", errno);
            srv_log("error", what);
        }
        log_queue(lfd);
        if (fd < 0) {
            snprintf(what, sizeof what, "%d", pause_ms);
            srv_log("sleep", what);
            sleep_ms(pause_ms);
        } else if (gate && ++accepted == hold) {
            wait_gate(lfd, gate);
        }
    }
}
