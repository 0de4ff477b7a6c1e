/* The socket identity index (see sockid.h). */
#include "sockid.h"

#include "conntab.h"

#define ENTRY_GEN_SHIFT 40
#define ENTRY_TAG_SHIFT 32

struct probe {
    uint32_t start;
    uint32_t mask;
    uint64_t tag;
};

static struct probe probe_of(const struct il_shm *shm, uint64_t inode)
{
    uint64_t x = inode ^ shm->hdr->hash_seed;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (struct probe){(uint32_t)x, shm->hdr->sockid_slots - 1, x >> 56};
}

static uint64_t entry_of(uint64_t handle, uint64_t tag)
{
    return (uint64_t)il_handle_gen(handle) << ENTRY_GEN_SHIFT | tag << ENTRY_TAG_SHIFT |
           il_handle_index(handle);
}

static uint64_t handle_of(uint64_t entry)
{
    return (entry >> ENTRY_GEN_SHIFT) << 32 | (uint32_t)entry;
}

static uint64_t slot_word(const struct il_shm *shm, uint64_t handle)
{
    uint32_t index = il_handle_index(handle);
    if (index >= shm->hdr->conn_slots)
        return 0;
    return atomic_load_explicit(&shm->conns[index].word, memory_order_acquire);
}

static int slot_live(const struct il_shm *shm, uint64_t handle)
{
    uint64_t word = slot_word(shm, handle);
    return il_connword_in_use(word) && il_connword_gen(word) == il_handle_gen(handle);
}

uint64_t il_sockid_lookup(struct il_shm *shm, uint64_t inode)
{
    if (!inode)
        return 0;
    struct probe p = probe_of(shm, inode);
    for (uint32_t i = 0; i < IL_SOCKID_PROBES && i <= p.mask; i++) {
        uint64_t e = atomic_load_explicit(&shm->sockids[(p.start + i) & p.mask],
                                          memory_order_acquire);
        if (e == 0)
            return 0;
        if ((e >> ENTRY_TAG_SHIFT & 0xff) != p.tag)
            continue;
        uint64_t handle = handle_of(e);
        /* Live before and after reading its inode: the slot held this
         * connection, with this inode, at one instant between. */
        if (slot_live(shm, handle) && il_conntab_inode(shm, handle) == inode &&
            slot_live(shm, handle))
            return handle;
    }
    return 0;
}

int il_sockid_insert(struct il_shm *shm, uint64_t handle, uint64_t inode)
{
    if (!inode)
        return -1;
    struct probe p = probe_of(shm, inode);
    uint64_t mine = entry_of(handle, p.tag);
    for (int attempt = 0; attempt < 8; attempt++) {
        _Atomic uint64_t *free_cell = 0;
        uint64_t free_was = 0;
        for (uint32_t i = 0; i < IL_SOCKID_PROBES && i <= p.mask; i++) {
            _Atomic uint64_t *cell = &shm->sockids[(p.start + i) & p.mask];
            uint64_t e = atomic_load_explicit(cell, memory_order_acquire);
            if (e == mine)
                return 0;
            if (e == 0) {
                if (!free_cell)
                    free_cell = cell, free_was = 0;
                break;
            }
            /* Stale: its slot is free or in a later generation. The slot
             * cannot come back to that generation before 2^24 reuses, so
             * the compare-and-swap below cannot overwrite a live entry. */
            if (!free_cell && !slot_live(shm, handle_of(e)))
                free_cell = cell, free_was = e;
        }
        if (!free_cell)
            return -1;
        if (atomic_compare_exchange_strong_explicit(free_cell, &free_was, mine,
                                                    memory_order_acq_rel, memory_order_relaxed))
            return 0;
    }
    return -1;
}
