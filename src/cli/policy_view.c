/* The policy in force as iplimit stat shows it, in every format. Each
 * setting is one line of the table below; text, JSON and Prometheus
 * print whatever it lists, so a new setting is added here only. */
#include <string.h>

#include "cli.h"

static const char *log_word(uint8_t target)
{
    return target == IL_LOG_STDERR ? "stderr" : target == IL_LOG_NONE ? "none" : "syslog";
}

/* Each filler writes one setting; set is zeroed with its name and kind. */
typedef void (*fill_fn)(const struct il_policy *p, struct cli_setting *set);

#define FILL(fn, body)                                                                             \
    static void fn(const struct il_policy *p, struct cli_setting *set)                            \
    {                                                                                              \
        body;                                                                                      \
    }
FILL(f_enabled, set->number = p->enabled)
FILL(f_dry_run, set->number = p->dry_run)
FILL(f_max, set->number = p->max)
FILL(f_ports, cli_format_ports(p, set->word, sizeof set->word))
FILL(f_action, snprintf(set->word, sizeof set->word, "%s",
                        p->action == IL_ACTION_CLOSE ? "close" : "rst"))
FILL(f_blocking, snprintf(set->word, sizeof set->word, "%s",
                          p->blocking == IL_BLOCKING_WAIT ? "wait" : "eagain"))
FILL(f_v4_prefix, set->number = p->v4_prefix)
FILL(f_v6_prefix, set->number = p->v6_prefix)
FILL(f_log, snprintf(set->word, sizeof set->word, "%s", log_word(p->log_target)))
FILL(f_log_interval, set->number = p->log_interval)
FILL(f_rec_interval, set->number = p->reconcile_interval)
FILL(f_rec_thread, set->number = p->reconcile_thread)
FILL(f_rate, set->number = p->rate)
FILL(f_burst, set->number = p->rate ? (p->burst ? p->burst : p->rate) : 0)

static const struct {
    const char *name;
    enum cli_kind kind;
    fill_fn fill;
} table[] = {
    {"enabled", CLI_BOOL, f_enabled},
    {"dry_run", CLI_BOOL, f_dry_run},
    {"max", CLI_UINT, f_max},
    {"rate", CLI_UINT, f_rate},
    {"burst", CLI_UINT, f_burst},
    {"ports", CLI_WORD, f_ports},
    {"action", CLI_WORD, f_action},
    {"blocking", CLI_WORD, f_blocking},
    {"ipv4_prefix", CLI_UINT, f_v4_prefix},
    {"ipv6_prefix", CLI_UINT, f_v6_prefix},
    {"log", CLI_WORD, f_log},
    {"log_interval", CLI_UINT, f_log_interval},
    {"reconcile_interval", CLI_UINT, f_rec_interval},
    {"reconcile_thread", CLI_BOOL, f_rec_thread},
};
#define NTABLE (sizeof table / sizeof table[0])
_Static_assert(NTABLE <= CLI_MAX_SETTINGS, "raise CLI_MAX_SETTINGS");

size_t cli_policy_settings(const struct il_policy *policy, struct cli_setting *out)
{
    for (size_t i = 0; i < NTABLE; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].name = table[i].name;
        out[i].kind = table[i].kind;
        table[i].fill(policy, &out[i]);
    }
    return NTABLE;
}

const char *cli_limiter_state(const struct cli_snapshot *s)
{
    if (!s->policy_ok)
        return "unknown";
    if (!s->policy.enabled)
        return s->config_error[0] ? "disabled: config error" : "disabled";
    return s->policy.dry_run ? "dry run" : "enabled";
}

const char *cli_reconcile_state(const struct cli_snapshot *s)
{
    if (!s->policy_ok)
        return "unknown";
    if (!s->policy.reconcile_interval)
        return "off";
    if (s->rec.owner)
        return "thread";
    /* Nothing has run and no thread was started: the first accept starts
     * them (reconciler.h), whatever the policy says. */
    if (!s->rec.runs && !s->rec.failed)
        return "waiting for the first accept";
    if (!s->policy.reconcile_thread)
        return "inline";
    return "thread stopped, restarts at the next accept";
}
