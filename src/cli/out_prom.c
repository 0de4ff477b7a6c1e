/* iplimit stat --prometheus: the text exposition format. Every metric has
 * one HELP and TYPE and then its samples for every service, told apart by
 * the label service (IPLIMIT_SERVICE, else the program's name): it stays
 * the same across restarts, where a pid would not. Services that share a
 * name also get the label pid, so that no two series collide. */
#include <string.h>

#include <stdbool.h>

#include "cli.h"

struct service_metric {
    const char *name, *type, *help;
    uint64_t (*get)(const struct cli_snapshot *);
};

struct key_metric {
    const char *name, *type, *help;
    uint64_t (*get)(const struct cli_key *);
};

#define GETTER(fn, expr)                                                                           \
    static uint64_t fn(const struct cli_snapshot *s)                                               \
    {                                                                                              \
        return (expr);                                                                             \
    }
GETTER(processes, s->service ? s->service->nprocs : 0)
GETTER(entries, s->live_keys)
GETTER(capacity, s->capacity)
GETTER(open_total, s->open_total)
GETTER(accepted, s->stats.accepted)
GETTER(rejected, s->stats.rejected)
GETTER(dry_rejected, s->stats.dry_rejected)
GETTER(untracked, s->stats.untracked)
GETTER(released, s->stats.released)
GETTER(dry_run, s->policy_ok && s->policy.enabled && s->policy.dry_run)
GETTER(enabled, s->policy_ok && s->policy.enabled)
GETTER(config_error, s->config_error[0] != '\0' && s->policy_ok && !s->policy.enabled)
GETTER(generation, s->generation)
GETTER(loaded_at, s->loaded_at)
GETTER(created_at, s->created_at)
GETTER(rec_runs, s->rec.runs)
GETTER(rec_failed, s->rec.failed)
GETTER(rec_last_run, s->rec.last_run)
GETTER(rec_last_usec, s->rec.last_usec)
GETTER(rec_last_sockets, s->rec.last_sockets)
GETTER(rec_last_uncounted, s->rec.last_uncounted)
GETTER(rec_slots_freed, s->rec.slots_freed)
GETTER(rec_keys_corrected, s->rec.keys_corrected)
GETTER(rec_counts_removed, s->rec.counts_removed)

#define KEY_GETTER(fn, expr)                                                                       \
    static uint64_t fn(const struct cli_key *k)                                                    \
    {                                                                                              \
        return (expr);                                                                             \
    }
KEY_GETTER(key_open, k->open)
KEY_GETTER(key_limit, k->limit)
KEY_GETTER(key_rejected, k->rejected)
KEY_GETTER(key_last_reject, k->last_reject)

static const struct service_metric service_metrics[] = {
    {"iplimit_processes", "gauge", "Processes mapping the service's table.", processes},
    {"iplimit_table_entries", "gauge", "Keys with open connections.", entries},
    {"iplimit_table_capacity", "gauge", "Keys and connections the table can hold.", capacity},
    {"iplimit_open_connections", "gauge", "Open counted connections, all keys.", open_total},
    {"iplimit_accepted_total", "counter", "Connections accepted and counted.", accepted},
    {"iplimit_service_rejected_total", "counter", "Connections rejected over a limit.",
     rejected},
    {"iplimit_dry_run_rejected_total", "counter",
     "Connections a dry run let through that the limit would have rejected.", dry_rejected},
    {"iplimit_untracked_total", "counter", "Connections let through uncounted: table full.",
     untracked},
    {"iplimit_released_total", "counter", "Counted connections closed.", released},
    {"iplimit_policy_enabled", "gauge", "1 if the policy limits connections.", enabled},
    {"iplimit_dry_run", "gauge", "1 if the policy is a dry run.", dry_run},
    {"iplimit_policy_generation", "counter", "Policies published (1 at startup).", generation},
    {"iplimit_policy_loaded_timestamp_seconds", "gauge", "When the policy was published.",
     loaded_at},
    {"iplimit_start_time_seconds", "gauge", "When the service's table was created.", created_at},
    {"iplimit_reconcile_runs_total", "counter", "Reconciliations with the kernel completed.",
     rec_runs},
    {"iplimit_reconcile_failed_total", "counter", "Reconciliations abandoned.", rec_failed},
    {"iplimit_reconcile_last_run_timestamp_seconds", "gauge",
     "When the last reconciliation completed.", rec_last_run},
    {"iplimit_reconcile_last_duration_microseconds", "gauge",
     "How long the last reconciliation took.", rec_last_usec},
    {"iplimit_reconcile_sockets", "gauge",
     "Sockets held on the service's ports at the last reconciliation.", rec_last_sockets},
    {"iplimit_reconcile_uncounted", "gauge",
     "Of those, sockets the table did not count.", rec_last_uncounted},
    {"iplimit_reconcile_slots_freed_total", "counter",
     "Connection slots freed because the kernel no longer had the connection.",
     rec_slots_freed},
    {"iplimit_reconcile_keys_corrected_total", "counter", "Keys whose count was corrected.",
     rec_keys_corrected},
    {"iplimit_reconcile_counts_removed_total", "counter", "Counts taken off keys.",
     rec_counts_removed},
};

static const struct key_metric key_metrics[] = {
    {"iplimit_connections", "gauge", "Open connections per key.", key_open},
    {"iplimit_limit", "gauge", "Limit of the key's next connection (0: unlimited).", key_limit},
    {"iplimit_rejected_total", "counter",
     "Rejections per key (in a dry run: would-be rejections).", key_rejected},
    {"iplimit_last_reject_timestamp_seconds", "gauge", "When the key was last rejected.",
     key_last_reject},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void head(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The labels that tell service i apart: service, and pid when another
 * service has the same name. */
static void labels(FILE *out, const struct cli_snapshot *snaps, size_t n, size_t i)
{
    fprintf(out, "service=\"");
    cli_put_string(out, snaps[i].name, CLI_ESC_PROM);
    fputc('"', out);
    for (size_t j = 0; j < n; j++)
        if (j != i && strcmp(snaps[j].name, snaps[i].name) == 0) {
            fprintf(out, ",pid=\"%d\"", snaps[i].service ? (int)snaps[i].service->main_pid : 0);
            break;
        }
}

static void print_key_metric(FILE *out, const struct key_metric *m,
                             const struct cli_snapshot *snaps, size_t n, size_t top)
{
    head(out, m->name, m->type, m->help);
    for (size_t i = 0; i < n; i++) {
        size_t shown = top && top < snaps[i].nkeys ? top : snaps[i].nkeys;
        for (size_t j = 0; j < shown; j++) {
            const struct cli_key *k = &snaps[i].keys[j];
            /* Key and balancer names are formatted addresses: nothing to escape. */
            fprintf(out, "%s{", m->name);
            labels(out, snaps, n, i);
            fprintf(out, ",key=\"%s\"%s%s%s} %llu\n", k->name, k->via[0] ? ",via=\"" : "",
                    k->via, k->via[0] ? "\"" : "", (unsigned long long)m->get(k));
        }
    }
}

/* Rejections by reason, one family with a reason label: limit, rate. */
static void print_by_reason(FILE *out, const struct cli_snapshot *snaps, size_t n, bool dry)
{
    const char *name = dry ? "iplimit_dry_run_rejected_by_reason_total"
                           : "iplimit_rejected_by_reason_total";
    head(out, name, "counter",
         dry ? "Would-be rejections of a dry run, by the limit that would have refused."
             : "Connections rejected, by the limit that refused them: limit (open "
               "connections) or rate (new connections per second).");
    for (size_t i = 0; i < n; i++) {
        uint64_t all = dry ? snaps[i].stats.dry_rejected : snaps[i].stats.rejected;
        uint64_t rate = dry ? snaps[i].stats.dry_rejected_rate : snaps[i].stats.rejected_rate;
        fprintf(out, "%s{", name);
        labels(out, snaps, n, i);
        fprintf(out, ",reason=\"limit\"} %llu\n", (unsigned long long)(all - rate));
        fprintf(out, "%s{", name);
        labels(out, snaps, n, i);
        fprintf(out, ",reason=\"rate\"} %llu\n", (unsigned long long)rate);
    }
}

/* 1 while a configuration error keeps the limiter disabled (fail open),
 * with the error as the label error. */
static void print_config_error(FILE *out, const struct cli_snapshot *snaps, size_t n)
{
    head(out, "iplimit_config_error", "gauge",
         "1 while a configuration error keeps the limiter disabled (label error: the first).");
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "iplimit_config_error{");
        labels(out, snaps, n, i);
        if (config_error(&snaps[i])) {
            fprintf(out, ",error=\"");
            cli_put_string(out, snaps[i].config_error, CLI_ESC_PROM);
            fprintf(out, "\"} 1\n");
        } else {
            fprintf(out, "} 0\n");
        }
    }
}

/* The policy in force: iplimit_policy_info with every setting of the
 * table in policy_view.c as a label, then one series per rule. */
static void print_policy(FILE *out, const struct cli_snapshot *snaps, size_t n)
{
    static struct cli_setting set[CLI_MAX_SETTINGS];
    head(out, "iplimit_policy_info", "gauge", "The policy in force: its settings as labels.");
    for (size_t i = 0; i < n; i++) {
        if (!snaps[i].policy_ok)
            continue;
        size_t count = cli_policy_settings(&snaps[i].policy, set);
        fprintf(out, "iplimit_policy_info{");
        labels(out, snaps, n, i);
        for (size_t j = 0; j < count; j++) {
            fprintf(out, ",%s=\"", set[j].name);
            if (set[j].kind == CLI_WORD)
                cli_put_string(out, set[j].word, CLI_ESC_PROM);
            else
                fprintf(out, "%llu", (unsigned long long)set[j].number);
            fputc('"', out);
        }
        fprintf(out, "} 1\n");
    }
    head(out, "iplimit_rule_limit", "gauge",
         "Limit per network (IPLIMIT_LIMITS); 0: unlimited (allowlisted, label allow=\"1\").");
    for (size_t i = 0; i < n; i++) {
        const struct il_policy *p = &snaps[i].policy;
        for (uint32_t r = 0; snaps[i].policy_ok && r < p->nrules && r < IL_MAX_RULES; r++) {
            char net[IL_KEY_STRLEN];
            il_key_format(&p->rules[r].net, net);
            fprintf(out, "iplimit_rule_limit{");
            labels(out, snaps, n, i);
            fprintf(out, ",cidr=\"%s\",allow=\"%d\"} %u\n", net, p->rules[r].allow ? 1 : 0,
                    p->rules[r].allow ? 0 : p->rules[r].limit);
        }
    }
}

/* Which processes the service is now, for joining with process metrics:
 * the label pid changes with every restart, so it is kept out of the
 * other series. */
static void print_info(FILE *out, const struct cli_snapshot *snaps, size_t n)
{
    head(out, "iplimit_service_info", "gauge", "The service's main process and owner.");
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "iplimit_service_info{");
        labels(out, snaps, n, i);
        fprintf(out, ",main_pid=\"%d\",uid=\"%u\",state=\"%s\"} 1\n",
                snaps[i].service ? (int)snaps[i].service->main_pid : 0, (unsigned)snaps[i].uid,
                cli_limiter_state(&snaps[i]));
    }
}

void cli_out_prom(FILE *out, const struct cli_snapshot *snaps, size_t n, size_t top)
{
    head(out, "iplimit_services", "gauge", "Running services using iplimit.");
    fprintf(out, "iplimit_services %zu\n", n);
    print_info(out, snaps, n);
    print_config_error(out, snaps, n);
    print_policy(out, snaps, n);
    print_by_reason(out, snaps, n, false);
    print_by_reason(out, snaps, n, true);
    for (size_t m = 0; m < COUNT(service_metrics); m++) {
        const struct service_metric *metric = &service_metrics[m];
        head(out, metric->name, metric->type, metric->help);
        for (size_t i = 0; i < n; i++) {
            fprintf(out, "%s{", metric->name);
            labels(out, snaps, n, i);
            fprintf(out, "} %llu\n", (unsigned long long)metric->get(&snaps[i]));
        }
    }
    for (size_t m = 0; m < COUNT(key_metrics); m++)
        print_key_metric(out, &key_metrics[m], snaps, n, top);
}
