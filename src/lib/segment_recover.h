/* Reopening the service's segment when the library's kept fd to it was
 * closed behind its back (inline assembly, a raw system call made without
 * libc's syscall()): a program exec'd afterwards must still join the
 * service's table. */
#ifndef IL_SEGMENT_RECOVER_H
#define IL_SEGMENT_RECOVER_H

#include <stddef.h>
#include <stdint.h>

#include "shm.h"

/* Returns a new close-on-exec fd to the segment mapped at shm, whose file
 * is (dev, ino) and which processes forked from the same keeper hold as
 * fd lost_fd, or -1. Tried in turn:
 *   /proc/PID/fd/lost_fd of the service's first process, of this one's
 *     parent, and of their children (a fork inherits the number; the file
 *     is stat()ed before it is opened, so nothing else is ever opened);
 *   /proc/self/map_files/ of the mapping itself (privileged processes).
 * The path that worked is copied to from (from_len bytes).
 * No malloc, no lock: runs between fork and exec. */
int il_segment_recover(const struct il_shm *shm, int lost_fd, uint64_t dev, uint64_t ino,
                       char *from, size_t from_len);

#endif
