/* Logging and its rate limits (see log.h). */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "forkgate.h"
#include "ownfd.h"
#include "policy.h"
#include "real.h"

static _Atomic int log_target = IL_LOG_SYSLOG;

void il_log_set_target(int target)
{
    atomic_store_explicit(&log_target, target, memory_order_relaxed);
}

int il_log_target(void)
{
    return atomic_load_explicit(&log_target, memory_order_relaxed);
}

static void write_stderr(const char *line, size_t len)
{
    /* One write per line, so lines from many processes don't mix. */
    for (size_t off = 0; off < len;) {
        ssize_t w = write(STDERR_FILENO, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

/* One datagram to the local syslog socket (journald or a syslog daemon):
 * "<PRI>iplimit[PID]: message", with no timestamp (the receiver adds one),
 * so the identifier is iplimit whatever the host's openlog() said. This
 * never calls syslog(3): its lock, taken by a host thread, would be held
 * for ever in a child forked meanwhile, and its ident is the host's. The
 * socket lives only for this send and is one of the library's own fds
 * (ownfd.h): a host thread closing fds it does not own cannot make the
 * line go to one of the host's files. Returns 0 if the datagram was sent. */
static int send_dev_log(int priority, const char *line, size_t len)
{
    static const struct sockaddr_un dev_log = {AF_UNIX, "/dev/log"};
    char datagram[600];
    int n = snprintf(datagram, sizeof datagram, "<%d>%.*s", LOG_DAEMON | priority, (int)len,
                     line);
    if (n < 0)
        return -1;
    /* No fork may copy the socket while it exists (forkgate.h), and while
     * it does it is one of the library's own fds (ownfd.h): a host's
     * closefrom() skips it, and it is checked before the send. */
    il_forkgate_enter();
    int sent = 0;
    int fd = il_raw_socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct il_own_fd *s = fd >= 0 ? il_own_fd_take(fd) : NULL;
    if (s) {
        size_t size = (size_t)n < sizeof datagram ? (size_t)n : sizeof datagram - 1;
        sent = il_own_fd_valid(s) &&
               sendto(il_own_fd_num(s), datagram, size, MSG_DONTWAIT | MSG_NOSIGNAL,
                      (const struct sockaddr *)&dev_log, sizeof dev_log) == (ssize_t)size;
        il_own_fd_close(s);
    }
    il_forkgate_leave();
    return sent ? 0 : -1;
}

/* Every line of every process and thread takes this one path. */
static void emit(int priority, const char *fmt, va_list ap)
{
    int target = il_log_target();
    if (target == IL_LOG_NONE)
        return;
    int saved_errno = errno;
    char line[512];
    int n = snprintf(line, sizeof line, "iplimit[%d]: ", (int)getpid());
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    /* No /dev/log (a container, a chroot): the line goes to stderr. */
    if (target != IL_LOG_SYSLOG || send_dev_log(priority, line, len) != 0) {
        line[len++] = '\n';
        write_stderr(line, len);
    }
    errno = saved_errno;
}

void il_log(int priority, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(priority, fmt, ap);
    va_end(ap);
}

uint32_t il_log_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint32_t)ts.tv_sec + 1;
}

/* Starts a new window if the current one is over. Returns 1 for the caller
 * that started it (and so logs), with the seconds the old window lasted:
 * 0 for the very first window (intervals are at least 1 s). Rejections
 * that race with the first window's start are counted as suppressed and
 * reported with the next window, so each is accounted for exactly once. */
static int open_window(_Atomic uint32_t *window, uint32_t interval, uint32_t now,
                       uint32_t *elapsed)
{
    uint32_t start = atomic_load_explicit(window, memory_order_relaxed);
    if (start != 0 && now - start < interval)
        return 0;
    if (!atomic_compare_exchange_strong_explicit(window, &start, now, memory_order_relaxed,
                                                 memory_order_relaxed))
        return 0;
    *elapsed = start ? now - start : 0;
    return 1;
}

void il_log_limited(struct il_log_limit *limit, uint32_t interval, int priority, const char *fmt,
                    ...)
{
    uint32_t elapsed;
    if (!open_window(&limit->window, interval, il_log_now(), &elapsed)) {
        atomic_fetch_add_explicit(&limit->suppressed, 1, memory_order_relaxed);
        return;
    }
    uint32_t missed =
        elapsed ? atomic_exchange_explicit(&limit->suppressed, 0, memory_order_relaxed) : 0;
    va_list ap;
    va_start(ap, fmt);
    emit(priority, fmt, ap);
    va_end(ap);
    if (missed)
        il_log(priority, "(%u more like the line above in the last %u s)", missed, elapsed);
}

/* At most IL_LOG_LINES_PER_SECOND rejection lines a second for the whole
 * service, so that a flood from many keys cannot flood the log either. */
static int global_budget(struct il_shm_header *hdr, uint32_t now, uint64_t *dropped)
{
    uint32_t second = atomic_load_explicit(&hdr->log_second, memory_order_relaxed);
    if (second != now &&
        atomic_compare_exchange_strong_explicit(&hdr->log_second, &second, now,
                                                memory_order_relaxed, memory_order_relaxed)) {
        atomic_store_explicit(&hdr->log_lines, 0, memory_order_relaxed);
        *dropped = atomic_exchange_explicit(&hdr->log_dropped, 0, memory_order_relaxed);
    }
    if (atomic_fetch_add_explicit(&hdr->log_lines, 1, memory_order_relaxed) <
        IL_LOG_LINES_PER_SECOND)
        return 1;
    atomic_fetch_add_explicit(&hdr->log_dropped, 1, memory_order_relaxed);
    return 0;
}

/* Logs "rejected KEY: why" unless the key or the service is over its log
 * budget. */
static void log_rejection(struct il_shm *shm, uint32_t key_index, const struct il_key *key,
                          int dry_run, uint32_t interval, const char *why)
{
    if (il_log_target() == IL_LOG_NONE)
        return;
    struct il_key_slot *slot = &shm->keys[key_index];
    uint32_t now = il_log_now(), elapsed;
    if (!open_window(&slot->log_window, interval, now, &elapsed)) {
        atomic_fetch_add_explicit(&slot->log_suppressed, 1, memory_order_relaxed);
        return;
    }
    uint64_t dropped = 0;
    int within_budget = global_budget(shm->hdr, now, &dropped);
    if (dropped)
        il_log(LOG_WARNING, "%llu rejection lines not logged (more than %d a second)",
               (unsigned long long)dropped, IL_LOG_LINES_PER_SECOND);
    if (!within_budget)
        return;
    char name[IL_KEY_STRLEN];
    il_key_format(key, name);
    uint32_t missed =
        elapsed ? atomic_exchange_explicit(&slot->log_suppressed, 0, memory_order_relaxed) : 0;
    const char *verb = dry_run ? "would reject" : "rejected";
    if (missed)
        il_log(LOG_WARNING, "%s: %u more %s in the last %u s", name, missed,
               dry_run ? "would be rejected" : "rejected", elapsed);
    /* A client keyed from a PROXY header: say which balancer it came through. */
    char via[IL_KEY_STRLEN + 5] = "";
    struct il_key balancer;
    if (il_shm_via_read(shm, atomic_load_explicit(&slot->via, memory_order_relaxed), &balancer)) {
        memcpy(via, " via ", 5);
        il_key_format(&balancer, via + 5);
    }
    il_log(LOG_WARNING, "%s %s%s: %s%s", verb, name, via, why, dry_run ? " (dry run)" : "");
}

void il_log_rejection(struct il_shm *shm, uint32_t key_index, const struct il_key *key,
                      uint32_t count, uint32_t limit, int dry_run, uint32_t interval)
{
    char why[64];
    if (il_log_target() == IL_LOG_NONE)
        return;
    snprintf(why, sizeof why, "%u open, limit %u", count, limit);
    log_rejection(shm, key_index, key, dry_run, interval, why);
}

void il_log_rate_rejection(struct il_shm *shm, uint32_t key_index, const struct il_key *key,
                           uint32_t rate, uint32_t burst, int dry_run, uint32_t interval)
{
    char why[64];
    if (il_log_target() == IL_LOG_NONE)
        return;
    snprintf(why, sizeof why, "rate %u/s exceeded (burst %u)", rate, burst);
    log_rejection(shm, key_index, key, dry_run, interval, why);
}
