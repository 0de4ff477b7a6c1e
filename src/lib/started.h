/* What the service was started with: the IPLIMIT_* settings in the
 * environment of the process that created the segment, kept in the
 * segment's header for iplimit reload and check --pid. They read
 * /proc/PID/environ first; a server that writes its process title over
 * its environment (nginx, Redis, sshd, PostgreSQL) leaves nothing to read
 * there, and this record stands in for it. */
#ifndef IL_STARTED_H
#define IL_STARTED_H

#include <stdbool.h>

#include "shm.h"

enum il_started_state {
    IL_STARTED_NONE = 0,      /* not recorded */
    IL_STARTED_COMPLETE = 1,  /* every setting is there */
    IL_STARTED_TRUNCATED = 2, /* they did not fit: some are missing */
};

/* Records envp's IPLIMIT_* settings (not the exec hand-over variables),
 * IPLIMIT_CONFIG made absolute against the working directory. */
void il_started_record(struct il_shm_header *hdr, char *const *envp);

/* Whether entry (NAME=VALUE) is a setting the record keeps. */
bool il_started_is_setting(const char *entry);

#endif
