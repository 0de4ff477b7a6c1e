/* The shared connection table (see conntab.h). */
#include "conntab.h"

static inline uint64_t make_word(uint32_t gen, uint32_t refs)
{
    return (uint64_t)(gen & IL_CONN_GEN_MASK) << 32 | refs;
}

/* Whether handle's index is inside the table, and its slot. Bounded by
 * the size copied at mapping (no header load: the header is the writer's
 * to change); the answer is the index's validity, not a pointer the
 * caller would have to test again. Any bits of handle above the
 * generation (an fd map entry's flags) are ignored. */
static inline bool slot_of(struct il_shm *shm, uint64_t handle, struct il_conn_slot **slot)
{
    uint32_t index = il_handle_index(handle);
    if (index >= shm->conn_slots)
        return false;
    *slot = &shm->conns[index];
    return true;
}

/* The slot this thread freed last: its index (UINT32_MAX: none) and its
 * word as the unref that freed it left it (that generation, no counts).
 * The next allocation in the thread tries it first: in a churn of short
 * connections each thread then reuses one slot, whose line is still in
 * its CPU's cache from the close, instead of a random line of the table.
 * The compare-and-swap from that word decides, as for any slot: another
 * thread or process that took it meanwhile makes it fail, and the search
 * below runs as before. Reuse advances the slot's generation once per
 * connection where the random search spreads the connections over the
 * table: a stale handle (an fd closed behind the library's back, never
 * released) could meet its generation again after 2^24 connections on
 * that one slot instead of practically never, and reconciliation frees
 * such a slot long before (docs/failure-model.md).
 *
 * The index passed the unref's bound test, but is tested again against
 * the table it is used in: one compare, which also finds "none" (an index
 * no table has), and keeps a thread's slot of one segment from being used
 * in another (unit tests map several; the library maps one per image). */
struct freed_slot {
    uint64_t word;
    uint32_t index;
};
static _Thread_local struct freed_slot last_freed
    __attribute__((tls_model("initial-exec"))) = {0, UINT32_MAX};

/* What the unref that frees a slot leaves for the next allocation. */
static inline void note_freed(uint32_t index, uint64_t free_word)
{
    last_freed.word = free_word;
    last_freed.index = index;
}

/* The word that takes a slot whose free word is free_word: the next
 * generation (computed in place: past the last generation the add
 * carries into bit 56, and the generation starts again at 1), one
 * reference. */
static inline uint64_t taken_word(uint64_t free_word)
{
    uint64_t word = free_word + (1ULL << 32) + 1;
    if (__builtin_expect(word >> 56 != 0, 0))
        word = make_word(1, 1);
    return word;
}

/* key_index is written after the slot is ours and read only by holders of
 * the new handle, who got it from this thread (or from a fork after it,
 * or an fd sent after it). Flags start clear. */
static inline uint64_t take(struct il_conn_slot *slot, uint32_t index, uint64_t word,
                            uint32_t key_index)
{
    uint64_t taken = taken_word(word);
    if (!atomic_compare_exchange_strong_explicit(&slot->word, &word, taken, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return 0;
    atomic_store_explicit(&slot->key_index, key_index, memory_order_release);
    return (taken - 1) | index; /* the new generation and the index */
}

static inline int live(uint64_t word, uint64_t handle)
{
    return il_connword_gen(word) == il_handle_gen(handle) && il_connword_in_use(word);
}

uint64_t il_conntab_alloc(struct il_shm *shm, uint32_t key_index)
{
    uint32_t last = last_freed.index;
    if (last < shm->conn_slots) { /* the copy taken at mapping: no header load */
        last_freed.index = UINT32_MAX;
        uint64_t handle = take(&shm->conns[last], last, last_freed.word, key_index);
        if (handle)
            return handle;
    }
    uint32_t mask = shm->conn_slots - 1;
    /* Searches start at a pseudo-random slot: a cursor scrambled by a
     * multiplicative hash. Consecutive starts land far apart, so slots in
     * use form no long runs (a plain cursor, once it wraps into a block of
     * long-held connections, would find no free slot within the probe
     * bound); with at most half the slots in use a search takes about two
     * probes. The cursor is this process's statistics stripe's (shm.h),
     * not one for the whole service: workers of a prefork server each
     * advance their own, on their own cache line. */
    uint32_t cursor = atomic_fetch_add_explicit(&shm->stats->conn_hint, 1, memory_order_relaxed);
    uint32_t start = cursor * 0x9e3779b1u;
    start ^= start >> 15;
    for (uint32_t i = 0; i < IL_CONN_PROBES && i <= mask; i++) {
        uint32_t index = (start + i) & mask;
        struct il_conn_slot *slot = &shm->conns[index];
        uint64_t word = atomic_load_explicit(&slot->word, memory_order_relaxed);
        if (il_connword_in_use(word))
            continue;
        uint64_t handle = take(slot, index, word, key_index);
        if (handle)
            return handle;
    }
    return 0;
}

int il_conntab_ref(struct il_shm *shm, uint64_t handle)
{
    struct il_conn_slot *slot;
    if (!slot_of(shm, handle, &slot))
        return -1;
    uint64_t word = atomic_load_explicit(&slot->word, memory_order_relaxed);
    while (live(word, handle) && il_connword_refs(word) != IL_CONN_REFS_MAX) {
        if (atomic_compare_exchange_weak_explicit(&slot->word, &word, word + 1,
                                                  memory_order_acq_rel, memory_order_relaxed))
            return 0;
    }
    return -1;
}

uint32_t il_conntab_unref(struct il_shm *shm, uint64_t handle)
{
    struct il_conn_slot *slot;
    if (!slot_of(shm, handle, &slot))
        return IL_NO_KEY;
    /* Read the key before dropping the last count: once the slot is free
     * another process may take it and overwrite it. Read it after the word
     * it goes with, again after every failed CAS: a PROXY re-key (proxy.c)
     * moves the connection to another key while the re-keying process
     * holds a reference, and the unref that finds the last count has then
     * synchronised with that process's unref, which came after its re-key. */
    uint64_t word = atomic_load_explicit(&slot->word, memory_order_acquire);
    /* The slot's word once free: the handle's generation, no counts (the
     * handle's bits above its generation, an fd map entry's flags, masked
     * off). The last reference with nothing in flight is the word one
     * above it: one compare finds the common case, whose compare-and-swap
     * frees the slot. */
    const uint64_t gen_bits = (uint64_t)IL_CONN_GEN_MASK << 32;
    const uint64_t free_word = handle & gen_bits;
    for (;;) {
        if (word - 1 == free_word) {
            uint32_t key_index = atomic_load_explicit(&slot->key_index, memory_order_acquire);
            if (atomic_compare_exchange_weak_explicit(&slot->word, &word, free_word,
                                                      memory_order_acq_rel,
                                                      memory_order_acquire)) {
                note_freed(il_handle_index(handle), free_word);
                return key_index;
            }
        } else if (((word ^ handle) & gen_bits) == 0 && il_connword_refs(word) != 0) {
            /* Not the last count (more references, or some in flight):
             * the slot stays taken, and no key is read. */
            if (atomic_compare_exchange_weak_explicit(&slot->word, &word, word - 1,
                                                      memory_order_acq_rel,
                                                      memory_order_acquire))
                return IL_NO_KEY;
        } else {
            return IL_NO_KEY; /* stale handle, or no reference left */
        }
    }
}

uint32_t il_conntab_unsend(struct il_shm *shm, uint64_t handle)
{
    struct il_conn_slot *slot;
    if (!slot_of(shm, handle, &slot))
        return IL_NO_KEY;
    uint32_t key_index = atomic_load_explicit(&slot->key_index, memory_order_acquire);
    uint64_t word = atomic_load_explicit(&slot->word, memory_order_relaxed);
    while (il_connword_gen(word) == il_handle_gen(handle) && il_connword_inflight(word) != 0) {
        uint64_t next = word - IL_CONN_INFLIGHT_ONE;
        if (atomic_compare_exchange_weak_explicit(&slot->word, &word, next, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return next & IL_CONN_COUNTS_MASK ? IL_NO_KEY : key_index;
    }
    return IL_NO_KEY;
}

int il_conntab_send(struct il_shm *shm, uint64_t handle)
{
    struct il_conn_slot *slot;
    if (!slot_of(shm, handle, &slot))
        return -1;
    uint64_t word = atomic_load_explicit(&slot->word, memory_order_relaxed);
    while (live(word, handle) && il_connword_inflight(word) != IL_CONN_INFLIGHT_MAX) {
        if (atomic_compare_exchange_weak_explicit(&slot->word, &word, word + IL_CONN_INFLIGHT_ONE,
                                                  memory_order_acq_rel, memory_order_relaxed))
            return 0;
    }
    return -1;
}

int il_conntab_receive(struct il_shm *shm, uint64_t handle, int convert, uint64_t *word_out)
{
    struct il_conn_slot *slot;
    if (!slot_of(shm, handle, &slot))
        return -1;
    uint64_t word = atomic_load_explicit(&slot->word, memory_order_acquire);
    while (live(word, handle)) {
        uint64_t next;
        if (convert && il_connword_inflight(word) != 0)
            next = word - IL_CONN_INFLIGHT_ONE + 1; /* one CAS: never free between */
        else if (il_connword_refs(word) != IL_CONN_REFS_MAX)
            next = word + 1;
        else
            return -1;
        if (atomic_compare_exchange_weak_explicit(&slot->word, &word, next,
                                                  memory_order_acq_rel, memory_order_acquire)) {
            *word_out = next;
            return 0;
        }
    }
    return -1;
}

#define INODE_BITS 40
#define INODE_MASK ((1ULL << INODE_BITS) - 1)

uint64_t il_conntab_inode(struct il_shm *shm, uint64_t handle)
{
    struct il_conn_slot *slot;
    if (!slot_of(shm, handle, &slot))
        return 0;
    /* Generation and inode are one word: it names this connection's
     * socket only when its generation is the handle's. */
    uint64_t field = atomic_load_explicit(&slot->sock_inode, memory_order_acquire);
    if ((uint32_t)(field >> INODE_BITS) != il_handle_gen(handle))
        return 0;
    if (!live(atomic_load_explicit(&slot->word, memory_order_acquire), handle))
        return 0; /* a stale handle: the slot's next connection may not have one yet */
    return field & INODE_MASK;
}

int il_conntab_set_inode(struct il_shm *shm, uint64_t handle, uint64_t inode)
{
    struct il_conn_slot *slot;
    if (!slot_of(shm, handle, &slot) || inode == 0 || inode > INODE_MASK)
        return -1;
    atomic_store_explicit(&slot->sock_inode, (uint64_t)il_handle_gen(handle) << INODE_BITS | inode,
                          memory_order_release);
    return 0;
}
