/* Who reconciles, and when.
 *
 * One process of the service owns reconciliation (hdr->rec_owner). Its
 * reconciler thread ("iplimit-rec") sleeps until hdr->rec_next_run, moves
 * it one interval on, and does the run (reconcile.h): no accept ever waits
 * for a run.  Every accept in the other processes only checks, with a
 * coarse clock read and one load, that the due time keeps moving (with
 * reconciliation off none does: each process keeps the schedule per
 * policy generation); once it is IL_RECONCILER_GRACE_MS late (the owner was killed, stopped or exec'd,
 * or it was never started), the accept that wins a compare-and-swap on the
 * due time takes ownership and starts a thread of its own; a thread that
 * finds another owner exits.
 *
 * With reconcile_thread = no, or where no thread can be started (seccomp,
 * no memory), that accept does the run inline instead, bounded by
 * IL_RECONCILE_DEADLINE_MS: the design before the thread existed, kept for
 * hosts that must stay single-threaded (docs/failure-model.md). */
#ifndef IL_RECONCILER_H
#define IL_RECONCILER_H

#include <stdint.h>
#include <sys/types.h>

#include "shm.h"

#define IL_RECONCILER_GRACE_MS 1000 /* a late owner taken over by mistake costs one extra run */

/* The accept path: self is this process's pid; now_ms is a reading of
 * CLOCK_MONOTONIC_COARSE in ms that the accept already took (the rate
 * limit's), or 0 to read it here if needed. Preserves errno. */
void il_reconcile_tick(struct il_shm *shm, pid_t self, uint64_t now_ms);

#endif
