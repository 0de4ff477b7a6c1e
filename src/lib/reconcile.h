/* Reconciliation: the shared tables checked against the kernel's own
 * socket table (sock_diag over netlink), so that counts heal from what
 * LD_PRELOAD cannot see (a process killed by SIGKILL, a close done by a raw
 * syscall).  docs/failure-model.md says what it corrects and what not.
 *
 * There is no thread and no daemon: every accept calls il_reconcile_tick,
 * which costs one clock read (vDSO) and one relaxed load; the one accept
 * that finds a run due and wins a compare-and-swap on the shared due time
 * does the run, inline, bounded in time (IL_RECONCILE_DEADLINE_MS). */
#ifndef IL_RECONCILE_H
#define IL_RECONCILE_H

#include "shm.h"

#define IL_RECONCILE_DEADLINE_MS 200 /* a run that takes longer is abandoned */

/* Runs a reconciliation if one is due. Preserves errno. */
void il_reconcile_tick(struct il_shm *shm);

/* One run now, whatever the schedule. Returns 0, or -errno if it was
 * abandoned (nothing was changed then). */
int il_reconcile_run(struct il_shm *shm);

#endif
