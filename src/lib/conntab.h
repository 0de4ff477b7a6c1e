/* The shared connection table: one slot per counted connection, holding the
 * number of fds (in every process) that still refer to it and the number
 * of its fds in flight (sent by SCM_RIGHTS, not yet received).
 *
 * A handle is (generation, slot index). The generation is bumped each time
 * a slot is taken, and every change is a compare-and-swap that checks it,
 * so a stale handle (an fd closed behind the library's back, a process
 * that died mid-way) can never touch a later connection's slot. */
#ifndef IL_CONNTAB_H
#define IL_CONNTAB_H

#include <stdint.h>

#include "connid.h"
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

/* The slot word, one 64-bit atomic (shm.h, struct il_conn_slot):
 *   [63:56] zero
 *   [55:32] generation      (the handle's)
 *   [31:20] in flight       fds sent by SCM_RIGHTS and not yet received
 *   [19:0]  references      fds in all processes of the service
 * The slot is free exactly when bits [31:0] are zero, so one CAS can turn
 * an in-flight reference into a reference (a receipt) without the slot
 * ever looking free in between, and reconciliation frees a dead slot (both
 * counts) with one CAS too. (A connection's PROXY-protocol state is in
 * its slot's proxy word: proxy.c.) */
#define IL_CONN_REFS_BITS 20
#define IL_CONN_REFS_MAX ((1u << IL_CONN_REFS_BITS) - 1)
#define IL_CONN_INFLIGHT_SHIFT IL_CONN_REFS_BITS
#define IL_CONN_INFLIGHT_MAX ((1u << (32 - IL_CONN_REFS_BITS)) - 1)
#define IL_CONN_INFLIGHT_ONE (1ULL << IL_CONN_INFLIGHT_SHIFT)
#define IL_CONN_COUNTS_MASK 0xffffffffULL

static inline uint32_t il_connword_gen(uint64_t word)
{
    return (uint32_t)(word >> 32) & IL_CONN_GEN_MASK;
}
static inline uint32_t il_connword_refs(uint64_t word)
{
    return (uint32_t)word & IL_CONN_REFS_MAX;
}
static inline uint32_t il_connword_inflight(uint64_t word)
{
    return (uint32_t)word >> IL_CONN_INFLIGHT_SHIFT;
}
static inline int il_connword_in_use(uint64_t word)
{
    return (word & IL_CONN_COUNTS_MASK) != 0;
}

/* Takes a free slot for a connection counted under key_index, with one
 * reference. Returns the handle, or 0 when no free slot was found. */
uint64_t il_conntab_alloc(struct il_shm *shm, uint32_t key_index);

/* Adds a reference (dup, fork). Returns 0, or -1 if the handle is stale. */
int il_conntab_ref(struct il_shm *shm, uint64_t handle);

/* Drops a reference. Returns the key index when it was the last reference
 * and nothing is in flight (the connection is gone and its key must be
 * released), else IL_NO_KEY. */
uint32_t il_conntab_unref(struct il_shm *shm, uint64_t handle);

/* An fd of the connection is about to be sent by SCM_RIGHTS: one more in
 * flight. Returns 0, or -1 if the handle is stale or the in-flight count
 * is saturated (the fd is then sent without one). */
int il_conntab_send(struct il_shm *shm, uint64_t handle);

/* A send that took an in-flight reference did not send: drops it. Returns
 * the key index when nothing is left, as il_conntab_unref. */
uint32_t il_conntab_unsend(struct il_shm *shm, uint64_t handle);

/* A process received an fd of the connection: with convert, one in flight
 * becomes a reference, or, when none is in flight (sent by a process that
 * could not take one), a reference is added; without convert (MSG_PEEK),
 * a reference is added. Returns 0 and the word it set in *word_out, or -1
 * if the handle is stale. */
int il_conntab_receive(struct il_shm *shm, uint64_t handle, int convert, uint64_t *word_out);

/* The socket's inode of the connection (the socket identity index,
 * sockid.h, matches by it), or 0 if none was recorded for its generation
 * or the handle is stale. */
uint64_t il_conntab_inode(struct il_shm *shm, uint64_t handle);

/* Records the socket's inode for handle, which the caller holds an fd in
 * flight on (handoff.c: taken when an fd is first sent). Returns 0, or -1
 * for an inode too large for the field (then none is recorded). */
int il_conntab_set_inode(struct il_shm *shm, uint64_t handle, uint64_t inode);

/* Bits of the identity field reserved for reconciliation's marks
 * (reconcile.c): never part of an identity (connid.h). */
#define IL_CONN_IDENT_MARKS (3ULL << 62)

/* Records the identity (connid.h) of the connection of handle, which the
 * caller holds a reference on (from il_conntab_alloc): the peer's address
 * (hi, lo), its port (network order) and the local port.
 *
 * Reconciliation marks a slot in use whose ident word does not yet hold
 * the slot's generation: a compare-and-swap from the word it read
 * (reconcile.c, mark_unrecorded). The store of ident here is one store of
 * a value holding the new generation, which the marked value never
 * equals: either the mark lands first and this store overwrites it, or
 * this store lands first and the mark's compare-and-swap fails. A recorded
 * identity therefore never keeps a mark (which would let the next run take
 * a live connection for dead). The release orders the peer's address
 * before it (connid.h). No system call, no read-modify-write: plain stores
 * on the accept path. */
static inline void il_conntab_set_ident(struct il_shm *shm, uint64_t handle, uint64_t hi,
                                        uint64_t lo, uint16_t peer_port_n, uint16_t local_port)
{
    struct il_conn_slot *slot = &shm->conns[il_handle_index(handle)];
    atomic_store_explicit(&slot->peer[0], hi, memory_order_relaxed);
    atomic_store_explicit(&slot->peer[1], lo, memory_order_relaxed);
    atomic_store_explicit(&slot->ident,
                          il_connid_word(il_handle_gen(handle), peer_port_n, local_port),
                          memory_order_release);
}

#endif
