/* Unit tests for reconciliation's exact lookups (src/lib/reclookup.c)
 * against the kernel: a held connection is found by its 4-tuple, over IPv4,
 * IPv6 and for an IPv4 peer of a dual-stack listener; a wrong peer port or
 * local address is not found (the kernel's fallback answer, the listener,
 * is not taken for it); a connection closed by the server (its socket
 * orphaned or in TIME_WAIT) is not found; and the local addresses learned
 * from sock_diag records, per port, at most IL_LEARN_ADDRS of them. The
 * module is compiled in here, with the one ownfd call it makes stubbed
 * (the unit tests do not link the interposing objects). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../src/lib/reclookup.c"
#include "tap.h"

bool il_own_fd_valid(const struct il_own_fd *own)
{
    return own != NULL;
}

static struct il_own_fd diag_sock;
static char buf[65536];

static void addr_of(const char *text, uint64_t out[2])
{
    unsigned char a[16];
    if (strchr(text, ':')) {
        inet_pton(AF_INET6, text, a);
        out[0] = il_connid_load64(a);
        out[1] = il_connid_load64(a + 8);
    } else {
        struct in_addr v4;
        inet_pton(AF_INET, text, &v4);
        out[0] = 0;
        out[1] = il_connid_v4_lo(v4.s_addr);
    }
}

/* A listener on listen_addr, one connection from connect_addr: the
 * accepted fd, the client fd, the port and the client's port. */
static int pair(const char *listen_addr, const char *connect_addr, int *client, uint16_t *port,
                uint16_t *peer_port)
{
    int v6 = strchr(listen_addr, ':') != NULL, cv6 = strchr(connect_addr, ':') != NULL;
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof sa);
    socklen_t len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (v6) {
        ((struct sockaddr_in6 *)&sa)->sin6_family = AF_INET6;
        inet_pton(AF_INET6, listen_addr, &((struct sockaddr_in6 *)&sa)->sin6_addr);
    } else {
        ((struct sockaddr_in *)&sa)->sin_family = AF_INET;
        inet_pton(AF_INET, listen_addr, &((struct sockaddr_in *)&sa)->sin_addr);
    }
    int lfd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0), off = 0;
    if (v6)
        setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, len) != 0 || listen(lfd, 4) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    *port = ntohs(v6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                     : ((struct sockaddr_in *)&sa)->sin_port);
    struct sockaddr_storage to;
    memset(&to, 0, sizeof to);
    socklen_t to_len = cv6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (cv6) {
        ((struct sockaddr_in6 *)&to)->sin6_family = AF_INET6;
        ((struct sockaddr_in6 *)&to)->sin6_port = htons(*port);
        inet_pton(AF_INET6, connect_addr, &((struct sockaddr_in6 *)&to)->sin6_addr);
    } else {
        ((struct sockaddr_in *)&to)->sin_family = AF_INET;
        ((struct sockaddr_in *)&to)->sin_port = htons(*port);
        inet_pton(AF_INET, connect_addr, &((struct sockaddr_in *)&to)->sin_addr);
    }
    *client = socket(cv6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    if (*client < 0 || connect(*client, (struct sockaddr *)&to, to_len) != 0)
        return -1;
    struct sockaddr_storage me;
    socklen_t me_len = sizeof me;
    getsockname(*client, (struct sockaddr *)&me, &me_len);
    *peer_port = ntohs(cv6 ? ((struct sockaddr_in6 *)&me)->sin6_port
                           : ((struct sockaddr_in *)&me)->sin_port);
    int afd = accept(lfd, NULL, NULL);
    close(lfd);
    return afd;
}

/* Looks up (peer, peer_port) -> (local, port): 1 found, 0 not, -1 error. */
static int look(const char *peer, uint16_t peer_port, const char *local, uint16_t port)
{
    struct il_local_addr la = {.ifindex = 0};
    addr_of(local, la.addr);
    struct il_lookup q = {.local = &la, .peer_port_n = htons(peer_port), .local_port = port};
    addr_of(peer, q.peer);
    int err = il_lookup_all(&diag_sock, &q, 1, buf, sizeof buf, clock_us() + 2000000);
    return err ? -1 : q.hit;
}

static void test_found(const char *listen_addr, const char *connect_addr, const char *local,
                       const char *what)
{
    int client = -1;
    uint16_t port = 0, peer_port = 0;
    int afd = pair(listen_addr, connect_addr, &client, &port, &peer_port);
    if (afd < 0) {
        tap_ok(0, "%s: a loopback connection (%s)", what, strerror(errno));
        return;
    }
    tap_ok(look(connect_addr, peer_port, local, port) == 1, "%s: found by its 4-tuple", what);
    tap_ok(look(connect_addr, (uint16_t)(peer_port + 1), local, port) == 0,
           "%s: another peer port is not found", what);
    tap_ok(look(connect_addr, peer_port, strchr(local, ':') ? "::2" : "127.0.0.9", port) == 0,
           "%s: another local address is not found", what);
    /* Several in one send, each answered: the hit is the one that exists. */
    struct il_local_addr la = {.ifindex = 0};
    addr_of(local, la.addr);
    struct il_lookup q[100];
    for (unsigned i = 0; i < 100; i++) {
        q[i] = (struct il_lookup){.local = &la, .local_port = port, .tag = i};
        addr_of(connect_addr, q[i].peer);
        q[i].peer_port_n = htons((uint16_t)(peer_port + (i == 70 ? 0 : 1000 + i)));
    }
    tap_ok(il_lookup_all(&diag_sock, q, 100, buf, sizeof buf, clock_us() + 2000000) == 0,
           "%s: 100 lookups in two sends answered", what);
    unsigned hits = 0;
    for (unsigned i = 0; i < 100; i++)
        hits += q[i].hit;
    tap_ok(hits == 1 && q[70].hit, "%s: exactly the existing one found (%u)", what, hits);
    /* Closed by the server first: orphaned in FIN_WAIT, then TIME_WAIT. */
    close(afd);
    tap_ok(look(connect_addr, peer_port, local, port) == 0,
           "%s: a connection the server closed is not found", what);
    close(client);
}

static struct inet_diag_msg record(int family, const char *src, uint16_t sport, uint32_t ifindex)
{
    struct inet_diag_msg m;
    memset(&m, 0, sizeof m);
    m.idiag_family = (uint8_t)family;
    m.id.idiag_sport = htons(sport);
    m.id.idiag_if = ifindex;
    inet_pton(family, src, m.id.idiag_src);
    return m;
}

static void test_learn(void)
{
    IS_I(il_learn_take(), 1, "the learned addresses are taken");
    IS_I(il_learn_take(), 0, "by one run at a time");
    il_learn_begin();
    struct inet_diag_msg m = record(AF_INET, "127.0.0.1", 5060, 0);
    il_learn_add(&m);
    il_learn_add(&m);
    m = record(AF_INET6, "::ffff:127.0.0.2", 5060, 0);
    il_learn_add(&m);
    m = record(AF_INET6, "::1", 5061, 3);
    il_learn_add(&m);
    tap_ok(il_learn_port(5060) == NULL, "nothing in use before the dump completes");
    il_learn_commit();
    const struct il_learned_port *p = il_learn_port(5060);
    tap_ok(p && p->n == 2, "port 5060: two addresses, a repeated one once");
    uint64_t a[2];
    addr_of("127.0.0.2", a);
    tap_ok(p && p->a[1].addr[0] == a[0] && p->a[1].addr[1] == a[1],
           "an IPv6 record's mapped address is the IPv4 one");
    p = il_learn_port(5061);
    tap_ok(p && p->n == 1 && p->a[0].ifindex == 3, "port 5061: its address and bound device");
    tap_ok(il_learn_port(5062) == NULL, "a port no dump showed has none");
    il_learn_begin();
    char text[32];
    for (unsigned i = 1; i <= IL_LEARN_ADDRS + 1; i++) {
        snprintf(text, sizeof text, "127.0.0.%u", i);
        m = record(AF_INET, text, 5060, 0);
        il_learn_add(&m);
    }
    il_learn_commit();
    tap_ok(il_learn_port(5060) == NULL, "more addresses than are learned: none (dumped)");
    tap_ok(il_learn_port(5061) == NULL, "each dump replaces the table");
    il_learn_give();
    IS_I(il_learn_take(), 1, "taken again once given back");
    il_learn_give();
}

int main(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    tap_ok(fd >= 0, "a sock_diag socket");
    atomic_store(&diag_sock.fd, fd);
    test_found("127.0.0.1", "127.0.0.1", "127.0.0.1", "IPv4");
    test_found("::1", "::1", "::1", "IPv6");
    test_found("::", "127.0.0.1", "127.0.0.1", "IPv4 peer of a dual-stack listener");
    test_found("::", "::1", "::1", "IPv6 peer of a dual-stack listener");
    test_learn();
    close(fd);
    return tap_done();
}
