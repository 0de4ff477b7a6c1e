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

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define IL_FORK_LOCK_WAIT_NS 2000000000LL

#define IL_FORKING (1u << 31)

/* The lock word and this thread's holds (forklock.c); in the header only
 * so that the uncontended shared hold below is inlined into the close and
 * accept paths (a handful of instructions, not a call). */
extern _Atomic uint32_t il_fork_lock_word __attribute__((visibility("hidden")));
/* This thread's holds, one word so that the uncontended hold tests one
 * load: bits 0..30 count its shared holds (each counted in
 * il_fork_lock_word too), bit 31 (IL_FORK_HELD_EXCLUSIVE) is set while it
 * holds the lock exclusive. */
#define IL_FORK_HELD_EXCLUSIVE (1u << 31)
extern _Thread_local unsigned il_fork_held
    __attribute__((visibility("hidden"), tls_model("initial-exec")));

/* Everything but the uncontended shared hold: nesting, a fork waiting. */
bool il_fork_lock_shared_slow(void);

/* The uncontended shared hold alone: true when it is taken (then
 * il_fork_unlock_shared(true) ends it), false when a fork is under way or
 * this thread holds the lock exclusive; then nothing is held and the
 * caller goes on with il_fork_lock_shared_slow(). For paths that want the
 * common case's release free of the token's test. */
static inline bool il_fork_try_shared(void)
{
    /* The increment is this hold's place in the word's total order
     * (forklock.c): a fork whose bit 31 comes later waits for it. With no
     * fork under way this thread's own holds need no test first: a nested
     * hold (a signal handler inside a close) is one more count, as the
     * slow path would make it; and a thread holding the lock exclusive
     * always finds bit 31 set (its own), so it always reaches the slow
     * path's test of il_fork_held.
     * Bit 31 of the word after the increment is bit 31 before it: the
     * count below it (holds under way) never nears 2^31, so no carry
     * reaches it. Testing the new value's sign lets the compiler use the
     * flags of the locked add itself (x86: lock add, js). */
    int32_t now = (int32_t)atomic_fetch_add_explicit(&il_fork_lock_word, 1, memory_order_seq_cst) + 1;
    if (__builtin_expect(now >= 0, 1)) {
        il_fork_held++;
        return true;
    }
    atomic_fetch_sub_explicit(&il_fork_lock_word, 1, memory_order_seq_cst);
    return false;
}

/* Shared hold. Returns a token for il_fork_unlock_shared: false when the
 * operation went ahead without the lock (the bound passed). */
static inline bool il_fork_lock_shared(void)
{
    if (__builtin_expect(il_fork_try_shared(), 1))
        return true;
    return il_fork_lock_shared_slow();
}

static inline void il_fork_unlock_shared(bool token)
{
    if (!token)
        return;
    il_fork_held--;
    /* Release: this hold's map updates before the fork's drain sees it gone. */
    atomic_fetch_sub_explicit(&il_fork_lock_word, 1, memory_order_release);
}

/* Exclusive hold, for the walk and the fork. Returns false when another
 * fork kept it past the bound (then nothing is held). */
bool il_fork_lock_exclusive(void);
void il_fork_unlock_exclusive(bool token);

/* In the child of a fork made under the exclusive hold: only this thread
 * exists, so only its own shared holds remain. */
void il_fork_lock_child(void);

#endif
