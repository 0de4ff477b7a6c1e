/* Unit tests for the rule cache (src/lib/rulecache.c): the cached judge
 * gives exactly il_policy_judge's verdict (key, limit, allowed, rate) for
 * random and edge peers under random and edge rule sets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lib/rulecache.h"
#include "tap.h"
#include "unit_segment.h"

static struct il_policy policy;
static struct il_rulecache cache;

/* xorshift64: the same sequence on every run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}


/* A few addresses near one another, so that random rules and peers
 * overlap often: 10.x.y.z with small x, y, z, 2001:db8::/32 likewise,
 * and the edges 0.0.0.0, 255.255.255.255, ::, ::1, ffff:..., ::ffff:0:0. */
static void random_addr(struct il_key *key, bool v4)
{
    memset(key, 0, sizeof *key);
    key->plen = 128;
    unsigned pick = rnd() % 8;
    if (v4) {
        key->addr[10] = key->addr[11] = 0xff;
        if (pick == 0)
            return;
        if (pick == 1) {
            memset(key->addr + 12, 0xff, 4);
            return;
        }
        key->addr[12] = (uint8_t)(pick == 2 ? rnd() : 10);
        for (int i = 13; i < 16; i++)
            key->addr[i] = (uint8_t)(rnd() % 4 * (pick == 3 ? 64 : 1));
        return;
    }
    if (pick == 0)
        return;
    if (pick == 1) {
        memset(key->addr, 0xff, 16);
        return;
    }
    if (pick == 2) {
        key->addr[15] = 1;
        return;
    }
    key->addr[0] = 0x20;
    key->addr[1] = 0x01;
    key->addr[2] = 0x0d;
    key->addr[3] = 0xb8;
    for (int i = 4; i < 16; i++)
        key->addr[i] = (uint8_t)(rnd() % 3 == 0 ? rnd() % 4 : 0);
    if (pick == 3)
        key->addr[8] = (uint8_t)rnd();
}

static void mask_bits(struct il_key *key, unsigned plen)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned bits = plen > 8 * i ? plen - 8 * i : 0;
        if (bits < 8)
            key->addr[i] &= (uint8_t)(0xff00u >> bits);
    }
    key->plen = (uint8_t)plen;
}

static const unsigned v4_lens[] = {0, 1, 7, 8, 16, 24, 30, 31, 32};
static const unsigned v6_lens[] = {0, 1, 8, 32, 48, 63, 64, 65, 96, 120, 127, 128};

static void random_rule(void)
{
    struct il_key net;
    bool v4 = rnd() % 2;
    random_addr(&net, v4);
    unsigned plen = v4 ? 96 + v4_lens[rnd() % (sizeof v4_lens / sizeof v4_lens[0])]
                       : v6_lens[rnd() % (sizeof v6_lens / sizeof v6_lens[0])];
    mask_bits(&net, plen);
    if (rnd() % 16 == 0) /* a network with host bits set: contains nothing */
        net.addr[15] |= 1;
    il_policy_add_rule(&policy, &net, rnd() % 3 == 0, (uint32_t)(rnd() % 5));
}

static bool same_verdict(const struct il_key *peer, bool show)
{
    struct il_verdict want, got;
    memset(&want, 0xaa, sizeof want);
    il_policy_judge(&policy, peer, &want);
    memset(&got, 0x55, sizeof got);
    il_rulecache_default_verdict(&policy, &got);
    il_rulecache_verdict(&cache, peer, policy.v4_prefix, policy.v6_prefix, &got);
    bool same = il_key_equal(&want.key, &got.key) && want.limit == got.limit &&
                want.allowed == got.allowed && want.rate == got.rate && want.burst == got.burst;
    if (!same && show) {
        char a[IL_KEY_STRLEN], b[IL_KEY_STRLEN], c[IL_KEY_STRLEN];
        tap_diag("peer %s: judge %s limit %u allowed %d rate %u/%u; cache %s limit %u "
                 "allowed %d rate %u/%u",
                 il_key_format(peer, a), il_key_format(&want.key, b), want.limit, want.allowed,
                 want.rate, want.burst, il_key_format(&got.key, c), got.limit, got.allowed,
                 got.rate, got.burst);
    }
    return same;
}

static void new_policy(unsigned nrules)
{
    il_policy_defaults(&policy);
    policy.v4_prefix = (uint8_t)v4_lens[rnd() % (sizeof v4_lens / sizeof v4_lens[0])];
    policy.v6_prefix = (uint8_t)v6_lens[rnd() % (sizeof v6_lens / sizeof v6_lens[0])];
    policy.max = (uint32_t)(rnd() % 4);
    policy.rate = rnd() % 2 ? (uint32_t)(rnd() % 100) : 0;
    policy.burst = (uint32_t)(rnd() % 3);
    for (unsigned i = 0; i < nrules; i++)
        random_rule();
    il_policy_finish(&policy);
}

/* Random rule sets of 0 to 64 rules, random peers of both families. */
static void test_random(void)
{
    unsigned sets = 0, peers = 0, differ = 0;
    for (unsigned set = 0; set < 3000; set++) {
        new_policy((unsigned)(rnd() % (IL_RULECACHE_MAX + 1)));
        if (!il_rulecache_fill(&cache, &policy)) {
            tap_ok(false, "random set %u: %u rules not cached", set, policy.nrules);
            return;
        }
        sets++;
        for (unsigned i = 0; i < 200; i++) {
            struct il_key peer;
            random_addr(&peer, rnd() % 2);
            peers++;
            if (!same_verdict(&peer, differ < 5))
                differ++;
        }
    }
    tap_ok(differ == 0, "cached judge = il_policy_judge: %u of %u peers differ over %u rule sets",
           differ, peers, sets);
}

static void check(const char *peer_text, const char *what)
{
    struct il_key peer = unit_cidr(peer_text);
    tap_ok(same_verdict(&peer, true), "%s: %s", what, peer_text);
}

static void add(const char *net, bool allow, uint32_t limit)
{
    struct il_key key = unit_cidr(net);
    il_policy_add_rule(&policy, &key, allow, limit);
}

/* Hand-made sets: each edge the random sets might miss. */
static void test_edges(void)
{
    il_policy_defaults(&policy);
    policy.v4_prefix = 24;
    policy.rate = 5;
    add("10.0.0.0/8", true, 0);
    add("10.1.0.0/16", false, 3); /* a limit inside an allow: the allow wins */
    add("0.0.0.0/0", false, 7);
    add("::/0", false, 9); /* IPv6 only: no IPv4 peer is inside ::/0 */
    add("2001:db8::/32", true, 0);
    add("2001:db8:1::/48", false, 2);
    add("127.0.0.1", false, 1);
    add("::1/128", false, 4);
    il_policy_finish(&policy);
    tap_ok(il_rulecache_fill(&cache, &policy), "edge set cached");
    check("10.1.2.3", "allow over a longer limit");
    check("::ffff:10.1.2.3", "IPv4-mapped peer judged as IPv4");
    check("127.0.0.1", "/32");
    check("127.0.0.2", "/0 for IPv4");
    check("::ffff:127.0.0.1", "mapped /32");
    check("255.255.255.255", "top IPv4");
    check("0.0.0.0", "IPv4 zero");
    check("2001:db8:1::5", "allow /32 over a /48 limit");
    check("2001:db9::1", "::/0 for IPv6");
    check("::1", "/128");
    check("::2", "::/0 again");
    check("::", "IPv6 zero");
    check("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "top IPv6");
    check("::fffe:1.2.3.4", "next to the mapped range");

    il_policy_defaults(&policy);
    add("10.0.0.0/24", false, 1);
    add("10.0.0.0/8", false, 5); /* longest prefix first, whatever the order given */
    add("::ffff:0.0.0.0/96", false, 6); /* IPv4's /0 */
    il_policy_finish(&policy);
    il_rulecache_fill(&cache, &policy);
    check("10.0.0.9", "longest prefix first");
    check("10.0.1.9", "the shorter prefix next");
    check("11.0.0.1", "::ffff:0:0/96 contains IPv4 peers");
    check("::5", "::ffff:0:0/96 contains no IPv6 peer");

    il_policy_defaults(&policy);
    for (unsigned i = 0; i <= IL_RULECACHE_MAX; i++)
        add("10.0.0.0/8", false, i);
    tap_ok(!il_rulecache_fill(&cache, &policy), "%u rules: not cached",
           (unsigned)IL_RULECACHE_MAX + 1);
    policy.nrules = IL_RULECACHE_MAX;
    tap_ok(il_rulecache_fill(&cache, &policy), "%u rules: cached", (unsigned)IL_RULECACHE_MAX);
}

int main(void)
{
    test_edges();
    test_random();
    return tap_done();
}
