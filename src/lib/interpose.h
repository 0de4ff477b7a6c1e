/* The wrappers' common work, shared by the libc wrappers (interpose.c) and
 * the raw system calls made through syscall() (interpose_syscall.c). Each
 * takes the function that does the real call, so a raw syscall keeps raw
 * semantics (no cancellation point, no libc side effects). */
#ifndef IL_INTERPOSE_H
#define IL_INTERPOSE_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef int il_accept_fn(int lfd, struct sockaddr *addr, socklen_t *addrlen, int flags);

/* accept/accept4: counts or refuses the connection (limiter.h). */
int il_accept(int lfd, struct sockaddr *addr, socklen_t *addrlen, int flags, il_accept_fn *real);

/* close of an fd with a map entry: releases it, or, for one of the
 * library's own fds, reports success without closing it. */
int il_close_known(int fd, int (*real_close)(int));

/* Where close() sends a counted connection (interpose.c): resolved, once
 * il_real_resolve has said whether libc's close is next (init.c); a way
 * that asks whether this is a vfork child, from the first vfork on
 * (interpose_vfork.c, interpose_clone.c); the cancellable way for good,
 * once pthread_cancel was called (interpose_cancel.c). */
void il_close_way_resolved(bool libc_next);
void il_close_way_vforked(void) __attribute__((visibility("hidden")));
void il_close_way_cancellable(void);

/* close_range: releases the range, skips the library's own fds. */
int il_close_range(unsigned first, unsigned last, int flags,
                   int (*closer)(unsigned, unsigned, int));

/* dup, dup2, dup3, F_DUPFD*: begin before the real call (moves the
 * library's fd off newfd, takes the fork lock when a known fd is
 * involved), end after it (result now refers to what oldfd does). newfd is
 * -1 when the kernel chooses the number. */
struct il_dup {
    bool moved;  /* the library's fd was moved off newfd */
    bool locked; /* the fork lock is held shared */
};
struct il_dup il_dup_begin(int oldfd, int newfd);
int il_dup_end(struct il_dup d, int oldfd, int newfd, int result);

/* A fork that runs no atfork handlers (raw clone, libc's clone()):
 * references for the child's copies before, under the fork lock; after,
 * in the parent (taken back if pid < 0) and in the child (pid 0). */
bool il_fork_prepare(void);
void il_fork_done(bool track, long pid);

/* Whether this thread is a vfork child's (interpose_vfork.c): the fd map
 * and the own-fd records are the parent's, the fd table is not; the
 * wrappers then make the real call and record nothing. close() of a
 * counted fd looks at the mark only once the process has vforked
 * (il_close_way_vforked). */
extern _Thread_local int il_vfork_mark
    __attribute__((tls_model("initial-exec"), visibility("hidden")));

static inline bool il_vfork_child(void)
{
    return __builtin_expect(__atomic_load_n(&il_vfork_mark, __ATOMIC_RELAXED) != 0, 0);
}

/* syscall(SYS_execve, ...) / syscall(SYS_execveat, ...) with inheritance. */
long il_exec_raw(long nr, long a, long b, long c, long d, long e);

#endif
