/* iplimit stat, for people: a header per service and its busiest keys. */
#include <string.h>

#include "cli.h"

static void print_pids(FILE *out, const struct cli_service *service)
{
    for (size_t i = 0; i < service->nprocs; i++)
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
    if (s->config_error[0])
        fprintf(out, "  startup config error: %s\n", s->config_error);
    if (!s->policy_ok)
        fprintf(out, "  policy: unreadable (being replaced); try again\n");
    else if (!s->policy.enabled)
        fprintf(out, "  policy: DISABLED, every connection passes through\n");
    else if (s->policy.dry_run)
        fprintf(out, "  policy: DRY RUN, nothing is rejected; REJECTED counts would-be "
                     "rejections\n");
}

static void print_reconcile(FILE *out, const struct cli_snapshot *s)
{
    char last[32];
    fprintf(out, "  reconcile: %llu runs, %llu abandoned", (unsigned long long)s->rec.runs,
            (unsigned long long)s->rec.failed);
    if (s->rec.last_error)
        fprintf(out, " (last: %s)", strerror(s->rec.last_error));
    if (s->rec.runs)
        fprintf(out, "; last %s in %llu us: %llu sockets held, %llu of them uncounted",
                cli_time(s->rec.last_run, last, sizeof last),
                (unsigned long long)s->rec.last_usec, (unsigned long long)s->rec.last_sockets,
                (unsigned long long)s->rec.last_uncounted);
    fprintf(out, "; in all %llu slots freed, %llu keys corrected",
            (unsigned long long)s->rec.slots_freed, (unsigned long long)s->rec.keys_corrected);
    if (s->rec.owner)
        fprintf(out, "; by the thread of pid %d\n", (int)s->rec.owner);
    else
        fprintf(out, "; inline in accept\n");
}

static void print_service(FILE *out, const struct cli_snapshot *s, size_t top)
{
    char created[32], loaded[32];
    fprintf(out, "service %d (pids ", (int)s->creator_pid);
    print_pids(out, s->service);
    fprintf(out, ") since %s\n", cli_time(s->created_at, created, sizeof created));
    fprintf(out, "  policy generation %llu, loaded %s\n", (unsigned long long)s->generation,
            cli_time(s->loaded_at, loaded, sizeof loaded));
    print_state(out, s);
    fprintf(out,
            "  connections: %llu open, %llu accepted, %llu rejected, %llu would-be rejected "
            "(dry run), %llu untracked, %llu released\n",
            (unsigned long long)s->open_total, (unsigned long long)s->stats.accepted,
            (unsigned long long)s->stats.rejected, (unsigned long long)s->stats.dry_rejected,
            (unsigned long long)s->stats.untracked, (unsigned long long)s->stats.released);
    fprintf(out, "  table: %u of %u keys in use\n", s->live_keys, s->capacity);
    if (s->policy_ok && s->policy.nproxy)
        fprintf(out, "  PROXY headers: %llu malformed, %llu clients rejected at their first read\n",
                (unsigned long long)s->stats.proxy_malformed,
                (unsigned long long)s->stats.proxy_rejected);
    print_reconcile(out, s);
    fprintf(out, "  %-43s %8s %8s %8s\n", "KEY", "OPEN", "LIMIT", "REJECTED");
    size_t shown = top && top < s->nkeys ? top : s->nkeys;
    for (size_t i = 0; i < shown; i++) {
        const struct cli_key *k = &s->keys[i];
        char name[2 * IL_KEY_STRLEN + 8];
        snprintf(name, sizeof name, "%s%s%s", k->name, k->via[0] ? " via " : "", k->via);
        fprintf(out, "  %-43s %8u", name, k->open);
        print_limit(out, k->limit);
        fprintf(out, " %8llu\n", (unsigned long long)k->rejected);
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
