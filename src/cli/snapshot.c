/* One reading of a service's table. Only loads: the service's processes go
 * on accepting while this runs and never wait for it, so the totals are a
 * moment's view, each number exact as it was read. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "keytab.h"

static uint64_t load64(_Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

static void read_reconcile(struct il_shm_header *hdr, struct cli_snapshot *snap)
{
    snap->rec.runs = load64(&hdr->rec_runs);
    snap->rec.failed = load64(&hdr->rec_failed);
    snap->rec.last_run = load64(&hdr->rec_last_run);
    snap->rec.last_usec = load64(&hdr->rec_last_usec);
    snap->rec.last_sockets = load64(&hdr->rec_last_sockets);
    snap->rec.last_uncounted = load64(&hdr->rec_last_uncounted);
    snap->rec.slots_freed = load64(&hdr->rec_slots_freed);
    snap->rec.keys_corrected = load64(&hdr->rec_keys_corrected);
    snap->rec.counts_removed = load64(&hdr->rec_counts_removed);
    snap->rec.lookups = load64(&hdr->rec_lookups);
    snap->rec.dumps = load64(&hdr->rec_dumps);
    snap->rec.last_error = atomic_load_explicit(&hdr->rec_last_error, memory_order_relaxed);
    snap->rec.owner = atomic_load_explicit(&hdr->rec_owner, memory_order_relaxed);
}

/* The totals are the sums of the processes' stripes (shm.h). */
static void read_stats(struct il_shm_header *hdr, struct cli_snapshot *snap)
{
    memset(&snap->stats, 0, sizeof snap->stats);
    for (uint32_t i = 0; i < IL_STAT_STRIPES; i++) {
        struct il_stats *s = &hdr->stats[i];
        snap->stats.accepted += load64(&s->accepted);
        snap->stats.rejected += load64(&s->rejected);
        snap->stats.dry_rejected += load64(&s->dry_rejected);
        snap->stats.untracked += load64(&s->untracked);
        snap->stats.released += load64(&s->released);
        snap->stats.rejected_rate += load64(&s->rejected_rate);
        snap->stats.dry_rejected_rate += load64(&s->dry_rejected_rate);
    }
}

/* Only what the library can write: a forged policy gets no out-of-range
 * prefix or rule count into the formatting and matching code. */
static void clamp_policy(struct il_policy *p)
{
    if (p->nrules > IL_MAX_RULES)
        p->nrules = IL_MAX_RULES;
    if (p->v4_prefix > 32)
        p->v4_prefix = 32;
    if (p->v6_prefix > 128)
        p->v6_prefix = 128;
    for (uint32_t i = 0; i < p->nrules; i++)
        if (p->rules[i].net.plen > 128)
            p->rules[i].net.plen = 128;
}

static void read_header(const struct il_shm *shm, struct cli_snapshot *snap)
{
    struct il_shm_header *hdr = shm->hdr;
    snap->creator_pid = hdr->creator_pid;
    snap->created_at = hdr->created_at;
    snap->capacity = shm->conn_slots / 2;
    /* Strings are copied once, then cut: the segment's writer may change
     * them meanwhile, and the copy is all that is printed. */
    memcpy(snap->config_error, hdr->config_error, sizeof snap->config_error);
    snap->config_error[sizeof snap->config_error - 1] = '\0';
    memcpy(snap->name, hdr->service, sizeof snap->name);
    snap->name[sizeof snap->name - 1] = '\0';
    snap->generation = atomic_load_explicit(&hdr->policy_generation, memory_order_acquire);
    snap->loaded_at = load64(&hdr->policy_loaded_at);
    snap->policy_ok = il_shm_policy_read(shm, &snap->policy) == 0;
    if (snap->policy_ok)
        clamp_policy(&snap->policy);
    read_stats(hdr, snap);
    snap->stats.proxy_malformed = load64(&hdr->proxy_malformed);
    snap->stats.proxy_rejected = load64(&hdr->proxy_rejected);
    read_reconcile(hdr, snap);
}

/* Rules longer than the key's prefix that lie inside it give its peers
 * their own limits: the key then has no single limit. */
static bool limit_varies_inside(const struct il_policy *policy, const struct il_key *key)
{
    for (uint32_t i = 0; i < policy->nrules && i < IL_MAX_RULES; i++) {
        const struct il_rule *rule = &policy->rules[i];
        if (!rule->allow && rule->net.plen > key->plen && il_key_contains(key, &rule->net))
            return true;
    }
    return false;
}

uint32_t cli_key_limit(const struct il_policy *policy, const struct il_key *key,
                       uint32_t fallback)
{
    if (!policy->enabled)
        return IL_UNLIMITED;
    if (limit_varies_inside(policy, key))
        return fallback;
    struct il_verdict verdict;
    il_policy_judge(policy, key, &verdict);
    return verdict.limit;
}

static int busier_first(const void *pa, const void *pb)
{
    const struct cli_key *a = pa, *b = pb;
    if (a->open != b->open)
        return a->open < b->open ? 1 : -1;
    if (a->rejected != b->rejected)
        return a->rejected < b->rejected ? 1 : -1;
    return strcmp(a->name, b->name);
}

static void add_key(struct cli_snapshot *snap, size_t *cap, const struct il_shm *shm,
                    uint32_t index, const struct il_key *key, uint32_t open)
{
    struct il_key_slot *slot = &shm->keys[index];
    uint64_t rejected = load64(&slot->rejected);
    if (open == 0 && rejected == 0)
        return;
    if (snap->nkeys == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        snap->keys = cli_xrealloc(snap->keys, *cap, sizeof *snap->keys);
    }
    struct cli_key *k = &snap->keys[snap->nkeys++];
    k->key = *key;
    if (k->key.plen > 128) /* only a forged slot */
        k->key.plen = 128;
    il_key_format(&k->key, k->name);
    k->open = open;
    uint32_t last = atomic_load_explicit(&slot->limit, memory_order_relaxed);
    k->limit = snap->policy_ok ? cli_key_limit(&snap->policy, &k->key, last) : last;
    k->rejected = rejected;
    uint64_t last_word = load64(&slot->last_reject);
    k->last_reject = last_word & ((1ULL << IL_REASON_SHIFT) - 1);
    k->last_reason = (uint8_t)(last_word >> IL_REASON_SHIFT);
    k->last_reject = load64(&slot->last_reject);
    struct il_key balancer;
    k->via[0] = '\0';
    if (il_shm_via_read(shm, atomic_load_explicit(&slot->via, memory_order_relaxed), &balancer))
        il_key_format(&balancer, k->via);
}

static void read_keys(const struct il_shm *shm, struct cli_snapshot *snap)
{
    size_t cap = 0;
    for (uint32_t index = 0; index < shm->key_slots; index++) {
        struct il_key key;
        uint32_t open;
        if (!il_keytab_read(shm, index, &key, &open))
            continue;
        if (open) {
            snap->live_keys++;
            snap->open_total += open;
        }
        add_key(snap, &cap, shm, index, &key, open);
    }
    if (snap->nkeys > 1)
        qsort(snap->keys, snap->nkeys, sizeof *snap->keys, busier_first);
}

void cli_snapshot_from_shm(const struct il_shm *shm, struct cli_snapshot *snap)
{
    read_header(shm, snap);
    read_keys(shm, snap);
}

/* A segment's owner can shrink its memfd after it was checked and mapped:
 * reading past the new end raises SIGBUS. The reading is then abandoned,
 * not the command. */
static sigjmp_buf bus_jump;
static volatile sig_atomic_t bus_armed;

static void on_sigbus(int sig)
{
    if (bus_armed)
        siglongjmp(bus_jump, 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

int cli_snapshot_read(const struct cli_service *service, struct cli_snapshot *snap)
{
    memset(snap, 0, sizeof *snap);
    snap->service = service;
    static struct il_shm shm; /* static: intact after a siglongjmp */
    int err = cli_attach_owned(service, &shm, false, &snap->uid);
    if (err)
        return err;
    struct sigaction bus = {.sa_handler = on_sigbus}, old;
    sigaction(SIGBUS, &bus, &old);
    if (sigsetjmp(bus_jump, 1) == 0) {
        bus_armed = 1;
        cli_snapshot_from_shm(&shm, snap);
    } else {
        cli_error("the segment of process %d shrank while being read: skipped",
                  (int)service->main_pid);
        cli_snapshot_free(snap);
        err = -EFAULT;
    }
    bus_armed = 0;
    sigaction(SIGBUS, &old, NULL);
    il_shm_detach(&shm);
    return err;
}

void cli_snapshot_free(struct cli_snapshot *snap)
{
    free(snap->keys);
    snap->keys = NULL;
    snap->nkeys = 0;
}
