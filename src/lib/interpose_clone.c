/* libc's clone(): a child that copies the memory and the fd table (no
 * CLONE_VM, CLONE_FILES or CLONE_THREAD) is a fork, and its inherited
 * copies of counted fds are references, as for fork() and raw clones
 * (interpose_syscall.c). A child that shares the memory and copies the fd
 * table while the parent waits (CLONE_VM | CLONE_VFORK, without
 * CLONE_FILES, CLONE_THREAD or CLONE_SETTLS) is a vfork child, marked as
 * vfork()'s are (interpose_vfork.c). Other clones go straight through. */
#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "interpose.h"

typedef int clone_fn(int (*)(void *), void *, int, void *, ...);

static clone_fn *_Atomic real_clone;

/* What the child needs; on the parent's stack, which the child has a copy
 * of at the same address (no CLONE_VM), or shares (vfork-like, below). */
struct clone_start {
    int (*fn)(void *);
    void *arg;
    bool track;
};

static int clone_child(void *p)
{
    struct clone_start *start = p;
    il_fork_done(start->track, 0);
    return start->fn(start->arg);
}

/* vfork-like: the child runs on its own stack, in the parent's memory,
 * with the parent thread's TLS (no CLONE_SETTLS), so the mark it sets is
 * the suspended parent thread's word, which the parent clears when clone
 * returns (the child has exec'd or exited by then). */
static bool vfork_like(int flags)
{
    return (flags & (CLONE_VM | CLONE_VFORK)) == (CLONE_VM | CLONE_VFORK) &&
           !(flags & (CLONE_FILES | CLONE_THREAD | CLONE_SETTLS));
}

static int clone_vfork_child(void *p)
{
    struct clone_start *start = p;
    __atomic_store_n(&il_vfork_mark, 1, __ATOMIC_RELAXED);
    return start->fn(start->arg);
}

/* The optional arguments (parent_tid, tls, child_tid) are read whether or
 * not flags use them, as libc's clone reads its registers and stack slot. */
__attribute__((visibility("default"))) int clone(int (*fn)(void *), void *stack, int flags,
                                                 void *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    pid_t *parent_tid = va_arg(ap, pid_t *);
    void *tls = va_arg(ap, void *);
    pid_t *child_tid = va_arg(ap, pid_t *);
    va_end(ap);
    clone_fn *real = atomic_load_explicit(&real_clone, memory_order_acquire);
    if (!real) {
        real = (clone_fn *)dlsym(RTLD_NEXT, "clone");
        if (!real) {
            errno = ENOSYS;
            return -1;
        }
        atomic_store_explicit(&real_clone, real, memory_order_release);
    }
    if (fn && vfork_like(flags)) {
        struct clone_start start = {fn, arg, false};
        il_close_way_vforked();
        int pid = real(clone_vfork_child, stack, flags, &start, parent_tid, tls, child_tid);
        __atomic_store_n(&il_vfork_mark, 0, __ATOMIC_RELAXED);
        return pid;
    }
    if (!fn || (flags & (CLONE_VM | CLONE_FILES | CLONE_THREAD)))
        return real(fn, stack, flags, arg, parent_tid, tls, child_tid);
    struct clone_start start = {fn, arg, il_fork_prepare()};
    int pid = real(clone_child, stack, flags, &start, parent_tid, tls, child_tid);
    il_fork_done(start.track, pid < 0 ? -1 : 1); /* parent: undo if it failed */
    return pid;
}
