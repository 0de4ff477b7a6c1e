/* Rules that are valid but do not do what they look like they do: an IPv6
 * network that spans the IPv4-mapped range (::/0 matches no IPv4 peer),
 * a limit that an allowlist entry hides entirely, a network listed twice. */
#include <string.h>

#include "cli.h"

/* net is IPv6 and, but for the family rule, would take in IPv4 peers. */
static bool spans_v4(const struct il_key *net)
{
    if (il_key_is_v4(net) || net->plen > IL_V4_OFFSET)
        return false;
    struct il_key v4_all;
    il_key_parse_cidr(&v4_all, "::ffff:0:0/96");
    for (unsigned bit = 0; bit < net->plen; bit++) {
        unsigned byte = bit / 8, mask = 0x80u >> (bit % 8);
        if ((v4_all.addr[byte] & mask) != (net->addr[byte] & mask))
            return false;
    }
    return true;
}

static const char *kind(const struct il_rule *rule)
{
    return rule->allow ? "allow" : "limits";
}

unsigned cli_rule_warnings(const struct il_policy *policy)
{
    unsigned n = 0;
    char net[IL_KEY_STRLEN], other[IL_KEY_STRLEN];
    for (uint32_t i = 0; i < policy->nrules && i < IL_MAX_RULES; i++) {
        const struct il_rule *r = &policy->rules[i];
        il_key_format(&r->net, net);
        if (spans_v4(&r->net)) {
            cli_warn("%s %s matches IPv6 peers only, never an IPv4 one: name IPv4 peers with "
                     "IPv4 networks (0.0.0.0/0 is all of them, as is ::ffff:0:0/96)",
                     kind(r), net);
            n++;
        }
        for (uint32_t j = 0; j < i; j++) {
            const struct il_rule *o = &policy->rules[j];
            il_key_format(&o->net, other);
            if (o->allow == r->allow && il_key_equal(&o->net, &r->net)) {
                cli_warn("%s %s is listed twice%s", kind(r), net,
                         r->allow ? "" : ": only one of its limits applies");
                n++;
                break;
            }
            if (o->allow && !r->allow && il_key_contains(&o->net, &r->net)) {
                cli_warn("limits %s never applies: every peer in it is allowlisted by %s",
                         net, other);
                n++;
                break;
            }
        }
    }
    return n;
}
