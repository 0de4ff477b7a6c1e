/* Holding off forks while the library is half-way through something a
 * child must not inherit half done: an own fd opened at a low number and
 * not yet moved above IL_OWN_FD_MIN (ownfd.h), a /dev/log socket, the
 * reconciler thread between pthread_create and its first instruction
 * (glibc marks a new thread "not started" until then; a child cloned in
 * that window waits for ever in setuid/setgroups, whose broadcast waits
 * for every thread glibc knows of).
 *
 * A window is short (a few system calls, or a thread start bounded to
 * IL_FORKGATE_WAIT_MS). Forks wait for open windows in the atfork prepare
 * handler (init.c), and windows wait for forks in progress; every wait is
 * bounded, so a stuck peer costs at most a delay, never a hang. A fork
 * from inside a window of its own thread (a signal handler) does not wait
 * for itself. */
#ifndef IL_FORKGATE_H
#define IL_FORKGATE_H

#define IL_FORKGATE_WAIT_MS 1000

/* Opens a window in this thread (they nest). */
void il_forkgate_enter(void);
/* Closes it. */
void il_forkgate_leave(void);

/* Around a fork or a clone without CLONE_VM, in the forking thread:
 * prepare before it, then parent in the parent (or after a failed fork),
 * child in the child. */
void il_forkgate_prepare(void);
void il_forkgate_parent(void);
void il_forkgate_child(void);

#endif
