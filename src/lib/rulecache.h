/* The rule cache: a thread's copy of a policy's rules (allowlist and
 * per-network limits) in a form the accept path judges in a few
 * instructions per rule, with exactly il_policy_judge's decisions.
 *
 * Filled once per policy generation (limiter.c, read_policy) from a policy
 * with at most IL_RULECACHE_MAX rules; a policy with more is judged by
 * il_policy_judge on every accept. The rules keep the policy's order
 * (allow rules first, then longest prefix first: il_policy_finish), split
 * by family: an IPv4 network (inside ::ffff:0:0/96) contains IPv4 peers
 * only and any other network IPv6 peers only (il_key_contains), so a
 * peer's first match in its family's list is its first match in the
 * policy. IPv4 rules are a 32-bit compare, (addr & mask) == net in network
 * byte order; IPv6 rules two 64-bit compares on the address loaded as
 * native words (il_key_load64). A rule whose network has bits set beyond
 * its prefix, or a prefix over 128, contains no peer (il_key_contains) and
 * is left out. */
#ifndef IL_RULECACHE_H
#define IL_RULECACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "addrkey.h"
#include "policy.h"

#define IL_RULECACHE_MAX 64

struct il_rulecache_v4 {
    uint32_t mask, net; /* network byte order */
    uint32_t limit;     /* IL_UNLIMITED for an allow rule */
    uint8_t allow;
};

struct il_rulecache_v6 {
    uint64_t mask_hi, mask_lo, net_hi, net_lo;
    uint32_t limit;
    uint8_t allow;
};

struct il_rulecache {
    uint32_t nv4, nv6;
    uint32_t max; /* the limit of a peer no rule contains */
    struct il_rulecache_v4 v4[IL_RULECACHE_MAX];
    struct il_rulecache_v6 v6[IL_RULECACHE_MAX];
};

/* Copies policy's rules into rc; false (rc unusable) when there are more
 * than IL_RULECACHE_MAX. */
bool il_rulecache_fill(struct il_rulecache *rc, const struct il_policy *policy);

/* The verdict of a peer no rule contains: the policy's max and its one
 * rate (IPLIMIT_RATE; a policy with per-network rates is not cached). */
void il_rulecache_default_verdict(const struct il_policy *policy, struct il_verdict *verdict);

/* An IPv4 peer (addr_n in network byte order): whether an allow rule
 * contains it; else *limit is its limit. */
static inline __attribute__((always_inline)) bool
il_rulecache_judge_v4(const struct il_rulecache *rc, uint32_t addr_n, uint32_t *limit)
{
    for (uint32_t i = 0; i < rc->nv4; i++) {
        const struct il_rulecache_v4 *r = &rc->v4[i];
        if ((addr_n & r->mask) == r->net) {
            *limit = r->limit;
            return r->allow;
        }
    }
    *limit = rc->max;
    return false;
}

/* An IPv6 peer that is not IPv4-mapped, its address as il_key_load64's
 * words hi and lo. */
static inline __attribute__((always_inline)) bool
il_rulecache_judge_v6(const struct il_rulecache *rc, uint64_t hi, uint64_t lo, uint32_t *limit)
{
    for (uint32_t i = 0; i < rc->nv6; i++) {
        const struct il_rulecache_v6 *r = &rc->v6[i];
        if ((hi & r->mask_hi) == r->net_hi && (lo & r->mask_lo) == r->net_lo) {
            *limit = r->limit;
            return r->allow;
        }
    }
    *limit = rc->max;
    return false;
}

/* il_policy_judge from the cache: peer is a full-length key and verdict
 * holds il_rulecache_default_verdict's defaults on entry. */
void il_rulecache_verdict(const struct il_rulecache *rc, const struct il_key *peer,
                          unsigned v4_prefix, unsigned v6_prefix, struct il_verdict *verdict);

#endif
