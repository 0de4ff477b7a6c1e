/* The shared connection table (see conntab.h). */
#include "conntab.h"

static inline uint32_t word_gen(uint64_t word)
{
    return (uint32_t)(word >> 32) & IL_CONN_GEN_MASK;
}
static inline uint32_t word_refs(uint64_t word)
{
    return (uint32_t)word;
}
static inline uint64_t make_word(uint32_t gen, uint32_t refs)
{
    return (uint64_t)(gen & IL_CONN_GEN_MASK) << 32 | refs;
}

uint64_t il_conntab_alloc(struct il_shm *shm, uint32_t key_index)
{
    uint32_t mask = shm->hdr->conn_slots - 1;
    /* Searches start at a pseudo-random slot: a shared cursor scrambled by
     * a multiplicative hash. Consecutive starts land far apart, so slots in
     * use form no long runs (a plain cursor, once it wraps into a block of
     * long-held connections, would find no free slot within the probe
     * bound); with at most half the slots in use a search takes about two
     * probes. */
    uint32_t cursor = atomic_fetch_add_explicit(&shm->hdr->conn_hint, 1, memory_order_relaxed);
    uint32_t start = cursor * 0x9e3779b1u;
    start ^= start >> 15;
    for (uint32_t i = 0; i < IL_CONN_PROBES && i <= mask; i++) {
        uint32_t index = (start + i) & mask;
        struct il_conn_slot *slot = &shm->conns[index];
        uint64_t word = atomic_load_explicit(&slot->word, memory_order_relaxed);
        if (word_refs(word) != 0)
            continue;
        uint32_t gen = word_gen(word) + 1;
        if (gen == 0 || gen > IL_CONN_GEN_MASK)
            gen = 1;
        /* key_index is written after the slot is ours and read only by
         * holders of the new handle, who got it from this thread (or from
         * a fork after it). */
        if (atomic_compare_exchange_strong_explicit(&slot->word, &word, make_word(gen, 1),
                                                    memory_order_acq_rel, memory_order_relaxed)) {
            atomic_store_explicit(&slot->key_index, key_index, memory_order_release);
            return (uint64_t)gen << 32 | index;
        }
    }
    return 0;
}

int il_conntab_ref(struct il_shm *shm, uint64_t handle)
{
    uint32_t index = il_handle_index(handle);
    if (index >= shm->hdr->conn_slots)
        return -1;
    struct il_conn_slot *slot = &shm->conns[index];
    uint64_t word = atomic_load_explicit(&slot->word, memory_order_relaxed);
    while (word_gen(word) == il_handle_gen(handle) && word_refs(word) != 0 &&
           word_refs(word) != UINT32_MAX) {
        if (atomic_compare_exchange_weak_explicit(&slot->word, &word, word + 1,
                                                  memory_order_acq_rel, memory_order_relaxed))
            return 0;
    }
    return -1;
}

uint32_t il_conntab_unref(struct il_shm *shm, uint64_t handle)
{
    uint32_t index = il_handle_index(handle);
    if (index >= shm->hdr->conn_slots)
        return IL_NO_KEY;
    struct il_conn_slot *slot = &shm->conns[index];
    /* Read the key before dropping the last reference: once the count is
     * zero another process may take the slot and overwrite it. Read it
     * after the word it goes with, again after every failed CAS: a PROXY
     * re-key (proxy.c) moves the connection to another key while the
     * re-keying process holds a reference, and the unref that finds the
     * count at 1 has then synchronised with that process's unref, which
     * came after its re-key. */
    uint64_t word = atomic_load_explicit(&slot->word, memory_order_acquire);
    while (word_gen(word) == il_handle_gen(handle) && word_refs(word) != 0) {
        uint32_t key_index = atomic_load_explicit(&slot->key_index, memory_order_acquire);
        if (atomic_compare_exchange_weak_explicit(&slot->word, &word, word - 1,
                                                  memory_order_acq_rel, memory_order_acquire))
            return word_refs(word) == 1 ? key_index : IL_NO_KEY;
    }
    return IL_NO_KEY;
}
