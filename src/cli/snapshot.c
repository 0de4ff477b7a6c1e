/* One reading of a service's table. Only loads: the service's processes go
 * on accepting while this runs and never wait for it, so the totals are a
 * moment's view, each number exact as it was read. */
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
    snap->rec.last_error = atomic_load_explicit(&hdr->rec_last_error, memory_order_relaxed);
    snap->rec.owner = atomic_load_explicit(&hdr->rec_owner, memory_order_relaxed);
}

static void read_header(const struct il_shm *shm, struct cli_snapshot *snap)
{
    struct il_shm_header *hdr = shm->hdr;
    snap->creator_pid = hdr->creator_pid;
    snap->created_at = hdr->created_at;
    snap->capacity = hdr->conn_slots / 2;
    memcpy(snap->config_error, hdr->config_error, sizeof snap->config_error);
    snap->config_error[sizeof snap->config_error - 1] = '\0';
    snap->generation = atomic_load_explicit(&hdr->policy_generation, memory_order_acquire);
    snap->loaded_at = load64(&hdr->policy_loaded_at);
    snap->policy_ok = il_shm_policy_read(shm, &snap->policy) == 0;
    snap->stats.accepted = load64(&hdr->stats.accepted);
    snap->stats.rejected = load64(&hdr->stats.rejected);
    snap->stats.dry_rejected = load64(&hdr->stats.dry_rejected);
    snap->stats.untracked = load64(&hdr->stats.untracked);
    snap->stats.released = load64(&hdr->stats.released);
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
    il_key_format(key, k->name);
    k->open = open;
    uint32_t last = atomic_load_explicit(&slot->limit, memory_order_relaxed);
    k->limit = snap->policy_ok ? cli_key_limit(&snap->policy, key, last) : last;
    k->rejected = rejected;
    k->last_reject = load64(&slot->last_reject);
    struct il_key balancer;
    k->via[0] = '\0';
    if (il_shm_via_read(shm, atomic_load_explicit(&slot->via, memory_order_relaxed), &balancer))
        il_key_format(&balancer, k->via);
}

static void read_keys(const struct il_shm *shm, struct cli_snapshot *snap)
{
    size_t cap = 0;
    for (uint32_t index = 0; index < shm->hdr->key_slots; index++) {
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
    qsort(snap->keys, snap->nkeys, sizeof *snap->keys, busier_first);
}

int cli_snapshot_read(const struct cli_service *service, struct cli_snapshot *snap)
{
    memset(snap, 0, sizeof *snap);
    snap->service = service;
    struct il_shm shm;
    int err = cli_attach(service, &shm, false);
    if (err)
        return err;
    read_header(&shm, snap);
    read_keys(&shm, snap);
    il_shm_detach(&shm);
    return 0;
}

void cli_snapshot_free(struct cli_snapshot *snap)
{
    free(snap->keys);
    snap->keys = NULL;
    snap->nkeys = 0;
}
