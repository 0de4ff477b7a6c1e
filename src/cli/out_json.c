/* iplimit stat --json: {"services": [ {...}, ... ]}, one object per service. */
#include "cli.h"

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void json_u64(FILE *out, const char *name, uint64_t value, const char *after)
{
    fprintf(out, "\"%s\":%llu%s", name, (unsigned long long)value, after);
}

static void json_pids(FILE *out, const struct cli_service *service)
{
    fprintf(out, "\"pids\":[");
    for (size_t i = 0; i < service->nprocs; i++)
        fprintf(out, "%s%d", i ? "," : "", (int)service->procs[i].pid);
    fprintf(out, "],");
}

static void json_policy(FILE *out, const struct cli_snapshot *s)
{
    fprintf(out, "\"policy\":");
    if (!s->policy_ok) {
        fprintf(out, "null,");
        return;
    }
    const struct il_policy *p = &s->policy;
    char ports[1024];
    cli_format_ports(p, ports, sizeof ports);
    fprintf(out, "{\"enabled\":%s,\"dry_run\":%s,", p->enabled ? "true" : "false",
            p->dry_run ? "true" : "false");
    json_u64(out, "max", p->max, ",");
    json_u64(out, "ipv4_prefix", p->v4_prefix, ",");
    json_u64(out, "ipv6_prefix", p->v6_prefix, ",");
    json_u64(out, "reconcile_interval", p->reconcile_interval, ",");
    fprintf(out, "\"reconcile_thread\":%s,", p->reconcile_thread ? "true" : "false");
    fprintf(out, "\"ports\":");
    json_string(out, ports);
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
    json_u64(out, "proxy_malformed", s->stats.proxy_malformed, ",");
    json_u64(out, "proxy_rejected_at_read", s->stats.proxy_rejected, "},");
}

static void json_reconcile(FILE *out, const struct cli_snapshot *s)
{
    fprintf(out, "\"reconcile\":{");
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
    json_u64(out, "counts_removed", s->rec.counts_removed, "},");
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
    fprintf(out, "{");
    json_u64(out, "creator_pid", (uint64_t)s->creator_pid, ",");
    json_pids(out, s->service);
    json_u64(out, "created_at", s->created_at, ",");
    fprintf(out, "\"config_error\":");
    if (s->config_error[0])
        json_string(out, s->config_error);
    else
        fprintf(out, "null");
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
