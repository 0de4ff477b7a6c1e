/* Policy: defaults, rule ordering and the per-peer decision. */
#include "policy.h"

#include <stdlib.h>
#include <string.h>

void il_policy_defaults(struct il_policy *policy)
{
    memset(policy, 0, sizeof *policy);
    policy->enabled = 1;
    policy->action = IL_ACTION_RST;
    policy->blocking = IL_BLOCKING_EAGAIN;
    policy->log_target = IL_LOG_SYSLOG;
    policy->v4_prefix = 32;
    policy->v6_prefix = 64;
    policy->all_ports = 1;
    policy->max = IL_DEFAULT_MAX;
    policy->log_interval = IL_DEFAULT_LOG_INTERVAL;
    policy->reconcile_interval = IL_DEFAULT_RECONCILE_INTERVAL;
    policy->reconcile_thread = 1;
}

bool il_policy_add_rule(struct il_policy *policy, const struct il_key *net, bool allow,
                        uint32_t limit)
{
    if (policy->nrules >= IL_MAX_RULES)
        return false;
    struct il_rule *rule = &policy->rules[policy->nrules++];
    memset(rule, 0, sizeof *rule);
    rule->net = *net;
    rule->allow = allow;
    rule->limit = allow ? IL_UNLIMITED : limit;
    return true;
}

bool il_policy_add_rate(struct il_policy *policy, const struct il_key *net, uint32_t rate,
                        uint32_t burst)
{
    if (policy->nrates >= IL_MAX_RULES)
        return false;
    struct il_rate_rule *rule = &policy->rates[policy->nrates++];
    memset(rule, 0, sizeof *rule);
    rule->net = *net;
    rule->rate = rate;
    rule->burst = burst;
    return true;
}

static uint32_t fill_ms(uint32_t rate, uint32_t burst)
{
    if (!rate)
        return 0;
    uint64_t ms = ((uint64_t)(burst ? burst : rate) * 1000 + rate - 1) / rate;
    return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

uint32_t il_policy_rate_hold_ms(const struct il_policy *policy)
{
    uint32_t hold = fill_ms(policy->rate, policy->burst);
    for (uint32_t i = 0; i < policy->nrates && i < IL_MAX_RULES; i++) {
        uint32_t ms = fill_ms(policy->rates[i].rate, policy->rates[i].burst);
        if (ms > hold)
            hold = ms;
    }
    return hold;
}

static int rate_order(const void *pa, const void *pb)
{
    const struct il_rate_rule *a = pa, *b = pb;
    return (int)b->net.plen - (int)a->net.plen;
}

static int rule_order(const void *pa, const void *pb)
{
    const struct il_rule *a = pa, *b = pb;
    if (a->allow != b->allow)
        return a->allow ? -1 : 1;
    return (int)b->net.plen - (int)a->net.plen;
}

void il_policy_finish(struct il_policy *policy)
{
    qsort(policy->rules, policy->nrules, sizeof policy->rules[0], rule_order);
    qsort(policy->rates, policy->nrates, sizeof policy->rates[0], rate_order);
}

bool il_policy_add_proxy(struct il_policy *policy, const struct il_key *net)
{
    if (policy->nproxy >= IL_MAX_PROXY_FROM)
        return false;
    policy->proxy_from[policy->nproxy++] = *net;
    return true;
}

bool il_policy_is_proxy(const struct il_policy *policy, const struct il_key *peer)
{
    for (uint32_t i = 0; i < policy->nproxy && i < IL_MAX_PROXY_FROM; i++)
        if (il_key_contains(&policy->proxy_from[i], peer))
            return true;
    return false;
}

bool il_policy_polices_port(const struct il_policy *policy, uint16_t port)
{
    return policy->all_ports || (policy->ports[port / 64] >> (port % 64) & 1);
}

/* The rate is decided apart from the limit: the longest IPLIMIT_RATES
 * network that contains the peer, else IPLIMIT_RATE. */
static void judge_rate(const struct il_policy *policy, const struct il_key *peer,
                       struct il_verdict *verdict)
{
    uint32_t rate = policy->rate, burst = policy->burst;
    for (uint32_t i = 0; i < policy->nrates && i < IL_MAX_RULES; i++) {
        if (il_key_contains(&policy->rates[i].net, peer)) {
            rate = policy->rates[i].rate;
            burst = policy->rates[i].burst;
            break;
        }
    }
    verdict->rate = rate;
    verdict->burst = rate ? (burst ? burst : rate) : 0;
}

/* The allowlist wins over any limit and any rate, whatever the prefix
 * lengths: an operator who lists a load balancer never wants it cut.
 * Allowed peers are counted under their exact address so they never use
 * up the budget of the other hosts that share their masked key. */
void il_policy_judge(const struct il_policy *policy, const struct il_key *peer,
                     struct il_verdict *verdict)
{
    verdict->key = *peer;
    verdict->limit = policy->max;
    verdict->allowed = false;
    verdict->rate = 0;
    verdict->burst = 0;
    for (uint32_t i = 0; i < policy->nrules && i < IL_MAX_RULES; i++) {
        const struct il_rule *rule = &policy->rules[i];
        if (!il_key_contains(&rule->net, peer))
            continue;
        if (rule->allow) {
            verdict->allowed = true;
            verdict->limit = IL_UNLIMITED;
            return;
        }
        verdict->limit = rule->limit;
        break;
    }
    judge_rate(policy, peer, verdict);
    il_key_mask(&verdict->key, policy->v4_prefix, policy->v6_prefix);
}
