/* iplimit stat, for people: a header per service and its busiest keys.
 * Every string that comes from the segment is printed escaped: the
 * segment may be anyone's (cli.h, cli_put_string). */
#include <string.h>

#include "cli.h"

static void print_pids(FILE *out, const struct cli_service *service)
{
    for (size_t i = 0; service && i < service->nprocs; i++)
        fprintf(out, "%s%d", i ? " " : "", (int)service->procs[i].pid);
}

static void print_limit(FILE *out, uint32_t limit)
{
    if (limit == IL_UNLIMITED)
        fprintf(out, " %8s", "-");
    else
        fprintf(out, " %8u", limit);
}

static void print_state(FILE *out, const struct cli_snapshot *s)
{
    if (!s->policy_ok) {
        fprintf(out, "  policy: unreadable (being replaced); try again\n");
    } else if (!s->policy.enabled) {
        fprintf(out, "  LIMITER DISABLED%s: every connection passes through uncounted\n",
                s->config_error[0] ? " by a configuration error" : "");
    } else if (s->policy.dry_run) {
        fprintf(out, "  policy: DRY RUN, nothing is rejected; REJECTED counts would-be "
                     "rejections\n");
    }
    if (s->config_error[0]) {
        fprintf(out, "  %s config error: ",
                s->policy_ok && !s->policy.enabled ? "startup" : "startup (since replaced)");
        cli_put_string(out, s->config_error, CLI_ESC_TEXT);
        fputc('\n', out);
    }
}

static void print_rules(FILE *out, const struct il_policy *p, bool allow)
{
    bool any = false;
    fprintf(out, "  %s:", allow ? "allow" : "limits");
    for (uint32_t i = 0; i < p->nrules && i < IL_MAX_RULES; i++) {
        const struct il_rule *rule = &p->rules[i];
        if (!rule->allow != !allow)
            continue;
        char net[IL_KEY_STRLEN];
        il_key_format(&rule->net, net);
        fprintf(out, "%s %s", any ? "," : "", net);
        if (!allow)
            fprintf(out, "=%u", rule->limit);
        any = true;
    }
    fprintf(out, "%s\n", any ? "" : " none");
}

/* "  policy: max 5, ports all, action rst, ..." from the settings table. */
static void print_policy(FILE *out, const struct cli_snapshot *s)
{
    if (!s->policy_ok)
        return;
    static struct cli_setting set[CLI_MAX_SETTINGS];
    size_t n = cli_policy_settings(&s->policy, set);
    fprintf(out, "  policy:");
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "%s %s ", i ? "," : "", set[i].name);
        if (set[i].kind == CLI_BOOL)
            fprintf(out, "%s", set[i].number ? "yes" : "no");
        else if (set[i].kind == CLI_UINT)
            fprintf(out, "%llu", (unsigned long long)set[i].number);
        else
            cli_put_string(out, set[i].word, CLI_ESC_TEXT);
    }
    fputc('\n', out);
    print_rules(out, &s->policy, true);
    print_rules(out, &s->policy, false);
}

static void print_reconcile(FILE *out, const struct cli_snapshot *s)
{
    char last[32];
    const char *state = cli_reconcile_state(s);
    fprintf(out, "  reconcile: %s", state);
    if (s->rec.owner)
        fprintf(out, " of pid %d", (int)s->rec.owner);
    fprintf(out, "; %llu runs, %llu abandoned", (unsigned long long)s->rec.runs,
            (unsigned long long)s->rec.failed);
    if (s->rec.last_error > 0 && s->rec.last_error < 4096)
        fprintf(out, " (last: %s)", strerror(s->rec.last_error));
    if (s->rec.runs)
        fprintf(out, "; last %s in %llu us: %llu sockets held on policed ports, %llu of them "
                     "uncounted",
                cli_time(s->rec.last_run, last, sizeof last),
                (unsigned long long)s->rec.last_usec, (unsigned long long)s->rec.last_sockets,
                (unsigned long long)s->rec.last_uncounted);
    fprintf(out, "; in all %llu slots freed, %llu keys corrected\n",
            (unsigned long long)s->rec.slots_freed, (unsigned long long)s->rec.keys_corrected);
}

static void print_service(FILE *out, const struct cli_snapshot *s, size_t top)
{
    char created[32], loaded[32];
    fprintf(out, "service ");
    cli_put_string(out, s->name[0] ? s->name : "?", CLI_ESC_TEXT);
    fprintf(out, " pid %d (pids ", s->service ? (int)s->service->main_pid : 0);
    print_pids(out, s->service);
    fprintf(out, ") user %u since %s\n", (unsigned)s->uid,
            cli_time(s->created_at, created, sizeof created));
    fprintf(out, "  state: %s; policy generation %llu, loaded %s\n", cli_limiter_state(s),
            (unsigned long long)s->generation, cli_time(s->loaded_at, loaded, sizeof loaded));
    print_state(out, s);
    print_policy(out, s);
    fprintf(out,
            "  connections: %llu open, %llu accepted, %llu rejected, %llu would-be rejected "
            "(dry run), %llu untracked, %llu released\n",
            (unsigned long long)s->open_total, (unsigned long long)s->stats.accepted,
            (unsigned long long)s->stats.rejected, (unsigned long long)s->stats.dry_rejected,
            (unsigned long long)s->stats.untracked, (unsigned long long)s->stats.released);
    fprintf(out, "  rejected by reason: %llu over the limit, %llu over the rate",
            (unsigned long long)(s->stats.rejected - s->stats.rejected_rate),
            (unsigned long long)s->stats.rejected_rate);
    if (s->stats.dry_rejected)
        fprintf(out, "; would-be: %llu over the limit, %llu over the rate",
                (unsigned long long)(s->stats.dry_rejected - s->stats.dry_rejected_rate),
                (unsigned long long)s->stats.dry_rejected_rate);
    fprintf(out, "\n");
    fprintf(out, "  table: %u of %u keys in use\n", s->live_keys, s->capacity);
    if (s->policy_ok && s->policy.nproxy)
        fprintf(out, "  PROXY headers: %llu malformed, %llu clients rejected at their first read\n",
                (unsigned long long)s->stats.proxy_malformed,
                (unsigned long long)s->stats.proxy_rejected);
    print_reconcile(out, s);
    fprintf(out, "  %-43s %8s %8s %8s %6s\n", "KEY", "OPEN", "LIMIT", "REJECTED", "LAST");
    size_t shown = top && top < s->nkeys ? top : s->nkeys;
    for (size_t i = 0; i < shown; i++) {
        const struct cli_key *k = &s->keys[i];
        char name[2 * IL_KEY_STRLEN + 8];
        snprintf(name, sizeof name, "%s%s%s", k->name, k->via[0] ? " via " : "", k->via);
        fprintf(out, "  %-43s %8u", name, k->open);
        print_limit(out, k->limit);
        fprintf(out, " %8llu %6s\n", (unsigned long long)k->rejected,
                k->last_reason == IL_REASON_RATE    ? "rate"
                : k->last_reason == IL_REASON_LIMIT ? "limit"
                                                    : "-");
    }
    if (shown < s->nkeys)
        fprintf(out, "  (%zu more keys)\n", s->nkeys - shown);
}

void cli_out_text(FILE *out, const struct cli_snapshot *snaps, size_t n, size_t top)
{
    if (n == 0)
        fprintf(out, "no running service uses iplimit\n");
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputc('\n', out);
        print_service(out, &snaps[i], top);
    }
}
