/* Peer keys: the unit a limit is counted against.
 *
 * Every address lives in one 128-bit space: IPv4 a.b.c.d is stored as the
 * IPv4-mapped IPv6 address ::ffff:a.b.c.d, so a dual-stack listener's mapped
 * peers and a plain IPv4 listener's peers get the same key.  A key is an
 * address masked to a prefix length in that space (IPv4 /24 is plen 120). */
#ifndef IL_ADDRKEY_H
#define IL_ADDRKEY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define IL_V4_OFFSET 96 /* IPv4 prefix n is plen 96 + n in the mapped space */
#define IL_KEY_STRLEN 64

struct il_key {
    uint8_t addr[16];
    uint8_t plen; /* 0..128 */
};

/* A key's address as two native 64-bit words: hi = bytes 0..7, lo = 8..15. */
static inline uint64_t il_key_load64(const uint8_t *p)
{
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    return v;
}

/* lo of ::ffff:a.b.c.d for addr_n (network order): the bytes 0, 0, 0xff,
 * 0xff, a, b, c, d as one native word, computed in registers (a byte array
 * copied into a word becomes a load of a constant from .rodata, one more
 * page on the accept path: hot.h). */
static inline uint64_t il_key_v4_lo(uint32_t addr_n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (uint64_t)addr_n << 32 | 0xffff0000u;
#else
    return (uint64_t)0xffffu << 32 | addr_n;
#endif
}

/* Whether lo (with hi 0) is an IPv4-mapped address's. */
static inline bool il_key_lo_is_v4(uint64_t lo)
{
    static const uint8_t mask[8] = {0xff, 0xff, 0xff, 0xff};
    return (lo & il_key_load64(mask)) == il_key_v4_lo(0);
}

/* Reads an AF_INET/AF_INET6 sockaddr into a full-length key (plen 128).
 * Returns false for any other family or a short length. */
bool il_key_from_sockaddr(struct il_key *key, const struct sockaddr *sa, socklen_t len);

/* Masks key to v4_prefix (0..32) if it is IPv4(-mapped), else to v6_prefix (0..128). */
void il_key_mask(struct il_key *key, unsigned v4_prefix, unsigned v6_prefix);

bool il_key_is_v4(const struct il_key *key);
bool il_key_equal(const struct il_key *a, const struct il_key *b);

/* true if addr (full length) lies inside network net/net->plen and both are
 * of one family: an IPv6 network never contains an IPv4 address, whatever
 * its prefix (::/0 is "every IPv6 peer"); ::ffff:0:0/96 is IPv4's 0.0.0.0/0. */
bool il_key_contains(const struct il_key *net, const struct il_key *addr);

/* The key table's hash: one 64x64->128-bit multiplication of the key's two
 * halves, its two halves folded together. Every input bit reaches the low
 * bits that pick the home slot (an IPv4 address sits in the top bytes of
 * lo; a /64 key's lo is zero, so neither half may be left out), in about
 * 10 instructions. Each factor is xored with a constant with high and low
 * bits set, so that neither is ever small whatever the key (a small factor
 * leaves the high half, and so the home, nearly constant); the seed, on one
 * side, keeps a peer from choosing keys that share a home. Inline: the
 * accept path hashes every key. */
/* The hash in two steps, for keys whose hi and plen are known before their
 * lo (limiter.c: an IPv4 key, hi 0, under a policy's prefix):
 * il_key_hash_prep once, then il_key_hash_lo for each lo, which equals
 * il_key_hash of that key (il_key_hash is made of the two). */
struct il_key_hash_prep {
    uint64_t a, b;
};

#ifdef __SIZEOF_INT128__
static inline struct il_key_hash_prep il_key_hash_prep(uint64_t hi, uint8_t plen, uint64_t seed)
{
    struct il_key_hash_prep prep = {.a = plen ^ 0x9e3779b97f4a7c15ULL,
                                     .b = hi ^ seed ^ 0xc2b2ae3d27d4eb4fULL};
    return prep;
}

static inline uint64_t il_key_hash_lo(const struct il_key_hash_prep *prep, uint64_t lo)
{
    unsigned __int128 product = (unsigned __int128)(lo ^ prep->a) * prep->b;
    return (uint64_t)(product >> 64) ^ (uint64_t)product;
}
#else
static inline uint64_t il_key_mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline struct il_key_hash_prep il_key_hash_prep(uint64_t hi, uint8_t plen, uint64_t seed)
{
    struct il_key_hash_prep prep = {.a = seed + plen, .b = il_key_mix64(hi ^ seed)};
    return prep;
}

static inline uint64_t il_key_hash_lo(const struct il_key_hash_prep *prep, uint64_t lo)
{
    return prep->b ^ il_key_mix64(lo + prep->a);
}
#endif

static inline uint64_t il_key_hash(const struct il_key *key, uint64_t seed)
{
    uint64_t hi, lo;
    __builtin_memcpy(&hi, key->addr, 8);
    __builtin_memcpy(&lo, key->addr + 8, 8);
    struct il_key_hash_prep prep = il_key_hash_prep(hi, key->plen, seed);
    return il_key_hash_lo(&prep, lo);
}

/* Parses "a.b.c.d", "a.b.c.d/n", "v6", "v6/n". A bare address is a host
 * (/32 or /128). Host bits beyond the prefix must be zero. Returns NULL on
 * success or a static description of what is wrong. */
const char *il_key_parse_cidr(struct il_key *net, const char *text);

/* "127.0.0.2", "10.0.0.0/24", "2001:db8::/64", "::1". Returns buf. */
char *il_key_format(const struct il_key *key, char buf[IL_KEY_STRLEN]);

#endif
