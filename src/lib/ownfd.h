/* The library's own fds in the host's fd table: the kept copy of the
 * segment (inherit.c) and reconciliation's netlink socket (reconcile.c).
 *
 * A host may close fds it does not own (Kamailio closes 3..31 at startup;
 * a closefrom() in a threaded process) and get the number back for a file
 * of its own. So an fd of ours is moved above the numbers hosts use, and
 * is recognised by what it is (device and inode) before every use and
 * before it is closed: the library never reads, passes on or closes a
 * host's fd by mistake. */
#ifndef IL_OWNFD_H
#define IL_OWNFD_H

#include <stdbool.h>
#include <sys/types.h>

#define IL_OWN_FD_MIN 200 /* above the 3..31 that Kamailio and others close */

struct il_own_fd {
    int fd; /* -1: none */
    dev_t dev;
    ino_t ino;
};

/* Takes fd over: moves it to IL_OWN_FD_MIN or above (close-on-exec) where
 * the fd limit allows, and records what it is. Returns 0, or -errno with
 * fd closed and own->fd -1. */
int il_own_fd_take(struct il_own_fd *own, int fd);

/* Whether own->fd is still the file it was taken as. */
bool il_own_fd_valid(const struct il_own_fd *own);

/* Closes own->fd if it is still ours, and forgets it. */
void il_own_fd_close(struct il_own_fd *own);

#endif
