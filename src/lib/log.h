/* Logging: every line starts "iplimit[PID]: ", goes to syslog (one
 * datagram straight to /dev/log, identifier iplimit; stderr when there is
 * no /dev/log), stderr or nowhere, and nothing a peer can trigger is
 * logged without a rate limit. syslog(3) is never called. */
#ifndef IL_LOG_H
#define IL_LOG_H

#include <stdatomic.h>
#include <stdint.h>
#include <syslog.h>

#include "shm.h"

#define IL_LOG_LINES_PER_SECOND 20 /* rejection lines, all keys together */

void il_log_set_target(int target);
int il_log_target(void);

void il_log(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Seconds on a clock that all processes share and that never goes back;
 * read through the vDSO, no syscall. Never 0. */
uint32_t il_log_now(void);

/* A cause of failing open (table full, mapping failed...): logged at most
 * once per interval per process, with a count of what was not logged. */
struct il_log_limit {
    _Atomic uint32_t window;
    _Atomic uint32_t suppressed;
};
void il_log_limited(struct il_log_limit *limit, uint32_t interval, int priority, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

/* A rejection (or, in a dry run, a would-be rejection) of a peer of the key
 * in slot key_index: the first in each interval is logged, the rest are
 * summed into one "N more rejected" line when the next interval begins. */
void il_log_rejection(struct il_shm *shm, uint32_t key_index, const struct il_key *key,
                      uint32_t count, uint32_t limit, int dry_run, uint32_t interval);

/* The same for a connection over the key's new-connection rate; the
 * per-key interval is shared with the rejections over the limit. */
void il_log_rate_rejection(struct il_shm *shm, uint32_t key_index, const struct il_key *key,
                           uint32_t rate, uint32_t burst, int dry_run, uint32_t interval);

#endif
