/* A connection's identity: what reconciliation (reconcile.c) matches a
 * connection slot to the kernel's socket by.
 *
 * The accept path records the raw facts it already has, no system call
 * and no hashing: the peer's address (two 64-bit stores), its port and the
 * listener's port (one word with the slot's generation, il_connid_word).
 * Reconciliation then does what needs more work: it looks each connection
 * up in the kernel by its exact 4-tuple (reclookup.c), and, for its dump of
 * the service's sockets, hashes the record (il_connid_of) the way it
 * hashes each sock_diag record (il_connid_from_diag: its destination
 * address and port are the peer's, its source port the local one).
 *
 * Addresses live in one 128-bit space, as in addrkey.h: IPv4 a.b.c.d is
 * ::ffff:a.b.c.d, so an IPv4 peer of a dual-stack listener (which
 * sock_diag lists in its IPv6 dump, with the mapped address) has the same
 * identity either way. It is the TCP peer's, never the key's: a proxied
 * connection's key is its PROXY client, its identity the balancer's
 * address and port.
 *
 * The local address is not recorded (it would take a getsockname per
 * accept on a wildcard listener): reconciliation learns the local
 * addresses of each port from its dumps (reclookup.c). In the dump's
 * matching two live connections from one peer address and port to two
 * local addresses on the same port share a hash, as may two 4-tuples whose
 * hashes collide (1 in 2^61 per pair). A shared hash only ever errs towards
 * "still there": a dead slot whose hash a live socket also has is not
 * freed while that socket lives (docs/design.md, reconciliation). The hash
 * is seeded per segment (hash_seed), so a peer cannot choose a collision.
 *
 * The two top bits of a hash and of a slot's ident word are never set
 * (reconcile.c uses them for its marks); bit 61 always is, so 0 is never
 * an identity (it means "not recorded").
 *
 * The hash is one multiplication of the address's low 64 bits (an IPv4
 * peer's whole address, as ::ffff:a.b.c.d keeps its constant part there)
 * with the two ports folded into that constant part: for IPv4 peers the
 * value multiplied, and so the hash before the mark bits are taken, is
 * one-to-one with (address, peer port, local port). An IPv6 peer's high 64
 * bits add a second multiplication. */
#ifndef IL_CONNID_H
#define IL_CONNID_H

#include <linux/inet_diag.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "addrkey.h"

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

/* The low 64 bits of ::ffff:a.b.c.d, for addr in network order (the same
 * word as addrkey.h's il_key_v4_lo). */
static inline uint64_t il_connid_v4_lo(uint32_t addr_n)
{
    return il_key_v4_lo(addr_n);
}

/* The ident word of a slot (shm.h): [63:62] reconciliation's marks (0
 * here), [61] set, [55:32] the slot's generation, [31:16] the peer port in
 * network order, [15:0] the local port. The generation tells a record of
 * this connection from one left by the slot's previous connection. */
#define IL_CONNID_GEN_SHIFT 32
static inline uint64_t il_connid_word(uint32_t gen, uint16_t peer_port_n, uint16_t local_port)
{
    return IL_CONNID_SET | (uint64_t)gen << IL_CONNID_GEN_SHIFT | (uint32_t)peer_port_n << 16 |
           local_port;
}
static inline uint32_t il_connid_word_gen(uint64_t word)
{
    return (uint32_t)(word >> IL_CONNID_GEN_SHIFT) & 0xffffffu;
}
static inline uint16_t il_connid_word_peer_port(uint64_t word)
{
    return (uint16_t)(word >> 16);
}
static inline uint16_t il_connid_word_local_port(uint64_t word)
{
    return (uint16_t)word;
}

/* The TCP peer of a connection as its identity records it: the
 * (IPv4-mapped) address as two native 64-bit words and the port in
 * network order. */
struct il_connid_peer {
    uint64_t hi, lo;
    uint16_t port_n;
};

/* The peer of an AF_INET or AF_INET6 sockaddr of full length (the caller
 * made a key of it). */
static inline void il_connid_peer_of(const struct sockaddr *peer, struct il_connid_peer *out)
{
    if (peer->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)peer;
        out->hi = 0;
        out->lo = il_connid_v4_lo(sin->sin_addr.s_addr);
        out->port_n = sin->sin_port;
        return;
    }
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)peer;
    out->hi = il_connid_load64(sin6->sin6_addr.s6_addr);
    out->lo = il_connid_load64(sin6->sin6_addr.s6_addr + 8);
    out->port_n = sin6->sin6_port;
}

/* The hash of a connection accepted on local_port from peer: what
 * reconciliation computes from the slot's record. */
static inline uint64_t il_connid_from_sockaddr(uint64_t seed, const struct sockaddr *peer,
                                               uint16_t local_port)
{
    struct il_connid_peer p;
    il_connid_peer_of(peer, &p);
    return il_connid_of(seed, p.hi, p.lo, p.port_n, local_port);
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
