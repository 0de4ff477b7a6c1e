/* The shared connection table: one slot per counted connection, holding the
 * number of fds (in every process) that still refer to it.
 *
 * A handle is (generation, slot index). The generation is bumped each time
 * a slot is taken, and every change is a compare-and-swap that checks it,
 * so a stale handle (an fd closed behind the library's back, a process
 * that died mid-way) can never touch a later connection's slot. */
#ifndef IL_CONNTAB_H
#define IL_CONNTAB_H

#include <stdint.h>

#include "shm.h"

#define IL_CONN_PROBES 128
#define IL_NO_KEY UINT32_MAX

/* Handle bits as stored in the fd map: [55:32] generation, [31:0] index;
 * bits 56..63 of an fd map entry are flags (fdmap.h). */
#define IL_CONN_GEN_MASK 0xffffffu
static inline uint32_t il_handle_index(uint64_t handle)
{
    return (uint32_t)handle;
}
static inline uint32_t il_handle_gen(uint64_t handle)
{
    return (uint32_t)(handle >> 32) & IL_CONN_GEN_MASK;
}

/* Takes a free slot for a connection counted under key_index, with one
 * reference. Returns the handle, or 0 when no free slot was found. */
uint64_t il_conntab_alloc(struct il_shm *shm, uint32_t key_index);

/* Adds a reference (dup, fork). Returns 0, or -1 if the handle is stale. */
int il_conntab_ref(struct il_shm *shm, uint64_t handle);

/* Drops a reference. Returns the key index when it was the last one (the
 * connection is gone and its key must be released), else IL_NO_KEY. */
uint32_t il_conntab_unref(struct il_shm *shm, uint64_t handle);

#endif
