/* The fork lock: makes a fork see each counted fd either before or after
 * any change to it by another thread, never half-way.
 *
 * A fork copies the fd map and the kernel's fd table at one instant, and
 * the child's references must be exactly the counted fds in that copy.
 * Before the fork, one reference is taken per counted fd found by a walk of
 * the map (limiter.c); the walk and the copy are two moments, and an fd
 * closed or dup'ed by another thread between them would leave the child a
 * reference with no fd (a phantom count) or an fd with no reference.
 *
 * So the operations that change a counted fd hold this lock shared around
 * their map update and their real call (close of a known fd, fclose, dup of
 * or onto a known fd, close_range/closefrom, accept's store, _exit/exec
 * releases), and the fork holds it exclusive around the walk and the real
 * fork. Private memory, per process: threads share it, a child starts with
 * it free. close() of an fd the library does not know never touches it.
 *
 * It never hangs the host: a thread that already holds it (a signal handler
 * interrupting a close, or code run inside the fork) goes through, and every
 * wait is bounded (IL_FORK_LOCK_WAIT_NS); past the bound the operation goes
 * ahead without the lock, and the count may be inexact for that one fd
 * (docs/failure-model.md). */
#ifndef IL_FORKLOCK_H
#define IL_FORKLOCK_H

#include <stdbool.h>

#define IL_FORK_LOCK_WAIT_NS 2000000000LL

/* Shared hold. Returns a token for il_fork_unlock_shared: false when the
 * operation went ahead without the lock (the bound passed). */
bool il_fork_lock_shared(void);
void il_fork_unlock_shared(bool token);

/* Exclusive hold, for the walk and the fork. Returns false when another
 * fork kept it past the bound (then nothing is held). */
bool il_fork_lock_exclusive(void);
void il_fork_unlock_exclusive(bool token);

/* In the child of a fork made under the exclusive hold: only this thread
 * exists, so only its own shared holds remain. */
void il_fork_lock_child(void);

#endif
