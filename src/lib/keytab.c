/* The shared key table (see keytab.h and the slot layout in shm.h). */
#include "keytab.h"

#include <sched.h>
#include <string.h>

#define BUSY_SPINS 1000   /* a BUSY slot is being written by another process... */
#define LOOKUP_RESTARTS 8 /* ...or that process died mid-write: then we move on */

static void load_key(const struct il_key_slot *slot, struct il_key *key)
{
    uint64_t hi = atomic_load_explicit(&slot->addr_hi, memory_order_relaxed);
    uint64_t lo = atomic_load_explicit(&slot->addr_lo, memory_order_relaxed);
    memcpy(key->addr, &hi, 8);
    memcpy(key->addr + 8, &lo, 8);
    key->plen = (uint8_t)atomic_load_explicit(&slot->plen, memory_order_relaxed);
}

static void store_key(struct il_key_slot *slot, const struct il_key *key)
{
    uint64_t hi, lo;
    memcpy(&hi, key->addr, 8);
    memcpy(&lo, key->addr + 8, 8);
    atomic_store_explicit(&slot->addr_hi, hi, memory_order_relaxed);
    atomic_store_explicit(&slot->addr_lo, lo, memory_order_relaxed);
    atomic_store_explicit(&slot->plen, key->plen, memory_order_relaxed);
}

/* Waits briefly for a BUSY slot to be published. Returns its new word, or
 * the BUSY word if the writer is gone or slow (the caller skips the slot). */
static uint64_t wait_published(struct il_key_slot *slot, uint64_t word)
{
    for (int spin = 0; spin < BUSY_SPINS && il_keyword_state(word) == IL_KEY_BUSY; spin++) {
        if (spin % 64 == 63)
            sched_yield();
        word = atomic_load_explicit(&slot->word, memory_order_acquire);
    }
    return word;
}

/* Reads a READY slot's key consistently. Returns 0 if it changed under us. */
static int read_ready_key(struct il_key_slot *slot, uint64_t word, struct il_key *key)
{
    load_key(slot, key);
    atomic_thread_fence(memory_order_acquire);
    uint64_t again = atomic_load_explicit(&slot->word, memory_order_relaxed);
    return il_keyword_state(again) == IL_KEY_READY &&
           il_keyword_version(again) == il_keyword_version(word);
}

/* Adds one to a found key's count. Returns -1 if the slot was taken over by
 * another key meanwhile (the caller looks up again). */
static int count_in(struct il_key_slot *slot, uint64_t word, uint32_t limit, int force,
                    enum il_acquire *result, uint32_t *count)
{
    uint64_t version = il_keyword_version(word);
    if (atomic_load_explicit(&slot->limit, memory_order_relaxed) != limit)
        atomic_store_explicit(&slot->limit, limit, memory_order_relaxed);
    for (;;) {
        if (il_keyword_state(word) != IL_KEY_READY || il_keyword_version(word) != version)
            return -1;
        uint32_t open = il_keyword_count(word);
        int over = limit != 0 && open >= limit;
        if (over && !force) {
            *result = IL_OVER_LIMIT;
            *count = open;
            return 0;
        }
        if (open == UINT32_MAX) {
            *result = IL_TABLE_FULL;
            return 0;
        }
        if (atomic_compare_exchange_weak_explicit(&slot->word, &word, word + 1,
                                                  memory_order_acq_rel, memory_order_acquire)) {
            *result = over ? IL_OVER_ADMITTED : IL_ADMITTED;
            *count = open + 1;
            return 0;
        }
    }
}

/* Takes slot (EMPTY, or READY with no connections) for key and counts the
 * first connection in it. Returns -1 if another process got there first. */
static int claim(struct il_key_slot *slot, uint64_t word, const struct il_key *key,
                 uint32_t limit)
{
    uint64_t version = il_keyword_version(word) + 1;
    uint64_t busy = il_keyword_make(IL_KEY_BUSY, version, 0);
    if (!atomic_compare_exchange_strong_explicit(&slot->word, &word, busy, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return -1;
    store_key(slot, key);
    atomic_store_explicit(&slot->limit, limit, memory_order_relaxed);
    atomic_store_explicit(&slot->rejected, 0, memory_order_relaxed);
    atomic_store_explicit(&slot->log_window, 0, memory_order_relaxed);
    atomic_store_explicit(&slot->log_suppressed, 0, memory_order_relaxed);
    atomic_store_explicit(&slot->last_reject, 0, memory_order_relaxed);
    /* Release: the key is visible before the slot is READY. */
    atomic_store_explicit(&slot->word, il_keyword_make(IL_KEY_READY, version, 1),
                          memory_order_release);
    return 0;
}

/* One pass over the key's probe window. Returns 1 when done (result set),
 * 0 to restart the lookup. */
static inline __attribute__((always_inline)) int acquire_pass(struct il_shm *shm, const struct il_key *key, uint32_t limit, int force,
                        enum il_acquire *result, struct il_acquired *out)
{
    uint32_t mask = shm->hdr->key_slots - 1;
    uint32_t home = (uint32_t)il_key_hash(key, shm->hdr->hash_seed) & mask;
    int64_t reusable = -1;
    uint64_t reusable_word = 0;
    int64_t empty = -1;

    for (uint32_t i = 0; i < IL_KEY_PROBES && i <= mask; i++) {
        uint32_t index = (home + i) & mask;
        struct il_key_slot *slot = &shm->keys[index];
        uint64_t word = atomic_load_explicit(&slot->word, memory_order_acquire);
        if (il_keyword_state(word) == IL_KEY_BUSY)
            word = wait_published(slot, word);
        if (il_keyword_state(word) == IL_KEY_EMPTY) {
            empty = index;
            break;
        }
        if (il_keyword_state(word) != IL_KEY_READY)
            continue;
        struct il_key found;
        if (!read_ready_key(slot, word, &found))
            return 0;
        if (il_key_equal(&found, key)) {
            out->index = index;
            return count_in(slot, word, limit, force, result, &out->count) == 0;
        }
        if (reusable < 0 && il_keyword_count(word) == 0) {
            reusable = index;
            reusable_word = word;
        }
    }

    /* Not in the table: the first connection is always within any limit
     * (a limit is 0 = none, or at least 1). */
    int64_t index = reusable >= 0 ? reusable : empty;
    if (index < 0) {
        *result = IL_TABLE_FULL;
        return 1;
    }
    uint64_t word = reusable >= 0 ? reusable_word : 0;
    if (claim(&shm->keys[index], word, key, limit) != 0)
        return 0;
    out->index = (uint32_t)index;
    out->count = 1;
    *result = IL_ADMITTED;
    return 1;
}

enum il_acquire il_keytab_acquire(struct il_shm *shm, const struct il_key *key, uint32_t limit,
                                  int force, struct il_acquired *out)
{
    enum il_acquire result = IL_TABLE_FULL;
    out->count = 0;
    for (int attempt = 0; attempt < LOOKUP_RESTARTS; attempt++)
        if (acquire_pass(shm, key, limit, force, &result, out))
            return result;
    return IL_TABLE_FULL;
}

void il_keytab_release(struct il_shm *shm, uint32_t index)
{
    if (index >= shm->hdr->key_slots)
        return;
    struct il_key_slot *slot = &shm->keys[index];
    uint64_t word = atomic_load_explicit(&slot->word, memory_order_relaxed);
    /* Never below zero: a count that some path (a kill -9, a close the
     * library never saw) already lost must not wrap around. */
    while (il_keyword_state(word) == IL_KEY_READY && il_keyword_count(word) > 0) {
        if (atomic_compare_exchange_weak_explicit(&slot->word, &word, word - 1,
                                                  memory_order_acq_rel, memory_order_relaxed))
            return;
    }
}

int il_keytab_read(const struct il_shm *shm, uint32_t index, struct il_key *key, uint32_t *count)
{
    struct il_key_slot *slot = &shm->keys[index];
    uint64_t word = atomic_load_explicit(&slot->word, memory_order_acquire);
    if (il_keyword_state(word) != IL_KEY_READY)
        return 0;
    if (!read_ready_key(slot, word, key))
        return 0;
    *count = il_keyword_count(word);
    return 1;
}
