/* The library's own fds in the host's fd table: the kept copy of the
 * segment (inherit.c) and reconciliation's netlink socket while a dump
 * runs (reconcile.c). docs/design.md lists them.
 *
 * A host may close fds it does not own (Kamailio closes 3..31 at startup;
 * daemons call closefrom(3) or close_range(3, ~0U, 0)) and get the number
 * back for a file of its own. So an fd of ours:
 *   - is moved above the numbers hosts use (IL_OWN_FD_MIN, or the top of
 *     the fd limit when that is lower: a host under `ulimit -n 64` keeps
 *     its fd 3);
 *   - is marked IL_FD_OWN in the fd map, so that the host's close() of it
 *     reports success without closing it (the host never opened it),
 *     closefrom/close_range skip it, and dup2/dup3 onto it move it first
 *     (interpose.c, closerange.c);
 *   - is recognised by what it is (device and inode) before every use and
 *     before it is closed: the library never reads, passes on or closes a
 *     host's fd by mistake, even if its own was closed behind its back
 *     (inline assembly) and the number reused.
 *
 * Own fds live in a small static registry (never on a stack): any thread
 * may look one up while another closes or moves it. */
#ifndef IL_OWNFD_H
#define IL_OWNFD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define IL_OWN_FD_MIN 200 /* above the 3..31 that Kamailio and others close */
#define IL_OWN_FD_SLOTS 8 /* the segment, a dump's socket, an exec's copy, spare */

struct il_own_fd {
    _Atomic int busy;      /* slot taken */
    _Atomic int fd;        /* current number, -1: none; changes when moved */
    _Atomic uint64_t dev;  /* identity, written before fd is published */
    _Atomic uint64_t ino;
};

/* The number where an fd of the library goes: the lowest free one at or
 * above IL_OWN_FD_MIN, or, when the fd limit is at or below it, the highest
 * free one below the limit. Returns the new fd (close-on-exec) duplicated
 * from fd, or -errno; fd itself is left as it is. */
int il_own_fd_place(int fd);

/* Takes fd over: moves it (il_own_fd_place) where the limit allows, marks
 * it in the fd map and records what it is. Returns the registry slot, or
 * NULL with errno set and fd closed. */
struct il_own_fd *il_own_fd_take(int fd);

/* The slot's current fd number, or -1. */
static inline int il_own_fd_num(const struct il_own_fd *own)
{
    return own ? atomic_load_explicit((_Atomic int *)&own->fd, memory_order_acquire) : -1;
}

/* Whether own's fd is still the file it was taken as. */
bool il_own_fd_valid(const struct il_own_fd *own);

/* Closes own's fd if it is still ours, clears its mark, frees the slot. */
void il_own_fd_close(struct il_own_fd *own);

/* Whether fd (marked IL_FD_OWN in the fd map) is one of ours right now.
 * A mark whose file changed (our fd was closed behind our back and the
 * number reused) is cleared, and false returned. */
bool il_own_fd_is(int fd);

/* dup2/dup3 are about to replace fd: if it is ours, move it elsewhere
 * first. Returns the slot moved, or NULL (not ours, or it could not be
 * moved: then it is lost to the host, as before this library existed). */
struct il_own_fd *il_own_fd_evict(int fd);

/* After the host's dup2/dup3 onto the old number failed: close the old
 * copy left behind by il_own_fd_evict (oldfd). */
void il_own_fd_evict_failed(int oldfd);

/* Own fds within [first, last], ascending, at most max; returns how many. */
unsigned il_own_fd_list(unsigned first, unsigned last, int *out, unsigned max);

/* Set in a thread that has an fd table of its own (the reconciler thread,
 * reconciler.c): its own fds are in that table, not the host's, so they
 * are never marked in the fd map, which describes the host's table. */
extern _Thread_local int il_own_fds_private __attribute__((visibility("hidden")));

#endif
