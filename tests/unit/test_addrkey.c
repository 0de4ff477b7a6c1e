/* Unit tests for peer keys: sockaddr to key, masking, CIDR parsing,
 * formatting and containment (src/lib/addrkey.c). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "../../src/lib/addrkey.h"
#include "tap.h"

static struct il_key key_v4(const char *text)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    inet_pton(AF_INET, text, &sin.sin_addr);
    struct il_key key;
    memset(&key, 0xaa, sizeof key);
    il_key_from_sockaddr(&key, (struct sockaddr *)&sin, sizeof sin);
    return key;
}

static struct il_key key_v6(const char *text)
{
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, text, &sin6.sin6_addr);
    struct il_key key;
    memset(&key, 0xaa, sizeof key);
    il_key_from_sockaddr(&key, (struct sockaddr *)&sin6, sizeof sin6);
    return key;
}

static const char *fmt(const struct il_key *key)
{
    static char buf[4][IL_KEY_STRLEN];
    static int next;
    return il_key_format(key, buf[next++ % 4]);
}

static void test_from_sockaddr(void)
{
    struct il_key k = key_v4("192.0.2.7");
    static const uint8_t want4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7};
    tap_ok(memcmp(k.addr, want4, 16) == 0, "v4 sockaddr is stored IPv4-mapped");
    IS_U(k.plen, 128, "v4 sockaddr key is full length");
    tap_ok(il_key_is_v4(&k), "v4 sockaddr key is_v4");

    struct il_key m = key_v6("::ffff:192.0.2.7");
    tap_ok(il_key_equal(&k, &m), "v4-mapped v6 peer has the same key as the v4 peer");
    tap_ok(il_key_is_v4(&m), "v4-mapped v6 key is_v4");

    struct il_key s = key_v6("2001:db8::1");
    IS_U(s.plen, 128, "v6 sockaddr key is full length");
    tap_ok(!il_key_is_v4(&s), "v6 key is not v4");
    IS_S(fmt(&s), "2001:db8::1", "v6 key formats back");

    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct il_key out;
    tap_ok(!il_key_from_sockaddr(&out, (struct sockaddr *)&sin, sizeof sin - 1),
           "short AF_INET length refused");
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    tap_ok(!il_key_from_sockaddr(&out, (struct sockaddr *)&sin6, sizeof sin6 - 1),
           "short AF_INET6 length refused");
    struct sockaddr_storage ss = {.ss_family = AF_UNIX};
    tap_ok(!il_key_from_sockaddr(&out, (struct sockaddr *)&ss, sizeof ss),
           "AF_UNIX refused");
}

static void check_mask(const char *addr, unsigned v4p, unsigned v6p, const char *want)
{
    struct il_key k = strchr(addr, ':') ? key_v6(addr) : key_v4(addr);
    il_key_mask(&k, v4p, v6p);
    char name[128];
    snprintf(name, sizeof name, "mask %s v4/%u v6/%u = %s", addr, v4p, v6p, want);
    IS_S(fmt(&k), want, name);
}

static void test_mask(void)
{
    check_mask("10.1.2.3", 32, 64, "10.1.2.3");
    check_mask("10.1.2.3", 24, 64, "10.1.2.0/24");
    check_mask("10.1.2.3", 0, 64, "0.0.0.0/0");
    check_mask("10.1.2.255", 31, 0, "10.1.2.254/31");
    check_mask("::ffff:10.1.2.3", 24, 0, "10.1.2.0/24");
    check_mask("2001:db8:1:2:3:4:5:6", 32, 128, "2001:db8:1:2:3:4:5:6");
    check_mask("2001:db8:1:2:3:4:5:6", 32, 64, "2001:db8:1:2::/64");
    check_mask("2001:db8:1:2:3:4:5:6", 32, 48, "2001:db8:1::/48");
    check_mask("2001:db8:1:2:3:4:5:6", 32, 0, "::/0");
    check_mask("2001:db8:1:2:3:4:5:6", 32, 33, "2001:db8::/33");
    check_mask("2001:db8:ffff::", 32, 33, "2001:db8:8000::/33");

    struct il_key k = key_v4("10.1.2.3");
    il_key_mask(&k, 24, 64);
    IS_U(k.plen, 120, "v4 /24 is plen 120 in the mapped space");
    il_key_mask(&k, 32, 64);
    IS_U(k.plen, 120, "masking never lengthens a key");
}

static void check_cidr(const char *text, const char *want_err, const char *want_fmt)
{
    struct il_key net;
    memset(&net, 0, sizeof net);
    const char *err = il_key_parse_cidr(&net, text);
    char name[160];
    snprintf(name, sizeof name, "parse \"%s\": %s", text, want_err ? want_err : "ok");
    if (!IS_S(err, want_err, name) || want_err)
        return;
    snprintf(name, sizeof name, "format \"%s\" = \"%s\"", text, want_fmt);
    IS_S(fmt(&net), want_fmt, name);
}

static void test_parse_good(void)
{
    check_cidr("10.0.0.1", NULL, "10.0.0.1");
    check_cidr("10.0.0.0/8", NULL, "10.0.0.0/8");
    check_cidr("10.0.0.1/32", NULL, "10.0.0.1");
    check_cidr("0.0.0.0/0", NULL, "0.0.0.0/0");
    check_cidr("192.168.1.0/24", NULL, "192.168.1.0/24");
    check_cidr("::1", NULL, "::1");
    check_cidr("::/0", NULL, "::/0");
    check_cidr("2001:db8::/32", NULL, "2001:db8::/32");
    check_cidr("2001:DB8:0:1::/64", NULL, "2001:db8:0:1::/64");
    check_cidr("2001:db8::1/128", NULL, "2001:db8::1");
    check_cidr("::ffff:10.0.0.1", NULL, "10.0.0.1");
    check_cidr("::ffff:10.0.0.0/120", NULL, "10.0.0.0/24");

    struct il_key net;
    il_key_parse_cidr(&net, "10.0.0.0/24");
    IS_U(net.plen, 120, "10.0.0.0/24 is plen 120");
    il_key_parse_cidr(&net, "2001:db8::/48");
    IS_U(net.plen, 48, "2001:db8::/48 is plen 48");
}

static void test_parse_bad(void)
{
    const char *not_ip = "not an IP address";
    const char *host_bits = "address has bits set beyond the prefix length";
    check_cidr("", not_ip, NULL);
    check_cidr("/24", not_ip, NULL);
    check_cidr("garbage", not_ip, NULL);
    check_cidr("10.0.0", not_ip, NULL);
    check_cidr("10.0.0.256", not_ip, NULL);
    check_cidr("10.0.0.1 ", not_ip, NULL);
    check_cidr("2001:db8:::1", not_ip, NULL);
    check_cidr("1234567890123456789012345678901234567890123456789", not_ip, NULL);
    check_cidr("10.0.0.1/", "empty prefix length", NULL);
    check_cidr("10.0.0.0/33", "prefix length too long", NULL);
    check_cidr("::/129", "prefix length too long", NULL);
    check_cidr("10.0.0.0/-1", "prefix length is not a number", NULL);
    check_cidr("10.0.0.0/8x", "prefix length is not a number", NULL);
    check_cidr("10.0.0.0/ 8", "prefix length is not a number", NULL);
    check_cidr("10.0.0.0/8/8", "prefix length is not a number", NULL);
    check_cidr("10.0.0.0/99999999999", "prefix length is not a number", NULL);
    check_cidr("10.0.0.1/24", host_bits, NULL);
    check_cidr("10.0.0.0/0", host_bits, NULL);
    check_cidr("2001:db8::1/64", host_bits, NULL);
    check_cidr("2001:db8:0:0:8000::/64", host_bits, NULL);
}

static void check_contains(const char *net_text, const char *addr, bool want)
{
    struct il_key net;
    char name[128];
    snprintf(name, sizeof name, "%s %s %s", net_text, want ? "contains" : "does not contain",
             addr);
    if (il_key_parse_cidr(&net, net_text) != NULL) {
        tap_ok(false, "%s (network did not parse)", name);
        return;
    }
    struct il_key k = strchr(addr, ':') ? key_v6(addr) : key_v4(addr);
    tap_ok(il_key_contains(&net, &k) == want, "%s", name);
}

static void test_contains(void)
{
    check_contains("10.0.0.0/8", "10.255.1.2", true);
    check_contains("10.0.0.0/8", "11.0.0.1", false);
    check_contains("10.0.0.1", "10.0.0.1", true);
    check_contains("10.0.0.1", "10.0.0.2", false);
    check_contains("0.0.0.0/0", "203.0.113.9", true);
    check_contains("0.0.0.0/0", "2001:db8::1", false);
    check_contains("10.0.0.0/8", "::ffff:10.1.1.1", true);
    check_contains("2001:db8::/32", "2001:db8:ffff::1", true);
    check_contains("2001:db8::/32", "2001:db9::1", false);
    /* the families never mix: an IPv6 network holds no IPv4 peer */
    check_contains("::/0", "10.1.2.3", false);
    check_contains("::/0", "::ffff:10.1.2.3", false);
    check_contains("::/0", "2001:db8::1", true);
    check_contains("::/0", "::1", true);
    check_contains("::/8", "10.1.2.3", false);
    check_contains("::/8", "::1", true);
    check_contains("::/80", "127.0.0.2", false);
    check_contains("::/95", "127.0.0.2", false);
    /* ::ffff:0:0/96 is how to name every IPv4(-mapped) peer */
    check_contains("::ffff:0:0/96", "127.0.0.2", true);
    check_contains("::ffff:0:0/96", "2001:db8::1", false);
    check_contains("::ffff:0:0/96", "::1", false);
    check_contains("::ffff:10.0.0.0/104", "10.9.9.9", true);
    check_contains("::ffff:10.0.0.0/104", "11.0.0.1", false);

    struct il_key net, shorter = key_v4("10.1.2.3");
    il_key_parse_cidr(&net, "10.1.2.0/24");
    il_key_mask(&shorter, 16, 64);
    tap_ok(!il_key_contains(&net, &shorter), "a /24 does not contain a /16 key");
}

static void test_hash(void)
{
    struct il_key a = key_v4("10.0.0.1"), b = key_v4("10.0.0.1"), c = key_v4("10.0.0.2");
    IS_U(il_key_hash(&a, 42), il_key_hash(&b, 42), "equal keys hash equal");
    tap_ok(il_key_hash(&a, 42) != il_key_hash(&c, 42), "different keys hash differently");
    struct il_key d = a;
    il_key_mask(&d, 24, 64);
    tap_ok(!il_key_equal(&a, &d), "a key and its /24 are different keys");
    /* The straight accept path hashes an IPv4 key from a prepared hi and
     * plen (limiter.c): the same hash as the whole key's. */
    uint64_t lo;
    memcpy(&lo, d.addr + 8, 8);
    struct il_key_hash_prep prep = il_key_hash_prep(0, d.plen, 0x0123456789abcdefULL);
    IS_U(il_key_hash_lo(&prep, lo), il_key_hash(&d, 0x0123456789abcdefULL),
         "a prepared IPv4 hash is the key's hash");
}

/* Home slots of 4096 keys in a table of 2^17: consecutive IPv4 hosts (the
 * address's last byte is the top byte of the hashed word) and consecutive
 * IPv6 /64 networks (whose low half is all zero) must spread as random
 * keys would (about 4032 distinct homes); a hash that lost either half
 * would put them in a few. */
static unsigned distinct_homes(bool v6, uint64_t seed)
{
    enum { KEYS = 4096, SLOTS = 1 << 17 };
    static uint8_t used[SLOTS];
    memset(used, 0, sizeof used);
    unsigned distinct = 0;
    for (unsigned i = 0; i < KEYS; i++) {
        char text[64];
        struct il_key k;
        if (v6)
            snprintf(text, sizeof text, "2001:db8:%x:%x::/64", i >> 8, i & 0xff);
        else
            snprintf(text, sizeof text, "10.1.%u.%u", i >> 8, i & 0xff);
        if (il_key_parse_cidr(&k, text))
            return 0;
        uint32_t home = (uint32_t)il_key_hash(&k, seed) & (SLOTS - 1);
        distinct += !used[home];
        used[home] = 1;
    }
    return distinct;
}

static void test_hash_spread(void)
{
    const uint64_t seeds[] = {42, 0x0123456789abcdefULL, 0xfedcba9876543210ULL};
    for (unsigned i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        unsigned v4 = distinct_homes(false, seeds[i]), v6 = distinct_homes(true, seeds[i]);
        tap_ok(v4 >= 3900, "4096 consecutive IPv4 hosts: %u distinct homes (seed %u)", v4, i);
        tap_ok(v6 >= 3900, "4096 consecutive IPv6 /64s: %u distinct homes (seed %u)", v6, i);
    }
}

int main(void)
{
    test_from_sockaddr();
    test_mask();
    test_parse_good();
    test_parse_bad();
    test_contains();
    test_hash();
    test_hash_spread();
    return tap_done();
}
