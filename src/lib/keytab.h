/* The shared key table: open connections per key, lock-free.
 *
 * Open addressing with a bounded probe window.  A slot, once used, never
 * goes back to EMPTY (lookups stop at EMPTY); a slot whose count fell to
 * zero keeps its key and may be taken over by a new key, which bumps its
 * version so that readers holding the old version notice. */
#ifndef IL_KEYTAB_H
#define IL_KEYTAB_H

#include <stdbool.h>
#include <stdint.h>

#include "addrkey.h"
#include "shm.h"

#define IL_KEY_PROBES 64

enum il_acquire {
    IL_ADMITTED,      /* counted: *index is the key's slot */
    IL_OVER_LIMIT,    /* not counted: the key is at its limit */
    IL_OVER_ADMITTED, /* counted although over the limit (dry run) */
    IL_TABLE_FULL,    /* no slot for the key: not counted (fail open) */
};

struct il_acquired {
    uint32_t index; /* key slot */
    uint32_t count; /* open connections after this accept (or at rejection) */
};

/* Counts one connection against key if it is under limit (0 = no limit);
 * with force, counts it anyway and reports IL_OVER_ADMITTED. */
enum il_acquire il_keytab_acquire(struct il_shm *shm, const struct il_key *key, uint32_t limit,
                                  int force, struct il_acquired *out);

/* Uncounts one connection from the key in slot index. */
void il_keytab_release(struct il_shm *shm, uint32_t index);

/* Reads slot index for display: returns 0 when the slot holds no key. */
int il_keytab_read(const struct il_shm *shm, uint32_t index, struct il_key *key, uint32_t *count);

static inline uint32_t il_keyword_count(uint64_t word)
{
    return (uint32_t)word;
}
static inline uint64_t il_keyword_state(uint64_t word)
{
    return word >> 62;
}
static inline uint64_t il_keyword_version(uint64_t word)
{
    return (word >> 32) & 0x3fffffffULL;
}
/* READY is the only state with bit 63 set (state 3 is never written):
 * the state test is the word's sign. */
_Static_assert(IL_KEY_READY == 2 && IL_KEY_BUSY < 2 && IL_KEY_EMPTY < 2, "key states");
static inline bool il_keyword_ready(uint64_t word)
{
    return (int64_t)word < 0;
}
static inline uint64_t il_keyword_make(uint64_t state, uint64_t version, uint32_t count)
{
    return state << 62 | (version & 0x3fffffffULL) << 32 | count;
}

/* Adds one to a found key's count; word is the slot's word as read with
 * the key (READY, the version the key was read under). Returns -1 if the
 * slot was taken over by another key meanwhile (the caller looks up
 * again). */
static inline __attribute__((always_inline)) int
il_keytab_count_in(struct il_key_slot *slot, uint64_t word, uint32_t limit, int force,
         enum il_acquire *result, uint32_t *count)
{
    uint64_t state_version = word >> 32; /* READY, and the key's version */
    if (atomic_load_explicit(&slot->limit, memory_order_relaxed) != limit)
        atomic_store_explicit(&slot->limit, limit, memory_order_relaxed);
    for (;;) {
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
        if (word >> 32 != state_version) /* the failed CAS reloaded word */
            return -1;
    }
}

/* The highest count an accept may find and still be counted under limit
 * (0: none): limit - 1, and below UINT32_MAX, whose next count would not
 * fit. One compare then says both "at the limit" and "full". */
static inline uint32_t il_keytab_count_bound(uint32_t limit)
{
    return limit == 0 ? UINT32_MAX - 1 : limit - 1;
}

/* The common case of il_keytab_acquire without a dry run, inline in the
 * straight accept path: the key (hi, lo, plen: an IPv4 key's hi is 0)
 * READY in the first slot of its window, from its home slot index (its
 * hash & mask, mask the table's size - 1; the caller may have hashed in
 * part beforehand, addrkey.h), that is not another key's, and counted in
 * if its count is at most bound (il_keytab_count_bound of the limit).
 * Returns 0 when counted (*at_index the slot's index, *at the slot), 1 at
 * the limit or a full count (nothing changed: the general path decides
 * again and logs), and -1 for everything else (an empty or busy slot
 * first, a torn read, the slot taken over), having changed nothing: the
 * caller then calls il_keytab_acquire, which looks again from the start. */
static inline __attribute__((always_inline)) int
il_keytab_acquire_straight(struct il_shm *shm, uint64_t hi, uint64_t lo, uint32_t plen,
                           uint32_t index, uint32_t mask, uint32_t limit, uint32_t bound,
                           uint32_t *at_index, struct il_key_slot **at)
{
    for (uint32_t i = 0; i < 4; i++, index = (index + 1) & mask) {
        struct il_key_slot *slot = &shm->keys[index];
        uint64_t word = atomic_load_explicit(&slot->word, memory_order_acquire);
        if (!il_keyword_ready(word))
            return -1;
        if (atomic_load_explicit(&slot->addr_lo, memory_order_relaxed) != lo ||
            atomic_load_explicit(&slot->addr_hi, memory_order_relaxed) != hi ||
            atomic_load_explicit(&slot->plen, memory_order_relaxed) != plen)
            continue;
        /* The key's loads were under word's version (a seqlock read, as
         * keytab.c's find). */
        atomic_thread_fence(memory_order_acquire);
        uint64_t again = atomic_load_explicit(&slot->word, memory_order_relaxed);
        if ((again ^ word) >> 32)
            return -1;
        if (atomic_load_explicit(&slot->limit, memory_order_relaxed) != limit)
            atomic_store_explicit(&slot->limit, limit, memory_order_relaxed);
        do {
            if (il_keyword_count(again) > bound)
                return 1;
            if (atomic_compare_exchange_weak_explicit(&slot->word, &again, again + 1,
                                                      memory_order_acq_rel,
                                                      memory_order_acquire)) {
                *at_index = index;
                *at = slot;
                return 0;
            }
        } while ((again ^ word) >> 32 == 0); /* the failed CAS reloaded it */
        return -1;
    }
    return -1;
}

#endif
