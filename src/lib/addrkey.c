/* Peer keys: sockaddr to key, prefix masking, CIDR parsing and formatting. */
#include "addrkey.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Two loads and compares, not a memcmp call: the accept path masks every
 * key. */
bool il_key_is_v4(const struct il_key *key)
{
    uint64_t first;
    uint32_t second, mapped;
    memcpy(&first, key->addr, 8);
    memcpy(&second, key->addr + 8, 4);
    memcpy(&mapped, v4_mapped_prefix + 8, 4);
    return first == 0 && second == mapped && key->plen >= IL_V4_OFFSET;
}

bool il_key_from_sockaddr(struct il_key *key, const struct sockaddr *sa, socklen_t len)
{
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        memcpy(key->addr, v4_mapped_prefix, sizeof v4_mapped_prefix);
        memcpy(key->addr + 12, &sin->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        memcpy(key->addr, &sin6->sin6_addr, 16);
    } else {
        return false;
    }
    key->plen = 128;
    return true;
}

static void mask_to(uint8_t addr[16], unsigned plen)
{
    for (unsigned bit = 0; bit < 128; bit += 8) {
        unsigned i = bit / 8;
        if (plen >= bit + 8)
            continue;
        addr[i] = plen > bit ? (uint8_t)(addr[i] & (0xff << (8 - (plen - bit)))) : 0;
    }
}

void il_key_mask(struct il_key *key, unsigned v4_prefix, unsigned v6_prefix)
{
    unsigned plen = il_key_is_v4(key) ? IL_V4_OFFSET + v4_prefix : v6_prefix;
    if (plen < key->plen) {
        key->plen = (uint8_t)plen;
        mask_to(key->addr, plen);
    }
}

bool il_key_equal(const struct il_key *a, const struct il_key *b)
{
    return a->plen == b->plen && memcmp(a->addr, b->addr, 16) == 0;
}

/* The families never mix: an IPv4 peer (stored IPv4-mapped) is inside
 * IPv4 networks only, and ::ffff:0:0/96 (which is one). An IPv6 network
 * that spans the mapped range, ::/0 or ::/8, would otherwise take in every
 * IPv4 peer. The reverse needs no test: an IPv6 address is never inside the
 * mapped range. */
bool il_key_contains(const struct il_key *net, const struct il_key *addr)
{
    if (addr->plen < net->plen || (il_key_is_v4(addr) && !il_key_is_v4(net)))
        return false;
    struct il_key masked = *addr;
    mask_to(masked.addr, net->plen);
    return memcmp(masked.addr, net->addr, 16) == 0;
}

static const char *parse_prefix_len(const char *text, unsigned max, unsigned *out)
{
    if (*text == '\0')
        return "empty prefix length";
    unsigned value = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9' || p - text > 3)
            return "prefix length is not a number";
        value = value * 10 + (unsigned)(*p - '0');
    }
    if (value > max)
        return "prefix length too long";
    *out = value;
    return NULL;
}

const char *il_key_parse_cidr(struct il_key *net, const char *text)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(text, '/');
    size_t addr_len = slash ? (size_t)(slash - text) : strlen(text);
    if (addr_len == 0 || addr_len >= sizeof addr)
        return "not an IP address";
    memcpy(addr, text, addr_len);
    addr[addr_len] = '\0';

    unsigned plen;
    struct in_addr a4;
    if (inet_pton(AF_INET, addr, &a4) == 1) {
        memcpy(net->addr, v4_mapped_prefix, sizeof v4_mapped_prefix);
        memcpy(net->addr + 12, &a4, 4);
        plen = 32;
        if (slash) {
            const char *err = parse_prefix_len(slash + 1, 32, &plen);
            if (err)
                return err;
        }
        plen += IL_V4_OFFSET;
    } else if (inet_pton(AF_INET6, addr, net->addr) == 1) {
        plen = 128;
        if (slash) {
            const char *err = parse_prefix_len(slash + 1, 128, &plen);
            if (err)
                return err;
        }
    } else {
        return "not an IP address";
    }
    net->plen = (uint8_t)plen;
    struct il_key masked = *net;
    mask_to(masked.addr, plen);
    if (memcmp(masked.addr, net->addr, 16) != 0)
        return "address has bits set beyond the prefix length";
    return NULL;
}

char *il_key_format(const struct il_key *key, char buf[IL_KEY_STRLEN])
{
    char addr[INET6_ADDRSTRLEN];
    bool v4 = il_key_is_v4(key);
    if (v4)
        inet_ntop(AF_INET, key->addr + 12, addr, sizeof addr);
    else
        inet_ntop(AF_INET6, key->addr, addr, sizeof addr);
    unsigned full = 128, plen = key->plen;
    if (v4) {
        full -= IL_V4_OFFSET;
        plen -= IL_V4_OFFSET;
    }
    if (plen == full)
        snprintf(buf, IL_KEY_STRLEN, "%s", addr);
    else
        snprintf(buf, IL_KEY_STRLEN, "%s/%u", addr, plen);
    return buf;
}
