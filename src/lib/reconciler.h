/* Who reconciles, and when.
 *
 * One process of the service owns reconciliation (hdr->rec_owner). Its
 * reconciler thread ("iplimit-rec") sleeps until hdr->rec_next_run, moves
 * it one interval on, and does the run (reconcile.h): no accept ever waits
 * for a run. The accepts in the other processes only check, with a coarse
 * clock read and one load of their own, that the due time keeps moving
 * (every accept of a quiet process, one in IL_TICK_SKIP + 1 of a busy one;
 * with reconciliation off none does: each process keeps the schedule per
 * policy generation); once it is IL_RECONCILER_GRACE_MS late (the owner
 * was killed, stopped or exec'd, or it was never started), the accept
 * that wins a compare-and-swap on the due time takes ownership and starts
 * a thread of its own; a thread that finds another owner exits.
 *
 * With reconcile_thread = no, or where no thread can be started (seccomp,
 * no memory), that accept does the run inline instead, bounded by
 * IL_RECONCILE_DEADLINE_MS: the design before the thread existed, kept for
 * hosts that must stay single-threaded (docs/failure-model.md). */
#ifndef IL_RECONCILER_H
#define IL_RECONCILER_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm.h"

#define IL_RECONCILER_GRACE_MS 1000 /* a late owner taken over by mistake costs one extra run */
/* A process whose clock reads at the tick come less than IL_TICK_BUSY_MS
 * apart skips the read at its next IL_TICK_SKIP accepts: above about 300
 * accepts a second the check costs one read in 16, and a takeover comes at
 * most IL_TICK_SKIP accepts later than it would (after a burst that then
 * stops, that many accepts of whatever comes next). */
#define IL_TICK_SKIP 15
#define IL_TICK_BUSY_MS 50

/* The pid of this process while its reconciler thread runs, else 0 (a
 * forked child inherits the parent's, never its own). In the header so
 * that the tick's common cases are inline in the accept path. */
extern _Atomic pid_t il_rec_thread_pid __attribute__((visibility("hidden")));
/* The last policy generation (all 64 bits) a tick found reconciliation
 * off for, else 0 (no generation is 0: shm.c starts them at 1). Checked
 * first, one load and a compare, so that with reconciliation off the tick
 * costs next to nothing; any reload bumps the generation, so a value left
 * from an older policy never matches again. */
extern _Atomic uint64_t il_rec_off_generation __attribute__((visibility("hidden")));

/* How many of this process's next accepts leave the clock alone
 * (reconciler.c): a busy process that does not own the runs reads it in
 * one accept of IL_TICK_SKIP + 1. Per process; threads that race on it
 * make one read more or fewer, nothing else. */
extern _Atomic uint32_t il_rec_tick_skip __attribute__((visibility("hidden")));

void il_reconcile_tick_slow(struct il_shm *shm, pid_t self, uint64_t now_ms, uint64_t generation);

/* The accept path: self is this process's pid; now_ms is a reading of
 * CLOCK_MONOTONIC_COARSE in ms that the accept already took (the rate
 * limit's), or 0 to read it here if needed; generation the policy
 * generation the accept read. Preserves errno. Inline, no call, when this
 * process's thread reconciles or reconciliation is off. */
static inline void il_reconcile_tick_gen(struct il_shm *shm, pid_t self, uint64_t now_ms,
                                         uint64_t generation)
{
    if (generation == atomic_load_explicit(&il_rec_off_generation, memory_order_relaxed))
        return;
    if (__builtin_expect(atomic_load_explicit(&il_rec_thread_pid, memory_order_relaxed) == self, 1))
        return;
    /* Another process's thread runs them (or nobody's yet): the clock
     * says whether the runs still keep time (reconciler.c), read at every
     * accept of a quiet process and at one in IL_TICK_SKIP + 1 of a busy
     * one. */
    uint32_t skip = atomic_load_explicit(&il_rec_tick_skip, memory_order_relaxed);
    if (__builtin_expect(skip != 0, 1)) {
        atomic_store_explicit(&il_rec_tick_skip, skip - 1, memory_order_relaxed);
        return;
    }
    il_reconcile_tick_slow(shm, self, now_ms, generation);
}

static inline void il_reconcile_tick(struct il_shm *shm, pid_t self, uint64_t now_ms)
{
    il_reconcile_tick_gen(shm, self, now_ms,
                          atomic_load_explicit(&shm->hdr->policy_generation, memory_order_acquire));
}

#endif
