/* Reconciliation: the shared tables checked against the kernel's own
 * socket table (sock_diag over netlink), so that counts heal from what
 * LD_PRELOAD cannot see (a process killed by SIGKILL, a close done by a raw
 * syscall).  docs/failure-model.md says what it corrects and what not.
 *
 * A run is one pass, bounded in time (IL_RECONCILE_DEADLINE_MS); who runs
 * it and when is reconciler.h's job. */
#ifndef IL_RECONCILE_H
#define IL_RECONCILE_H

#include "shm.h"

#define IL_RECONCILE_DEADLINE_MS 200 /* a run that takes longer is abandoned */
/* The same in the reconciler thread, which delays no accept: a run there
 * may take the kernel's walks of a machine with hundreds of thousands of
 * sockets under load (BENCHMARKS.md, reccost) and still finish. */
#define IL_RECONCILE_THREAD_DEADLINE_MS 2000

/* One run now, whatever the schedule. Returns 0, or -errno if it was
 * abandoned (nothing was changed then). */
int il_reconcile_run(struct il_shm *shm);

/* The same with another deadline (the reconciler thread's). */
int il_reconcile_run_within(struct il_shm *shm, unsigned deadline_ms);

#endif
