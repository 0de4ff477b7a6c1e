/* Exec: handing the shared segment and the counted fds to the new program.
 *
 * A process that execs a program with the library preloaded passes it two
 * variables: IPLIMIT_SEGMENT_FD, an fd (without close-on-exec) to the
 * service's segment, and IPLIMIT_INHERIT, the counted fds that survive the
 * exec with their connection handles. The new program's constructor maps
 * that segment instead of creating one, adopts those fds with the
 * references the old program held, and removes both variables from its
 * environment. So a server that execs its workers (or re-execs itself per
 * connection, as sshd does) keeps one table and exact counts.
 *
 * Everything here runs between fork and exec too: no malloc, no locks;
 * the caller provides the buffers on its stack. */
#ifndef IL_INHERIT_H
#define IL_INHERIT_H

#include <stddef.h>

#include "shm.h"

#define IL_INHERIT_MAX_FDS 256
#define IL_INHERIT_LIST_LEN (IL_INHERIT_MAX_FDS * 32 + 32)

/* Keeps the segment's memfd (close-on-exec, moved above the fds hosts
 * usually close) so that exec can pass it on. */
void il_inherit_keep_segment(int fd);

/* In the constructor: maps the segment passed by the program that exec'd
 * this one and adopts its counted fds. Returns 0, or -1 when nothing was
 * passed or it is unusable (then the caller creates a segment). */
int il_inherit_attach(struct il_shm *shm);

struct il_exec_env {
    char *const *envp; /* what to pass to the real exec */
    int segment_fd;    /* the fd passed on, closed again if exec fails */
};

/* Number of pointers il_inherit_prepare needs for new_envp. */
size_t il_inherit_envp_slots(char *const envp[]);

/* Before exec: fds that close on exec release their counts; if the new
 * program will load the library, the others and the segment are passed in
 * new_envp (sized by il_inherit_envp_slots), else they are released too. */
void il_inherit_prepare(char *const envp[], char **new_envp, char *segment_var,
                        char *inherit_var, struct il_exec_env *out);

/* After an exec that returned (failed). */
void il_inherit_exec_failed(struct il_exec_env *env);

#endif
