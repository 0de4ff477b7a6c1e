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
 * identity, as may two 4-tuples whose hashes collide (1 in 2^62 per pair).
 * A shared identity only ever errs towards "still there": a dead slot
 * whose identity a live socket also has is not freed while that socket
 * lives (docs/design.md, reconciliation). The hash is seeded per segment
 * (hash_seed), so a peer cannot choose a collision.
 *
 * The two top bits are never set (reconcile.c uses them for its marks),
 * and 0 is never an identity (it means "not recorded"). */
#ifndef IL_CONNID_H
#define IL_CONNID_H

#include <linux/inet_diag.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define IL_CONNID_MARKS (3ULL << 62)

static inline uint64_t il_connid_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* words: the peer address as four 32-bit words in network order (an IPv4
 * address is {0, 0, htonl(0xffff), addr}); ports in host order. */
static inline uint64_t il_connid_of(uint64_t seed, const uint32_t words[4], uint16_t peer_port,
                                    uint16_t local_port)
{
    uint64_t hi = (uint64_t)words[0] << 32 | words[1];
    uint64_t lo = (uint64_t)words[2] << 32 | words[3];
    uint64_t x = il_connid_mix(seed ^ hi ^ ((uint64_t)peer_port << 16 | local_port));
    x = il_connid_mix(x ^ lo) & ~IL_CONNID_MARKS;
    return x ? x : 1;
}

/* The identity of a connection accepted on local_port from peer (an
 * AF_INET or AF_INET6 sockaddr of full length: the caller made a key of it). */
static inline uint64_t il_connid_from_sockaddr(uint64_t seed, const struct sockaddr *peer,
                                               uint16_t local_port)
{
    uint32_t words[4];
    uint16_t port;
    if (peer->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)peer;
        words[0] = 0;
        words[1] = 0;
        words[2] = htonl(0xffff);
        words[3] = sin->sin_addr.s_addr;
        port = sin->sin_port;
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)peer;
        memcpy(words, &sin6->sin6_addr, 16);
        port = sin6->sin6_port;
    }
    return il_connid_of(seed, words, ntohs(port), local_port);
}

/* The identity of a socket as sock_diag lists it: the record's destination
 * is the peer, its source port the local port. An AF_INET record's address
 * is the first word of idiag_dst; an AF_INET6 record of an IPv4 peer (on a
 * dual-stack listener) already holds the mapped address. */
static inline uint64_t il_connid_from_diag(uint64_t seed, const struct inet_diag_msg *m)
{
    uint32_t words[4];
    if (m->idiag_family == AF_INET) {
        words[0] = 0;
        words[1] = 0;
        words[2] = htonl(0xffff);
        words[3] = m->id.idiag_dst[0];
    } else {
        memcpy(words, m->id.idiag_dst, sizeof words);
    }
    return il_connid_of(seed, words, ntohs(m->id.idiag_dport), ntohs(m->id.idiag_sport));
}

#endif
