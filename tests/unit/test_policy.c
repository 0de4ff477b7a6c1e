/* Unit tests for the policy: defaults, rule order, judging, ports
 * (src/lib/policy.c). */
#include <stdio.h>
#include <string.h>

#include "../../src/lib/policy.h"
#include "tap.h"
#include "unit_segment.h"

static struct il_policy policy;


static void add(const char *net, bool allow, uint32_t limit)
{
    struct il_key key = unit_cidr(net);
    if (!il_policy_add_rule(&policy, &key, allow, limit))
        tap_diag("test setup: rule %s not added", net);
}

static void check_judge(const char *peer_text, uint32_t want_limit, bool want_allowed,
                        const char *want_key)
{
    struct il_key peer = unit_cidr(peer_text);
    struct il_verdict v;
    memset(&v, 0xaa, sizeof v);
    il_policy_judge(&policy, &peer, &v);
    char name[160], key[IL_KEY_STRLEN];
    snprintf(name, sizeof name, "%s: limit %u", peer_text, want_limit);
    IS_U(v.limit, want_limit, name);
    snprintf(name, sizeof name, "%s: %sallowed", peer_text, want_allowed ? "" : "not ");
    tap_ok(v.allowed == want_allowed, "%s", name);
    snprintf(name, sizeof name, "%s: counted under %s", peer_text, want_key);
    IS_S(il_key_format(&v.key, key), want_key, name);
}

static void test_defaults(void)
{
    memset(&policy, 0x5a, sizeof policy);
    il_policy_defaults(&policy);
    IS_U(policy.enabled, 1, "default: enabled");
    IS_U(policy.dry_run, 0, "default: not dry run");
    IS_U(policy.action, IL_ACTION_RST, "default: action rst");
    IS_U(policy.blocking, IL_BLOCKING_EAGAIN, "default: blocking eagain");
    IS_U(policy.log_target, IL_LOG_SYSLOG, "default: log to syslog");
    IS_U(policy.v4_prefix, 32, "default: ipv4 prefix 32");
    IS_U(policy.v6_prefix, 64, "default: ipv6 prefix 64");
    IS_U(policy.all_ports, 1, "default: all ports");
    IS_U(policy.max, 1024, "default: max 1024");
    IS_U(policy.log_interval, 60, "default: log interval 60");
    IS_U(policy.nrules, 0, "default: no rules");
    tap_ok(il_policy_polices_port(&policy, 1) && il_policy_polices_port(&policy, 65535) &&
               il_policy_polices_port(&policy, 0),
           "default: every port policed");
    check_judge("10.1.2.3", 1024, false, "10.1.2.3");
    check_judge("2001:db8:1:2:3:4:5:6", 1024, false, "2001:db8:1:2::/64");
}

static void test_rules(void)
{
    il_policy_defaults(&policy);
    policy.max = 10;
    policy.v4_prefix = 24;
    add("10.0.0.0/8", false, 100);
    add("10.1.0.0/16", false, 50);
    add("10.1.2.0/24", false, 5);
    add("10.1.2.7", true, 0);
    add("10.9.0.0/16", true, 0);
    add("2001:db8::/32", false, 7);
    il_policy_finish(&policy);
    IS_U(policy.nrules, 6, "six rules");
    tap_ok(policy.rules[0].allow && policy.rules[1].allow, "allow rules sorted first");
    IS_U(policy.rules[0].net.plen, 128, "longest allow first");
    IS_U(policy.rules[2].net.plen, 120, "then the longest limit (/24)");
    IS_U(policy.rules[0].limit, IL_UNLIMITED, "an allow rule has no limit");

    check_judge("10.1.2.3", 5, false, "10.1.2.0/24");
    check_judge("10.1.3.3", 50, false, "10.1.3.0/24");
    check_judge("10.2.3.4", 100, false, "10.2.3.0/24");
    check_judge("11.0.0.1", 10, false, "11.0.0.0/24");
    check_judge("10.1.2.7", IL_UNLIMITED, true, "10.1.2.7");
    check_judge("10.9.8.7", IL_UNLIMITED, true, "10.9.8.7");
    check_judge("::ffff:10.1.2.3", 5, false, "10.1.2.0/24");
    check_judge("2001:db8:5::1", 7, false, "2001:db8:5::/64");
    check_judge("2001:db9::1", 10, false, "2001:db9::/64");
}

/* An allow rule shorter than a limit rule still wins. */
static void test_allow_beats_longer_limit(void)
{
    il_policy_defaults(&policy);
    add("192.168.1.0/24", false, 3);
    add("192.168.0.0/16", true, 0);
    add("192.168.1.9", false, 1);
    il_policy_finish(&policy);
    check_judge("192.168.1.9", IL_UNLIMITED, true, "192.168.1.9");
    check_judge("192.168.1.10", IL_UNLIMITED, true, "192.168.1.10");
    check_judge("192.169.0.1", 1024, false, "192.169.0.1");
}

/* IPv6 networks never take in IPv4 peers, not even ::/0 (issue 11). */
static void test_families_apart(void)
{
    il_policy_defaults(&policy);
    policy.max = 4;
    add("::/0", true, 0);
    add("::/8", false, 1);
    add("::ffff:10.0.0.0/104", false, 7);
    il_policy_finish(&policy);
    check_judge("127.0.0.2", 4, false, "127.0.0.2");
    check_judge("::ffff:127.0.0.2", 4, false, "127.0.0.2");
    check_judge("10.1.2.3", 7, false, "10.1.2.3");
    check_judge("2001:db8::1", IL_UNLIMITED, true, "2001:db8::1");
    check_judge("::1", IL_UNLIMITED, true, "::1");

    il_policy_defaults(&policy);
    add("::/0", false, 1);
    il_policy_finish(&policy);
    check_judge("192.0.2.1", 1024, false, "192.0.2.1");
    check_judge("2001:db8::1", 1, false, "2001:db8::/64");
}

static void test_limit_zero_and_full(void)
{
    il_policy_defaults(&policy);
    policy.max = 0;
    add("10.0.0.0/8", false, 0);
    il_policy_finish(&policy);
    check_judge("10.0.0.1", IL_UNLIMITED, false, "10.0.0.1");
    check_judge("11.0.0.1", IL_UNLIMITED, false, "11.0.0.1");

    il_policy_defaults(&policy);
    struct il_key net = unit_cidr("10.0.0.0/8");
    unsigned added = 0;
    for (unsigned i = 0; i < IL_MAX_RULES + 5; i++)
        added += il_policy_add_rule(&policy, &net, false, i);
    IS_U(added, IL_MAX_RULES, "rule table holds exactly IL_MAX_RULES rules");
    IS_U(policy.nrules, IL_MAX_RULES, "nrules stops at IL_MAX_RULES");
}

static void test_ports(void)
{
    il_policy_defaults(&policy);
    policy.all_ports = 0;
    policy.ports[5060 / 64] |= 1ULL << (5060 % 64);
    policy.ports[0] |= 1ULL;
    policy.ports[65535 / 64] |= 1ULL << 63;
    tap_ok(il_policy_polices_port(&policy, 5060), "port 5060 in the bitmap is policed");
    tap_ok(!il_policy_polices_port(&policy, 5061), "port 5061 not in the bitmap is not");
    tap_ok(!il_policy_polices_port(&policy, 5059), "port 5059 not in the bitmap is not");
    tap_ok(il_policy_polices_port(&policy, 0), "bit 0 of the bitmap is port 0");
    tap_ok(il_policy_polices_port(&policy, 65535), "port 65535 policed");
    tap_ok(!il_policy_polices_port(&policy, 80), "port 80 not policed");
    policy.all_ports = 1;
    tap_ok(il_policy_polices_port(&policy, 80), "all_ports polices port 80 too");
}

int main(void)
{
    test_defaults();
    test_rules();
    test_allow_beats_longer_limit();
    test_families_apart();
    test_limit_zero_and_full();
    test_ports();
    return tap_done();
}
