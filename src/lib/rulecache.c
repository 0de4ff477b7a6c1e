/* The rule cache (see rulecache.h). */
#include "rulecache.h"

#include <string.h>

/* The all-ones address masked to plen bits, byte by byte. */
static void prefix_mask(uint8_t mask[16], unsigned plen)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned bits = plen > 8 * i ? plen - 8 * i : 0;
        mask[i] = bits >= 8 ? 0xff : (uint8_t)(0xff00u >> bits);
    }
}

bool il_rulecache_fill(struct il_rulecache *rc, const struct il_policy *policy)
{
    uint32_t n = policy->nrules;
    if (n > IL_RULECACHE_MAX)
        return false;
    rc->nv4 = rc->nv6 = 0;
    rc->max = policy->max;
    for (uint32_t i = 0; i < n; i++) {
        const struct il_rule *rule = &policy->rules[i];
        struct il_key net = rule->net;
        if (net.plen > 128)
            continue;
        uint8_t mask[16];
        prefix_mask(mask, net.plen);
        bool host_bits = false;
        for (unsigned b = 0; b < 16; b++)
            host_bits |= (net.addr[b] & ~mask[b]) != 0;
        if (host_bits)
            continue;
        uint32_t limit = rule->allow ? IL_UNLIMITED : rule->limit;
        if (il_key_is_v4(&net)) {
            /* The first 96 bits are ::ffff's, which the peer's family
             * test has already matched. */
            struct il_rulecache_v4 *r = &rc->v4[rc->nv4++];
            memcpy(&r->mask, mask + 12, 4);
            memcpy(&r->net, net.addr + 12, 4);
            r->limit = limit;
            r->allow = rule->allow != 0;
        } else {
            struct il_rulecache_v6 *r = &rc->v6[rc->nv6++];
            r->mask_hi = il_key_load64(mask);
            r->mask_lo = il_key_load64(mask + 8);
            r->net_hi = il_key_load64(net.addr);
            r->net_lo = il_key_load64(net.addr + 8);
            r->limit = limit;
            r->allow = rule->allow != 0;
        }
    }
    return true;
}

void il_rulecache_default_verdict(const struct il_policy *policy, struct il_verdict *verdict)
{
    verdict->limit = policy->max;
    verdict->allowed = false;
    verdict->rate = policy->rate;
    verdict->burst = policy->rate ? (policy->burst ? policy->burst : policy->rate) : 0;
}

void il_rulecache_verdict(const struct il_rulecache *rc, const struct il_key *peer,
                          unsigned v4_prefix, unsigned v6_prefix, struct il_verdict *verdict)
{
    uint32_t limit;
    bool allowed;
    verdict->key = *peer;
    if (il_key_is_v4(peer)) {
        uint32_t addr_n;
        memcpy(&addr_n, peer->addr + 12, 4);
        allowed = il_rulecache_judge_v4(rc, addr_n, &limit);
    } else {
        allowed = il_rulecache_judge_v6(rc, il_key_load64(peer->addr),
                                        il_key_load64(peer->addr + 8), &limit);
    }
    verdict->limit = limit;
    if (allowed) { /* counted under its exact address, with no rate */
        verdict->allowed = true;
        verdict->rate = 0;
        verdict->burst = 0;
        return;
    }
    il_key_mask(&verdict->key, v4_prefix, v6_prefix);
}
