/* The socket identity index: a socket's inode (its st_ino, the inode that
 * sock_diag reports) -> the handle of the counted connection it is.
 *
 * A process that receives an fd by SCM_RIGHTS knows only the fd; fstat
 * gives the inode, and this index the connection, so that the fd becomes
 * a reference like any other (handoff.h). Identities are taken lazily:
 * the first time a counted fd is sent (the sender's fd map has the handle),
 * never at accept.
 *
 * A region of the shared segment (shm.h): one 64-bit entry per connection
 * slot, open addressing over a bounded probe window. An entry names a
 * connection, never an inode: [63:40] generation, [39:32] 8 bits of the
 * inode's hash (to skip most mismatches without touching the slot),
 * [31:0] slot index; 0 is empty. The inode itself is the one recorded in
 * the connection slot, so an entry is trusted only after checking the
 * slot: in use, in the entry's generation, with that inode. An entry whose
 * slot moved on to another generation (or is free) is stale and may be
 * overwritten by any insert; entries are never emptied, so a lookup may
 * stop at the first empty one. Every change is one compare-and-swap: a
 * process killed at any instruction leaves either the old entry or the
 * new one, and a wrong or stale one is never believed. */
#ifndef IL_SOCKID_H
#define IL_SOCKID_H

#include <stdint.h>

#include "shm.h"

#define IL_SOCKID_PROBES 64

/* The live connection whose recorded inode is inode, or 0. */
uint64_t il_sockid_lookup(struct il_shm *shm, uint64_t inode);

/* Makes handle (live, its inode recorded as inode) findable. Returns 0, or
 * -1 when every entry of the probe window is live (the fd is then not
 * recognised by its receivers: it passes as today, uncounted there). */
int il_sockid_insert(struct il_shm *shm, uint64_t handle, uint64_t inode);

#endif
