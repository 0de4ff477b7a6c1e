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

uint64_t il_key_hash(const struct il_key *key, uint64_t seed);

/* Parses "a.b.c.d", "a.b.c.d/n", "v6", "v6/n". A bare address is a host
 * (/32 or /128). Host bits beyond the prefix must be zero. Returns NULL on
 * success or a static description of what is wrong. */
const char *il_key_parse_cidr(struct il_key *net, const char *text);

/* "127.0.0.2", "10.0.0.0/24", "2001:db8::/64", "::1". Returns buf. */
char *il_key_format(const struct il_key *key, char buf[IL_KEY_STRLEN]);

#endif
