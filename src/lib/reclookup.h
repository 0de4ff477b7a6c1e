/* Reconciliation's exact lookups: asking the kernel whether one connection
 * is still held, by its 4-tuple, at a cost that does not grow with the
 * machine's other sockets (TIME_WAIT ones included), and the local
 * addresses those lookups need, learned from reconciliation's dumps.
 *
 * A request of inet_diag without NLM_F_DUMP is answered by a hash lookup
 * of the exact 4-tuple (the kernel's inet_diag_find_one_icsk). Many go in
 * one send: each gets one answer, its record or an error (-ENOENT). The
 * accept path records no local address (connid.h): for each local port
 * the addresses its held sockets use are taken from the last dump that
 * listed them (at most IL_LEARN_ADDRS a port), and a connection is looked
 * up at each until one answers. A lookup that finds nothing proves
 * nothing (an address not learned yet): reconcile.c confirms every miss
 * with a dump before it frees anything. */
#ifndef IL_RECLOOKUP_H
#define IL_RECLOOKUP_H

#include <linux/inet_diag.h>
#include <stddef.h>
#include <stdint.h>

#include "ownfd.h"

/* TCP states in which an accepted socket can still be held by a process:
 * ESTABLISHED, SYN_RECV (a TCP Fast Open child is accepted before the
 * handshake ends), FIN_WAIT1/2 and CLOSING (the host called shutdown()),
 * CLOSE_WAIT and LAST_ACK (the peer closed first).  Left out: LISTEN,
 * SYN_SENT (outbound), TIME_WAIT (never held), CLOSE (unhashed: a reset
 * socket cannot be dumped; it is treated as gone, see the failure model). */
#define IL_HELD_STATES                                                               \
    ((1u << 1) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 8) | (1u << 9) | (1u << 11))

#define IL_LEARN_PORTS 64 /* ports whose local addresses are learned */
#define IL_LEARN_ADDRS 4  /* addresses learned per port; more: that port is dumped */

/* A local address of a port: IPv4-mapped like a peer's (connid.h). */
struct il_local_addr {
    uint64_t addr[2];
    uint32_t ifindex; /* the socket's bound device (0: none), part of the lookup */
};

struct il_learned_port {
    uint16_t port; /* 0: empty */
    uint8_t n;
    uint8_t over; /* more addresses than IL_LEARN_ADDRS */
    struct il_local_addr a[IL_LEARN_ADDRS];
};

/* The learned addresses are this process's (a private table, inherited by
 * a fork as hints), used by one run at a time: a run that cannot take them
 * neither looks up nor learns. */
int il_learn_take(void);
void il_learn_give(void);

/* The addresses learned for port, or NULL (none learned, or too many). */
const struct il_learned_port *il_learn_port(uint16_t port);

/* A dump begins: a new table is built from its held sockets (il_learn_add,
 * each a record on a service port) and replaces the old one when the dump
 * completes (il_learn_commit); a dump that fails commits nothing. */
void il_learn_begin(void);
void il_learn_add(const struct inet_diag_msg *m);
void il_learn_commit(void);

/* One connection to look up. */
struct il_lookup {
    uint64_t peer[2];
    const struct il_local_addr *local;
    uint16_t peer_port_n; /* network order */
    uint16_t local_port;  /* host order */
    uint8_t hit;          /* set: a process holds a socket with this 4-tuple */
    uint32_t tag;         /* the caller's */
};

/* Looks up q[0..n) on the sock_diag socket s, buf (bufsize bytes) for the
 * answers. Returns 0 (each q[i].hit set or left as it was) or -errno (the
 * answers are incomplete: a lost answer, the deadline, a closed socket). */
int il_lookup_all(const struct il_own_fd *s, struct il_lookup *q, uint32_t n, char *buf,
                  size_t bufsize, uint64_t deadline_us);

#endif
