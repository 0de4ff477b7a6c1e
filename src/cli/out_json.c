/* iplimit stat --json: {"services": [ {...}, ... ]}, one object per service. */
#include "cli.h"

static void json_string(FILE *out, const char *s)
{
    cli_put_string(out, s, CLI_ESC_JSON);
}

static void json_u64(FILE *out, const char *name, uint64_t value, const char *after)
{
    fprintf(out, "\"%s\":%llu%s", name, (unsigned long long)value, after);
}

static void json_pids(FILE *out, const struct cli_service *service)
{
    fprintf(out, "\"pids\":[");
    for (size_t i = 0; service && i < service->nprocs; i++)
        fprintf(out, "%s%d", i ? "," : "", (int)service->procs[i].pid);
    fprintf(out, "],");
}

static void json_rules(FILE *out, const struct il_policy *p, bool allow)
{
    bool any = false;
    fprintf(out, "\"%s\":[", allow ? "allow" : "limits");
    for (uint32_t i = 0; i < p->nrules && i < IL_MAX_RULES; i++) {
        const struct il_rule *rule = &p->rules[i];
        if (!rule->allow != !allow)
            continue;
        char net[IL_KEY_STRLEN];
        il_key_format(&rule->net, net);
        fprintf(out, "%s", any ? "," : "");
        if (allow) {
            json_string(out, net);
        } else {
            fprintf(out, "{\"cidr\":");
            json_string(out, net);
            fprintf(out, ",\"limit\":%u}", rule->limit);
        }
        any = true;
    }
    fprintf(out, "]");
}

/* Every setting of the table in policy_view.c, then the rules. */
static void json_policy(FILE *out, const struct cli_snapshot *s)
{
    fprintf(out, "\"policy\":");
    if (!s->policy_ok) {
        fprintf(out, "null,");
        return;
    }
    static struct cli_setting set[CLI_MAX_SETTINGS];
    size_t n = cli_policy_settings(&s->policy, set);
    fputc('{', out);
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "\"%s\":", set[i].name);
        if (set[i].kind == CLI_BOOL)
            fprintf(out, "%s,", set[i].number ? "true" : "false");
        else if (set[i].kind == CLI_UINT)
            fprintf(out, "%llu,", (unsigned long long)set[i].number);
        else
            json_string(out, set[i].word), fputc(',', out);
    }
    json_rules(out, &s->policy, true);
    fputc(',', out);
    json_rules(out, &s->policy, false);
    fprintf(out, "},");
}

static void json_stats(FILE *out, const struct cli_snapshot *s)
{
    fprintf(out, "\"stats\":{");
    json_u64(out, "accepted", s->stats.accepted, ",");
    json_u64(out, "rejected", s->stats.rejected, ",");
    json_u64(out, "dry_run_rejected", s->stats.dry_rejected, ",");
    json_u64(out, "untracked", s->stats.untracked, ",");
    json_u64(out, "released", s->stats.released, ",");
    json_u64(out, "rejected_limit", s->stats.rejected - s->stats.rejected_rate, ",");
    json_u64(out, "rejected_rate", s->stats.rejected_rate, ",");
    json_u64(out, "dry_run_rejected_limit", s->stats.dry_rejected - s->stats.dry_rejected_rate,
             ",");
    json_u64(out, "dry_run_rejected_rate", s->stats.dry_rejected_rate, ",");
    json_u64(out, "proxy_malformed", s->stats.proxy_malformed, ",");
    json_u64(out, "proxy_rejected_at_read", s->stats.proxy_rejected, "},");
}

static void json_reconcile(FILE *out, const struct cli_snapshot *s)
{
    fprintf(out, "\"reconcile\":{\"state\":");
    json_string(out, cli_reconcile_state(s));
    fputc(',', out);
    json_u64(out, "runs", s->rec.runs, ",");
    json_u64(out, "failed", s->rec.failed, ",");
    fprintf(out, "\"last_error\":%d,", (int)s->rec.last_error);
    fprintf(out, "\"owner\":%d,", (int)s->rec.owner);
    json_u64(out, "last_run", s->rec.last_run, ",");
    json_u64(out, "last_usec", s->rec.last_usec, ",");
    json_u64(out, "last_sockets", s->rec.last_sockets, ",");
    json_u64(out, "last_uncounted", s->rec.last_uncounted, ",");
    json_u64(out, "slots_freed", s->rec.slots_freed, ",");
    json_u64(out, "keys_corrected", s->rec.keys_corrected, ",");
    json_u64(out, "counts_removed", s->rec.counts_removed, ",");
    json_u64(out, "lookups", s->rec.lookups, ",");
    json_u64(out, "dumps", s->rec.dumps, "},");
}

static void json_keys(FILE *out, const struct cli_snapshot *s, size_t top)
{
    size_t shown = top && top < s->nkeys ? top : s->nkeys;
    fprintf(out, "\"keys\":[");
    for (size_t i = 0; i < shown; i++) {
        const struct cli_key *k = &s->keys[i];
        fprintf(out, "%s{\"key\":", i ? "," : "");
        json_string(out, k->name);
        fprintf(out, ",");
        json_u64(out, "open", k->open, ",");
        json_u64(out, "limit", k->limit, ",");
        json_u64(out, "rejected", k->rejected, ",");
        json_u64(out, "last_reject", k->last_reject, ",");
        fprintf(out, "\"last_reason\":%s,",
                k->last_reason == IL_REASON_RATE    ? "\"rate\""
                : k->last_reason == IL_REASON_LIMIT ? "\"limit\""
                                                    : "null");
        fprintf(out, "\"via\":");
        if (k->via[0])
            json_string(out, k->via);
        else
            fprintf(out, "null");
        fprintf(out, "}");
    }
    fprintf(out, "]");
}

static void json_service(FILE *out, const struct cli_snapshot *s, size_t top)
{
    fprintf(out, "{\"service\":");
    json_string(out, s->name);
    fprintf(out, ",\"pid\":%d,", s->service ? (int)s->service->main_pid : 0);
    json_u64(out, "segment_inode", s->service ? s->service->inode : 0, ",");
    json_u64(out, "uid", s->uid, ",");
    fprintf(out, "\"creator_pid\":%d,", (int)s->creator_pid);
    json_pids(out, s->service);
    json_u64(out, "created_at", s->created_at, ",");
    fprintf(out, "\"config_error\":");
    if (s->config_error[0])
        json_string(out, s->config_error);
    else
        fprintf(out, "null");
    fprintf(out, ",\"state\":");
    json_string(out, cli_limiter_state(s));
    fprintf(out, ",");
    json_u64(out, "policy_generation", s->generation, ",");
    json_u64(out, "policy_loaded_at", s->loaded_at, ",");
    json_policy(out, s);
    json_stats(out, s);
    json_reconcile(out, s);
    json_u64(out, "open_connections", s->open_total, ",");
    json_u64(out, "table_entries", s->live_keys, ",");
    json_u64(out, "table_capacity", s->capacity, ",");
    json_u64(out, "keys_total", s->nkeys, ",");
    json_keys(out, s, top);
    fprintf(out, "}");
}

void cli_out_json(FILE *out, const struct cli_snapshot *snaps, size_t n, size_t top)
{
    fprintf(out, "{\"services\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputc(',', out);
        json_service(out, &snaps[i], top);
    }
    fprintf(out, "]}\n");
}
