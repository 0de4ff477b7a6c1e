/* What a reload changes, setting by setting, and which changes are risky
 * enough to need --force: losing an allowlist entry (a load balancer cut
 * off), switching the limiter to a dry run (nothing refused any more), and
 * turning logging off (refusals no longer seen). */
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

#include "cli.h"

static void line(FILE *out, struct cli_diff *d, const char *risk, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void line(FILE *out, struct cli_diff *d, const char *risk, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("  ", out);
    vfprintf(out, fmt, ap);
    va_end(ap);
    if (risk)
        fprintf(out, "   [needs --force: %s]", risk);
    fputc('\n', out);
    d->changes++;
    d->risky += risk != NULL;
}

static const char *limit_text(uint32_t limit, char *buf, size_t size)
{
    if (limit == IL_UNLIMITED)
        snprintf(buf, size, "unlimited");
    else
        snprintf(buf, size, "%u", limit);
    return buf;
}

static const struct il_rule *find_rule(const struct il_policy *policy, const struct il_key *net,
                                       bool allow)
{
    for (uint32_t i = 0; i < policy->nrules && i < IL_MAX_RULES; i++)
        if (policy->rules[i].allow == allow && il_key_equal(&policy->rules[i].net, net))
            return &policy->rules[i];
    return NULL;
}

static void diff_rules(FILE *out, const struct il_policy *old, const struct il_policy *new,
                       struct cli_diff *d)
{
    char net[IL_KEY_STRLEN], a[16], b[16];
    for (uint32_t i = 0; i < old->nrules && i < IL_MAX_RULES; i++) {
        const struct il_rule *r = &old->rules[i];
        const struct il_rule *now = find_rule(new, &r->net, r->allow);
        il_key_format(&r->net, net);
        if (r->allow && !now)
            line(out, d, "this source loses its exemption", "allow: - %s", net);
        else if (!r->allow && !now)
            line(out, d, NULL, "limits: - %s=%s", net, limit_text(r->limit, a, sizeof a));
        else if (!r->allow && now->limit != r->limit)
            line(out, d, NULL, "limits: %s: %s -> %s", net, limit_text(r->limit, a, sizeof a),
                 limit_text(now->limit, b, sizeof b));
    }
    for (uint32_t i = 0; i < new->nrules && i < IL_MAX_RULES; i++) {
        const struct il_rule *r = &new->rules[i];
        if (find_rule(old, &r->net, r->allow))
            continue;
        il_key_format(&r->net, net);
        if (r->allow)
            line(out, d, NULL, "allow: + %s", net);
        else
            line(out, d, NULL, "limits: + %s=%s", net, limit_text(r->limit, a, sizeof a));
    }
}

static bool has_rate(const struct il_policy *policy, const struct il_rate_rule *r)
{
    for (uint32_t i = 0; i < policy->nrates && i < IL_MAX_RULES; i++)
        if (il_key_equal(&policy->rates[i].net, &r->net) && policy->rates[i].rate == r->rate &&
            policy->rates[i].burst == r->burst)
            return true;
    return false;
}

/* Per-network rates: one line per rule gone or new (a changed rule is
 * both). */
static void diff_rates(FILE *out, const struct il_policy *old, const struct il_policy *new,
                       struct cli_diff *d)
{
    char net[IL_KEY_STRLEN];
    for (uint32_t i = 0; i < old->nrates && i < IL_MAX_RULES; i++)
        if (!has_rate(new, &old->rates[i]))
            line(out, d, NULL, "rates: - %s=%u/%u", il_key_format(&old->rates[i].net, net),
                 old->rates[i].rate, old->rates[i].burst);
    for (uint32_t i = 0; i < new->nrates && i < IL_MAX_RULES; i++)
        if (!has_rate(old, &new->rates[i]))
            line(out, d, NULL, "rates: + %s=%u/%u", il_key_format(&new->rates[i].net, net),
                 new->rates[i].rate, new->rates[i].burst);
}

static bool has_proxy(const struct il_policy *policy, const struct il_key *net)
{
    for (uint32_t i = 0; i < policy->nproxy && i < IL_MAX_PROXY_FROM; i++)
        if (il_key_equal(&policy->proxy_from[i], net))
            return true;
    return false;
}

/* Balancers whose PROXY headers are read: one that is dropped has its
 * clients counted under its own address again. */
static void diff_proxy(FILE *out, const struct il_policy *old, const struct il_policy *new,
                       struct cli_diff *d)
{
    char net[IL_KEY_STRLEN];
    for (uint32_t i = 0; i < old->nproxy && i < IL_MAX_PROXY_FROM; i++)
        if (!has_proxy(new, &old->proxy_from[i]))
            line(out, d, NULL, "proxy_from: - %s", il_key_format(&old->proxy_from[i], net));
    for (uint32_t i = 0; i < new->nproxy && i < IL_MAX_PROXY_FROM; i++)
        if (!has_proxy(old, &new->proxy_from[i]))
            line(out, d, NULL, "proxy_from: + %s", il_key_format(&new->proxy_from[i], net));
}

static const char *log_name(uint8_t target)
{
    return target == IL_LOG_STDERR ? "stderr" : target == IL_LOG_NONE ? "none" : "syslog";
}

static const char *yes_no(uint8_t value)
{
    return value ? "yes" : "no";
}

void cli_policy_diff(FILE *out, const struct il_policy *old, const struct il_policy *new,
                     struct cli_diff *d)
{
    char a[1024], b[1024];
    memset(d, 0, sizeof *d);
    if (old->enabled != new->enabled)
        line(out, d, new->enabled ? NULL : "the limiter stops limiting", "limiter: %s -> %s",
             old->enabled ? "enabled" : "disabled (configuration error)",
             new->enabled ? "enabled" : "disabled");
    if (old->max != new->max)
        line(out, d, NULL, "max: %s -> %s", limit_text(old->max, a, sizeof a),
             limit_text(new->max, b, sizeof b));
    diff_rules(out, old, new, d);
    if (old->rate != new->rate)
        line(out, d, NULL, "rate: %u -> %u", old->rate, new->rate);
    if (old->burst != new->burst)
        line(out, d, NULL, "burst: %u -> %u", old->burst, new->burst);
    diff_rates(out, old, new, d);
    diff_proxy(out, old, new, d);
    cli_format_ports(old, a, sizeof a);
    cli_format_ports(new, b, sizeof b);
    if (strcmp(a, b) != 0)
        line(out, d, NULL, "ports: %s -> %s", a, b);
    if (old->v4_prefix != new->v4_prefix)
        line(out, d, NULL, "ipv4_prefix: %u -> %u", old->v4_prefix, new->v4_prefix);
    if (old->v6_prefix != new->v6_prefix)
        line(out, d, NULL, "ipv6_prefix: %u -> %u", old->v6_prefix, new->v6_prefix);
    if (old->action != new->action)
        line(out, d, NULL, "action: %s -> %s", old->action == IL_ACTION_CLOSE ? "close" : "rst",
             new->action == IL_ACTION_CLOSE ? "close" : "rst");
    if (old->blocking != new->blocking)
        line(out, d, NULL, "blocking: %s -> %s",
             old->blocking == IL_BLOCKING_WAIT ? "wait" : "eagain",
             new->blocking == IL_BLOCKING_WAIT ? "wait" : "eagain");
    if (old->log_target != new->log_target)
        line(out, d,
             new->log_target == IL_LOG_NONE ? "refusals are no longer logged" : NULL,
             "log: %s -> %s", log_name(old->log_target), log_name(new->log_target));
    if (old->log_interval != new->log_interval)
        line(out, d, NULL, "log_interval: %u -> %u", old->log_interval, new->log_interval);
    if (old->dry_run != new->dry_run)
        line(out, d, new->dry_run ? "the limiter stops refusing connections" : NULL,
             "dry_run: %s -> %s", yes_no(old->dry_run), yes_no(new->dry_run));
    if (old->reconcile_interval != new->reconcile_interval)
        line(out, d, NULL, "reconcile_interval: %u -> %u", old->reconcile_interval,
             new->reconcile_interval);
    if (old->reconcile_thread != new->reconcile_thread)
        line(out, d, NULL, "reconcile_thread: %s -> %s", yes_no(old->reconcile_thread),
             yes_no(new->reconcile_thread));
}
