/* A connection's identity: a 62-bit hash of its TCP peer address, peer
 * port and local port, which reconciliation (reconcile.c) uses to match a
 * connection slot to the kernel's socket.
 *
 * The accept path computes it from what accept already has (the peer's
 * sockaddr and the listener's port, kept in the listener's fd map entry),
 * so counting a connection adds no system call; reconciliation computes
 * the same value from each sock_diag record (its destination address and
 * port are the peer's, its source port the local one).
 *
 * Addresses live in one 128-bit space, as in addrkey.h: IPv4 a.b.c.d is
 * ::ffff:a.b.c.d, so an IPv4 peer of a dual-stack listener (which
 * sock_diag lists in its IPv6 dump, with the mapped address) has the same
 * identity either way. It is the TCP peer's, never the key's: a proxied
 * connection's key is its PROXY client, its identity the balancer's
 * address and port.
 *
 * The local address is not part of it (it would take a getsockname per
 * accept on a wildcard listener): two live connections from one peer
 * address and port to two local addresses on the same port share an
 * identity, as may two 4-tuples whose hashes collide (1 in 2^61 per pair).
 * A shared identity only ever errs towards "still there": a dead slot
 * whose identity a live socket also has is not freed while that socket
 * lives (docs/design.md, reconciliation). The hash is seeded per segment
 * (hash_seed), so a peer cannot choose a collision.
 *
 * The two top bits are never set (reconcile.c uses them for its marks),
 * bit 61 always is, so 0 is never an identity (it means "not recorded").
 *
 * The hash is one multiplication of the address's low 64 bits (an IPv4
 * peer's whole address, as ::ffff:a.b.c.d keeps its constant part there)
 * with the two ports folded into that constant part: for IPv4 peers the
 * value multiplied, and so the identity before the mark bits are taken, is
 * one-to-one with (address, peer port, local port). An IPv6 peer's high 64
 * bits add a second multiplication. It costs the accept 20 instructions
 * (callgrind, IPv4 peer; two rounds of a 64-bit finalizer cost 41). */
#ifndef IL_CONNID_H
#define IL_CONNID_H

#include <linux/inet_diag.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define IL_CONNID_MARKS (3ULL << 62)
#define IL_CONNID_SET (1ULL << 61)

static inline uint64_t il_connid_load64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* hi, lo: the 16 bytes of the peer's (IPv4-mapped) address, loaded as two
 * native 64-bit words; ports as the caller has them (the peer port in
 * network order, the local port in host order), the same on both sides. */
static inline uint64_t il_connid_of(uint64_t seed, uint64_t hi, uint64_t lo, uint16_t peer_port_n,
                                    uint16_t local_port)
{
    uint64_t ports = (uint64_t)peer_port_n << 16 | local_port;
    uint64_t x = (lo ^ ports ^ seed) * 0x9e3779b97f4a7c15ULL;
    if (hi)
        x ^= (hi ^ seed) * 0xc2b2ae3d27d4eb4fULL;
    x ^= x >> 29;
    return (x & ~(IL_CONNID_MARKS | IL_CONNID_SET)) | IL_CONNID_SET;
}

/* The low 64 bits of ::ffff:a.b.c.d, for addr in network order. */
static inline uint64_t il_connid_v4_lo(uint32_t addr_n)
{
    unsigned char bytes[8] = {0, 0, 0xff, 0xff};
    memcpy(bytes + 4, &addr_n, sizeof addr_n);
    return il_connid_load64(bytes);
}

/* The identity of a connection accepted on local_port from peer (an
 * AF_INET or AF_INET6 sockaddr of full length: the caller made a key of it). */
static inline uint64_t il_connid_from_sockaddr(uint64_t seed, const struct sockaddr *peer,
                                               uint16_t local_port)
{
    if (peer->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)peer;
        return il_connid_of(seed, 0, il_connid_v4_lo(sin->sin_addr.s_addr), sin->sin_port,
                            local_port);
    }
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)peer;
    const unsigned char *a = sin6->sin6_addr.s6_addr;
    return il_connid_of(seed, il_connid_load64(a), il_connid_load64(a + 8), sin6->sin6_port,
                        local_port);
}

/* The identity of a socket as sock_diag lists it: the record's destination
 * is the peer, its source port the local port. An AF_INET record's address
 * is the first word of idiag_dst; an AF_INET6 record of an IPv4 peer (on a
 * dual-stack listener) already holds the mapped address. */
static inline uint64_t il_connid_from_diag(uint64_t seed, const struct inet_diag_msg *m)
{
    if (m->idiag_family == AF_INET)
        return il_connid_of(seed, 0, il_connid_v4_lo(m->id.idiag_dst[0]), m->id.idiag_dport,
                            ntohs(m->id.idiag_sport));
    return il_connid_of(seed, il_connid_load64(m->id.idiag_dst),
                        il_connid_load64(&m->id.idiag_dst[2]), m->id.idiag_dport,
                        ntohs(m->id.idiag_sport));
}

#endif
