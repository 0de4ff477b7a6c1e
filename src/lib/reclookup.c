/* Reconciliation's exact lookups and the local addresses they need (see
 * reclookup.h). */
#include "reclookup.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "connid.h"

/* ---- the learned local addresses ---- */

/* The pid of the process whose run holds the table, 0 when none: a child
 * forked while its parent's reconciler thread held it finds the parent's
 * pid there and takes it over (no run of its own is using it). */
static _Atomic pid_t learn_owner;
static struct il_learned_port tables[2][IL_LEARN_PORTS];
static unsigned cur; /* tables[cur]: in use; tables[!cur]: being built */

int il_learn_take(void)
{
    pid_t self = getpid(), owner = 0;
    if (atomic_compare_exchange_strong_explicit(&learn_owner, &owner, self,
                                                memory_order_acquire, memory_order_relaxed))
        return 1;
    return owner != self && atomic_compare_exchange_strong_explicit(
                                &learn_owner, &owner, self, memory_order_acquire,
                                memory_order_relaxed);
}

void il_learn_give(void)
{
    atomic_store_explicit(&learn_owner, 0, memory_order_release);
}

static struct il_learned_port *find(struct il_learned_port *t, uint16_t port, int create)
{
    for (unsigned i = 0, h = port * 0x9e37u; i < IL_LEARN_PORTS; i++, h++) {
        struct il_learned_port *p = &t[h % IL_LEARN_PORTS];
        if (p->port == port)
            return p;
        if (p->port == 0) {
            if (!create)
                return NULL;
            p->port = port;
            return p;
        }
    }
    return NULL;
}

const struct il_learned_port *il_learn_port(uint16_t port)
{
    const struct il_learned_port *p = port ? find(tables[cur], port, 0) : NULL;
    return p && !p->over && p->n ? p : NULL;
}

void il_learn_begin(void)
{
    memset(tables[!cur], 0, sizeof tables[!cur]);
}

/* The local (source) address of a record, IPv4-mapped. */
static void record_local(const struct inet_diag_msg *m, uint64_t out[2])
{
    if (m->idiag_family == AF_INET) {
        out[0] = 0;
        out[1] = il_connid_v4_lo(m->id.idiag_src[0]);
    } else {
        out[0] = il_connid_load64(m->id.idiag_src);
        out[1] = il_connid_load64(&m->id.idiag_src[2]);
    }
}

static void record_peer(const struct inet_diag_msg *m, uint64_t out[2])
{
    if (m->idiag_family == AF_INET) {
        out[0] = 0;
        out[1] = il_connid_v4_lo(m->id.idiag_dst[0]);
    } else {
        out[0] = il_connid_load64(m->id.idiag_dst);
        out[1] = il_connid_load64(&m->id.idiag_dst[2]);
    }
}

void il_learn_add(const struct inet_diag_msg *m)
{
    struct il_learned_port *p = find(tables[!cur], ntohs(m->id.idiag_sport), 1);
    if (!p)
        return; /* more ports than the table: this one is not learned (dumped) */
    uint64_t addr[2];
    record_local(m, addr);
    for (unsigned i = 0; i < p->n; i++)
        if (p->a[i].addr[0] == addr[0] && p->a[i].addr[1] == addr[1] &&
            p->a[i].ifindex == m->id.idiag_if)
            return;
    if (p->n == IL_LEARN_ADDRS) {
        p->over = 1;
        return;
    }
    p->a[p->n++] = (struct il_local_addr){{addr[0], addr[1]}, m->id.idiag_if};
}

void il_learn_commit(void)
{
    cur = !cur;
}

/* ---- the lookups ---- */

#define BATCH 64 /* requests per send: their answers fit the receive buffer */

struct request {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 req;
};

static int v4_mapped(const uint64_t a[2])
{
    return a[0] == 0 && (a[1] & 0xffffffffULL) == (il_connid_v4_lo(0) & 0xffffffffULL);
}

static uint32_t v4_of(const uint64_t a[2])
{
    uint32_t v;
    memcpy(&v, (const char *)&a[1] + 4, sizeof v);
    return v;
}

/* 0: the lookup cannot be made (an IPv4 peer needs an IPv4 local address,
 * an IPv6 one an IPv6 address). */
static int fill(struct request *m, const struct il_lookup *q, uint32_t seq)
{
    int v4 = v4_mapped(q->peer);
    if (v4 != v4_mapped(q->local->addr))
        return 0;
    memset(m, 0, sizeof *m);
    m->nlh.nlmsg_len = sizeof *m;
    m->nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    m->nlh.nlmsg_flags = NLM_F_REQUEST; /* no NLM_F_DUMP: one exact lookup */
    m->nlh.nlmsg_seq = seq;
    m->req.sdiag_protocol = IPPROTO_TCP;
    m->req.idiag_states = IL_HELD_STATES;
    m->req.id.idiag_sport = htons(q->local_port);
    m->req.id.idiag_dport = q->peer_port_n;
    m->req.id.idiag_if = q->local->ifindex;
    m->req.id.idiag_cookie[0] = m->req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    if (v4) {
        /* An IPv4 peer of a dual-stack listener too: the kernel finds its
         * IPv6 socket by the IPv4 lookup (it is hashed by its IPv4
         * addresses) and answers with the IPv6 record. */
        m->req.sdiag_family = AF_INET;
        m->req.id.idiag_src[0] = v4_of(q->local->addr);
        m->req.id.idiag_dst[0] = v4_of(q->peer);
    } else {
        m->req.sdiag_family = AF_INET6;
        memcpy(m->req.id.idiag_src, q->local->addr, 16);
        memcpy(m->req.id.idiag_dst, q->peer, 16);
    }
    return 1;
}

/* The answer is this connection, held by a process: the kernel's lookup
 * falls back to the port's listener when no connection matches (state
 * LISTEN), finds TIME_WAIT and request sockets (no inode), and an orphan
 * (a holder that died: inode 0). */
static int answers(const struct inet_diag_msg *m, const struct il_lookup *q)
{
    if (m->idiag_inode == 0 || !((IL_HELD_STATES >> m->idiag_state) & 1) ||
        ntohs(m->id.idiag_sport) != q->local_port || m->id.idiag_dport != q->peer_port_n)
        return 0;
    uint64_t peer[2];
    record_peer(m, peer);
    return peer[0] == q->peer[0] && peer[1] == q->peer[1];
}

static uint64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* One answer in a datagram of len bytes (each answer is a datagram of its
 * own). A datagram cut short by the buffer (MSG_TRUNC) still holds the
 * header and the record's fixed part, all that is read. Returns 1 when it
 * answers one of the requests of seq [first, first + n). */
static int take_answer(struct il_lookup *q, const uint32_t *which, uint32_t first, uint32_t n,
                       const char *dgram, size_t len)
{
    const struct nlmsghdr *h = (const struct nlmsghdr *)dgram;
    if (len < sizeof *h)
        return 0;
    uint32_t i = h->nlmsg_seq - first;
    if (h->nlmsg_seq < first || i >= n)
        return 0;
    if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
        len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg)) &&
        h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg)) &&
        answers(NLMSG_DATA(h), &q[which[i]]))
        q[which[i]].hit = 1;
    return 1;
}

/* Receives the answers to the requests of seq [first, first + n): each
 * request has exactly one (its record, or an error), in a datagram of its
 * own, so they are taken BATCH at a time (recvmmsg) into buf. */
static int collect(const struct il_own_fd *s, struct il_lookup *q, const uint32_t *which,
                   uint32_t first, uint32_t n, char *buf, size_t bufsize, uint64_t deadline_us)
{
    size_t each = bufsize / BATCH;
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    uint32_t answered = 0;
    while (answered < n) {
        /* The socket is checked once per call, not per answer: it costs a
         * system call (ownfd.h). */
        if (!il_own_fd_valid(s))
            return -EBADF;
        memset(msgs, 0, sizeof msgs);
        for (unsigned k = 0; k < BATCH; k++) {
            iov[k] = (struct iovec){buf + k * each, each};
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
        }
        int got = recvmmsg(il_own_fd_num(s), msgs, BATCH, MSG_DONTWAIT, NULL);
        if (got < 0) {
            if (errno != EAGAIN && errno != EINTR)
                return -errno; /* ENOBUFS: answers were lost */
            uint64_t now = clock_us();
            if (now >= deadline_us)
                return -ETIMEDOUT;
            struct pollfd p = {.fd = il_own_fd_num(s), .events = POLLIN};
            if (poll(&p, 1, (int)((deadline_us - now + 999) / 1000)) < 0 && errno != EINTR)
                return -errno;
            continue;
        }
        for (int k = 0; k < got; k++)
            answered += (uint32_t)take_answer(q, which, first, n, buf + (size_t)k * each,
                                              msgs[k].msg_len < each ? msgs[k].msg_len : each);
    }
    return 0;
}

int il_lookup_all(const struct il_own_fd *s, struct il_lookup *q, uint32_t n, char *buf,
                  size_t bufsize, uint64_t deadline_us)
{
    struct request reqs[BATCH];
    uint32_t which[BATCH];
    uint32_t seq = 1, i = 0;
    while (i < n) {
        uint32_t k = 0;
        for (; i < n && k < BATCH; i++)
            if (!q[i].hit && fill(&reqs[k], &q[i], seq + k))
                which[k++] = i;
        if (k == 0)
            break;
        struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
        if (!il_own_fd_valid(s))
            return -EBADF;
        ssize_t sent = sendto(il_own_fd_num(s), reqs, k * sizeof reqs[0], 0,
                              (struct sockaddr *)&kernel, sizeof kernel);
        if (sent != (ssize_t)(k * sizeof reqs[0]))
            return sent < 0 ? -errno : -EIO;
        int err = collect(s, q, which, seq, k, buf, bufsize, deadline_us);
        if (err)
            return err;
        seq += k;
    }
    return 0;
}
