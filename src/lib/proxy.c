/* PROXY protocol connections: the decision at accept, the pending state
 * and the re-key at the first read (see proxy.h). */
#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "conntab.h"
#include "fdmap.h"
#include "keytab.h"
#include "log.h"
#include "proxyhdr.h"
#include "real.h"

#define DECIDING 0x2u       /* a process is settling the connection now */
#define DECIDING_SPINS 4096 /* how long others wait for it (then they go on) */

static struct il_log_limit malformed_log, timeout_log, full_log;

static uint32_t proxy_word(uint32_t gen, uint32_t flags)
{
    return (gen & IL_CONN_GEN_MASK) << 8 | flags;
}

static struct il_conn_slot *slot_of(uint64_t handle)
{
    uint32_t index = il_handle_index(handle);
    return index < il_state.shm.hdr->conn_slots ? &il_state.shm.conns[index] : NULL;
}

/* Peeks at most IL_PROXY_PEEK bytes without waiting: the real recv, so
 * that the library's own peek never comes back to its wrapper. */
static ssize_t peek(int fd, uint8_t *buf)
{
    return IL_REAL_READ(recv)(fd, buf, IL_PROXY_PEEK, MSG_PEEK | MSG_DONTWAIT);
}

static void log_malformed(const struct il_key *balancer, const struct il_proxy_header *h)
{
    char name[IL_KEY_STRLEN];
    atomic_fetch_add_explicit(&il_state.shm.hdr->proxy_malformed, 1, memory_order_relaxed);
    il_log_limited(&malformed_log, 60, LOG_WARNING,
                   "malformed PROXY header from %s (%s): counted under %s",
                   il_key_format(balancer, name), h->why, name);
}

static bool balancer_of(int fd, struct il_key *balancer)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    return getpeername(fd, (struct sockaddr *)&ss, &len) == 0 &&
           il_key_from_sockaddr(balancer, (struct sockaddr *)&ss, len);
}

void il_proxy_at_accept(int cfd, uint16_t port, const struct il_key *balancer,
                        struct il_decision *d, struct il_proxy_accept *px)
{
    uint8_t buf[IL_PROXY_PEEK];
    int saved_errno = errno;
    ssize_t n = peek(cfd, buf);
    int peek_errno = errno;
    errno = saved_errno;
    if (n < 0) {
        /* Nothing yet (the usual case for an NLB, which sends the header
         * with the client's first bytes): decide at the first read. */
        px->pending = peek_errno == EAGAIN || peek_errno == EWOULDBLOCK;
        return;
    }
    struct il_proxy_header h;
    switch (il_proxy_parse(buf, (size_t)n, &h)) {
    case IL_PROXY_NEED_MORE:
        px->pending = n > 0; /* 0: EOF before any byte, the balancer's own */
        return;
    case IL_PROXY_CLIENT: {
        struct il_decision client;
        if (il_limiter_decide(port, &h.client, &client) && client.policed) {
            *d = client;
            px->proxied = true;
        }
        return;
    }
    case IL_PROXY_MALFORMED:
        log_malformed(balancer, &h);
        return;
    case IL_PROXY_LOCAL:
    default:
        return;
    }
}

uint64_t il_proxy_mark_pending(uint64_t handle)
{
    struct il_conn_slot *slot = slot_of(handle);
    if (!slot)
        return 0;
    atomic_store_explicit(&slot->proxy_since, il_log_now(), memory_order_relaxed);
    /* Release: a process that sees the flag sees when it was set. */
    atomic_store_explicit(&slot->proxy, proxy_word(il_handle_gen(handle), IL_PROXY_WORD_PENDING),
                          memory_order_release);
    return IL_FD_PENDING;
}

void il_proxy_set_via(uint32_t key_slot, const struct il_key *balancer)
{
    struct il_key_slot *slot = &il_state.shm.keys[key_slot];
    uint32_t via = balancer ? il_shm_via_id(&il_state.shm, balancer) : 0;
    if (atomic_load_explicit(&slot->via, memory_order_relaxed) != via)
        atomic_store_explicit(&slot->via, via, memory_order_relaxed);
}

bool il_proxy_pending(uint64_t handle)
{
    struct il_conn_slot *slot = slot_of(handle);
    if (!slot)
        return false;
    uint32_t word = atomic_load_explicit(&slot->proxy, memory_order_acquire);
    return word >> 8 == il_handle_gen(handle) && (word & (IL_PROXY_WORD_PENDING | DECIDING));
}

/* This process's fd map stops saying pending for fd (if it still holds
 * the same entry: another thread may have closed or reused the number). */
static void clear_fd_flag(int fd, uint64_t entry)
{
    if ((unsigned)fd < il_fdmap_size())
        atomic_compare_exchange_strong_explicit(il_fdmap_slot(fd), &entry, entry & ~IL_FD_PENDING,
                                                memory_order_acq_rel, memory_order_relaxed);
}

/* Takes the decision for this process: PENDING -> DECIDING. Returns 1 when
 * won; 0 when it is decided (or being decided, and that is done now, or
 * its decider seems gone). */
static int claim(struct il_conn_slot *slot, uint32_t gen)
{
    uint32_t want = proxy_word(gen, IL_PROXY_WORD_PENDING);
    if (atomic_compare_exchange_strong_explicit(&slot->proxy, &want, proxy_word(gen, DECIDING),
                                                memory_order_acq_rel, memory_order_acquire))
        return 1;
    /* Another process or thread decides: wait until it has, so that this
     * read cannot take the client's bytes from a connection it is about to
     * cut. */
    for (int spin = 0; spin < DECIDING_SPINS; spin++) {
        if (want != proxy_word(gen, DECIDING))
            return 0;
        if (spin % 64 == 63)
            sched_yield();
        want = atomic_load_explicit(&slot->proxy, memory_order_acquire);
    }
    return 0;
}

static void decided(struct il_conn_slot *slot, uint32_t gen)
{
    atomic_store_explicit(&slot->proxy, proxy_word(gen, 0), memory_order_release);
}

/* Ends the connection while the application still holds its fds: RST to
 * the client, the received bytes dropped (connect(AF_UNSPEC) is TCP's
 * "abort"), then the error taken and both directions shut, so that every
 * read in every process returns 0 (EOF) and never a byte of the client. */
static void cut(int fd)
{
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    if (connect(fd, &unspec, sizeof unspec) == 0) {
        int err;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
    shutdown(fd, SHUT_RDWR); /* ENOTCONN after the abort, but it marks both directions shut */
}

/* The header named a client: move the count from the balancer's key to the
 * client's, or cut the connection when the client is over its limit. */
static void rekey(int fd, struct il_conn_slot *slot, const struct il_key *client,
                  const struct il_key *balancer)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &len) != 0 ||
        (local.ss_family != AF_INET && local.ss_family != AF_INET6))
        return;
    uint16_t port = ntohs(local.ss_family == AF_INET ? ((struct sockaddr_in *)&local)->sin_port
                                                      : ((struct sockaddr_in6 *)&local)->sin6_port);
    struct il_decision d;
    if (!il_limiter_decide(port, client, &d) || !d.policed)
        return;
    struct il_shm *shm = &il_state.shm;
    struct il_acquired got;
    enum il_acquire acquired = il_keytab_acquire(shm, &d.verdict.key, d.verdict.limit,
                                                 d.dry_run, &got);
    switch (acquired) {
    case IL_OVER_ADMITTED: /* counted anyway (dry run) */
    case IL_ADMITTED: {
        il_proxy_set_via(got.index, balancer); /* before the log line, which names it */
        if (acquired == IL_OVER_ADMITTED)
            il_limiter_note_rejection(&d, &got, 1, IL_REASON_LIMIT);
        /* The fd this process reads holds a reference, so the last unref
         * (conntab.c) comes after this exchange and releases the new key. */
        uint32_t old = atomic_exchange_explicit(&slot->key_index, got.index, memory_order_acq_rel);
        if (old != IL_NO_KEY)
            il_keytab_release(shm, old);
        return;
    }
    case IL_OVER_LIMIT:
        /* Stays counted under the balancer until the application closes
         * it (at once, when it reads EOF). */
        il_proxy_set_via(got.index, balancer);
        il_limiter_note_rejection(&d, &got, 0, IL_REASON_LIMIT);
        atomic_fetch_add_explicit(&shm->hdr->proxy_rejected, 1, memory_order_relaxed);
        cut(fd);
        return;
    case IL_TABLE_FULL:
    default: {
        char name[IL_KEY_STRLEN];
        atomic_fetch_add_explicit(&shm->stats->untracked, 1, memory_order_relaxed);
        il_log_limited(&full_log, 60, LOG_ERR,
                       "key table full (capacity %u): %s stays counted under its balancer; "
                       "raise IPLIMIT_CAPACITY",
                       shm->hdr->key_slots / 2, il_key_format(&d.verdict.key, name));
        return;
    }
    }
}

static bool call_blocks(int fd, int flags)
{
    if (flags & MSG_DONTWAIT)
        return false;
    int fl = IL_REAL(fcntl)(fd, F_GETFL);
    return fl >= 0 && !(fl & O_NONBLOCK);
}

/* Settles one pending connection: returns 0 when it is decided (or left
 * to its balancer), 1 when the header is still incomplete. */
static int try_settle(int fd, uint64_t handle, struct il_conn_slot *slot, bool expired)
{
    uint32_t gen = il_handle_gen(handle);
    uint8_t buf[IL_PROXY_PEEK];
    ssize_t n = peek(fd, buf);
    struct il_proxy_header h;
    enum il_proxy_result r;
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return 0; /* the real call reports the error; the balancer keeps it */
        r = IL_PROXY_NEED_MORE;
    } else if (n == 0) {
        r = IL_PROXY_LOCAL; /* EOF without a header: the balancer's own connection */
    } else {
        r = il_proxy_parse(buf, (size_t)n, &h);
    }
    if (r == IL_PROXY_NEED_MORE && !expired)
        return 1;
    if (!claim(slot, gen))
        return 0;
    struct il_key balancer;
    bool known = balancer_of(fd, &balancer);
    if (r == IL_PROXY_CLIENT && known) {
        rekey(fd, slot, &h.client, &balancer);
    } else if (r == IL_PROXY_MALFORMED && known) {
        log_malformed(&balancer, &h);
    } else if (r == IL_PROXY_NEED_MORE) {
        char name[IL_KEY_STRLEN] = "?";
        if (known)
            il_key_format(&balancer, name);
        il_log_limited(&timeout_log, 60, LOG_WARNING,
                       "no complete PROXY header from %s within %d s: counted under %s", name,
                       IL_PROXY_WAIT_SECONDS, name);
    }
    decided(slot, gen);
    return 0;
}

int il_proxy_settle(int fd, uint64_t entry, int flags)
{
    int saved_errno = errno;
    uint64_t handle = entry & IL_FD_HANDLE_MASK;
    struct il_conn_slot *slot = il_active() && il_fd_is_conn(entry) ? slot_of(handle) : NULL;
    bool blocks = false, blocks_known = false;
    while (slot && il_proxy_pending(handle)) {
        uint32_t since = atomic_load_explicit(&slot->proxy_since, memory_order_relaxed);
        uint32_t waited = il_log_now() - since;
        if (try_settle(fd, handle, slot, waited >= IL_PROXY_WAIT_SECONDS) == 0)
            break;
        /* No complete header yet. A peek by the application consumes
         * nothing: let it through. Any other read must not take the
         * header's first bytes: a non-blocking one gets EAGAIN, as if
         * nothing had arrived; a blocking one waits (it would have). */
        if (flags & MSG_PEEK)
            break;
        if (!blocks_known) {
            blocks = call_blocks(fd, flags);
            blocks_known = true;
        }
        if (!blocks) {
            errno = EAGAIN;
            return -1;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left_ms = (int)(IL_PROXY_WAIT_SECONDS - waited) * 1000;
        uint8_t one;
        if (IL_REAL_READ(recv)(fd, &one, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
            /* Part of a header is there: poll would return at once. */
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        } else {
            poll(&pfd, 1, left_ms > 0 ? (left_ms < 1000 ? left_ms : 1000) : 0);
        }
    }
    if (slot == NULL || !il_proxy_pending(handle))
        clear_fd_flag(fd, entry);
    errno = saved_errno;
    return 0;
}
