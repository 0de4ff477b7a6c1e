/* Unit tests for connection identities (src/lib/connid.h): the value the
 * accept path computes from the peer's sockaddr and the listener's port is
 * the one reconciliation computes from the kernel's sock_diag record of
 * the same socket, for IPv4, IPv6 and IPv4 peers of a dual-stack listener;
 * and it changes with the peer address, the peer port and the local port. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../src/lib/connid.h"
#include "tap.h"

#define SEED 0x0123456789abcdefULL

static uint64_t v4_ident(const char *addr, uint16_t port, uint16_t local)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, addr, &sin.sin_addr);
    return il_connid_from_sockaddr(SEED, (struct sockaddr *)&sin, local);
}

static uint64_t v6_ident(const char *addr, uint16_t port, uint16_t local)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    inet_pton(AF_INET6, addr, &sin6.sin6_addr);
    return il_connid_from_sockaddr(SEED, (struct sockaddr *)&sin6, local);
}

static void test_values(void)
{
    uint64_t base = v4_ident("127.0.0.2", 40000, 5060);
    tap_ok(base != 0 && !(base & IL_CONNID_MARKS), "never 0, never a mark bit");
    IS_U(v4_ident("127.0.0.2", 40000, 5060), base, "deterministic");
    tap_ok(v4_ident("127.0.0.2", 40001, 5060) != base, "the peer port is part of it");
    tap_ok(v4_ident("127.0.0.2", 40000, 5061) != base, "the local port is part of it");
    tap_ok(v4_ident("127.0.0.3", 40000, 5060) != base, "the peer address is part of it");
    tap_ok(v4_ident("127.0.0.2", 5060, 40000) != base, "peer and local ports are not swappable");
    IS_U(v6_ident("::ffff:127.0.0.2", 40000, 5060), base, "IPv4-mapped peer: the IPv4 identity");
    tap_ok(v6_ident("::1", 40000, 5060) != v6_ident("::2", 40000, 5060),
           "IPv6 addresses differ in their last word");
    tap_ok(v6_ident("1::", 40000, 5060) != v6_ident("2::", 40000, 5060),
           "IPv6 addresses differ in their first word");
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(40000)};
    inet_pton(AF_INET, "127.0.0.2", &sin.sin_addr);
    tap_ok(il_connid_from_sockaddr(SEED + 1, (struct sockaddr *)&sin, 5060) != base,
           "the seed is part of it");
}

/* A listener on addr (family), one client connection, the accepted peer;
 * returns the accepted fd and the listener's port, or -1. */
static int connect_pair(int family, const char *listen_addr, const char *connect_addr,
                        int *client, struct sockaddr_storage *peer, uint16_t *port)
{
    struct sockaddr_storage sa;
    socklen_t len;
    memset(&sa, 0, sizeof sa);
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&sa;
        sin->sin_family = AF_INET;
        inet_pton(AF_INET, listen_addr, &sin->sin_addr);
        len = sizeof *sin;
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&sa;
        sin6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, listen_addr, &sin6->sin6_addr);
        len = sizeof *sin6;
    }
    int lfd = socket(family, SOCK_STREAM, 0);
    if (family == AF_INET6) {
        int off = 0;
        setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    }
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, len) != 0 || listen(lfd, 4) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&sa)->sin_port
                                    : ((struct sockaddr_in6 *)&sa)->sin6_port);
    /* The client connects to connect_addr (of its own family) on that port. */
    struct sockaddr_storage to;
    socklen_t to_len;
    memset(&to, 0, sizeof to);
    int cfamily = strchr(connect_addr, ':') ? AF_INET6 : AF_INET;
    if (cfamily == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&to;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(*port);
        inet_pton(AF_INET, connect_addr, &sin->sin_addr);
        to_len = sizeof *sin;
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&to;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(*port);
        inet_pton(AF_INET6, connect_addr, &sin6->sin6_addr);
        to_len = sizeof *sin6;
    }
    *client = socket(cfamily, SOCK_STREAM, 0);
    if (*client < 0 || connect(*client, (struct sockaddr *)&to, to_len) != 0)
        return -1;
    socklen_t plen = sizeof *peer;
    int afd = accept(lfd, (struct sockaddr *)peer, &plen);
    close(lfd);
    return afd;
}

/* The identity reconciliation computes from the kernel's record of the
 * socket on local port port whose peer port is peer_port (a dump of
 * family's held sockets), or 0 if none was listed. */
static uint64_t diag_ident(int family, uint16_t port, uint16_t peer_port)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return 0;
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg;
    memset(&msg, 0, sizeof msg);
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.req.sdiag_family = (uint8_t)family;
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_states = 1u << 1; /* ESTABLISHED */
    msg.req.id.idiag_sport = htons(port);
    uint64_t ident = 0;
    if (send(fd, &msg, sizeof msg, 0) == (ssize_t)sizeof msg) {
        static char buf[65536];
        for (int rounds = 0; rounds < 1000; rounds++) {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n <= 0)
                break;
            size_t left = (size_t)n;
            int done = 0;
            for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left);
                 h = NLMSG_NEXT(h, left)) {
                if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
                    done = 1;
                    break;
                }
                const struct inet_diag_msg *m = NLMSG_DATA(h);
                if (ntohs(m->id.idiag_sport) == port && ntohs(m->id.idiag_dport) == peer_port &&
                    m->idiag_inode != 0)
                    ident = il_connid_from_diag(SEED, m);
            }
            if (done)
                break;
        }
    }
    close(fd);
    return ident;
}

static void test_kernel(int family, const char *listen_addr, const char *connect_addr,
                        const char *what)
{
    int client = -1;
    struct sockaddr_storage peer;
    uint16_t port = 0;
    int afd = connect_pair(family, listen_addr, connect_addr, &client, &peer, &port);
    if (afd < 0) {
        tap_ok(0, "%s: a loopback connection (%s)", what, strerror(errno));
        return;
    }
    uint16_t peer_port = ntohs(peer.ss_family == AF_INET ? ((struct sockaddr_in *)&peer)->sin_port
                                                         : ((struct sockaddr_in6 *)&peer)->sin6_port);
    uint64_t at_accept = il_connid_from_sockaddr(SEED, (struct sockaddr *)&peer, port);
    uint64_t listed = diag_ident(family, port, peer_port);
    tap_ok(listed != 0, "%s: sock_diag lists the accepted socket", what);
    tap_ok(listed == at_accept, "%s: the identity at accept is the one from sock_diag", what);
    /* The client's own socket (local port = the peer port) is another
     * identity: its peer port is the listener's. */
    int client_family = strchr(connect_addr, ':') ? AF_INET6 : AF_INET;
    uint64_t other = diag_ident(client_family, peer_port, port);
    tap_ok(other != 0 && other != at_accept,
           "%s: the other end of the connection has another identity", what);
    close(afd);
    close(client);
}

int main(void)
{
    test_values();
    test_kernel(AF_INET, "127.0.0.1", "127.0.0.1", "IPv4");
    test_kernel(AF_INET6, "::1", "::1", "IPv6");
    test_kernel(AF_INET6, "::", "127.0.0.1", "IPv4 peer of a dual-stack listener");
    return tap_done();
}
