/* The limiter (see limiter.h). */
#include "limiter.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connid.h"
#include "conntab.h"
#include "fdmap.h"
#include "forklock.h"
#include "hot.h"
#include "keytab.h"
#include "log.h"
#include "proxy.h"
#include "ratebucket.h"
#include "real.h"
#include "reconciler.h"
#include "rulecache.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

#define POLICY_RETRIES 64

IL_HOT_DATA struct il_state il_state;
_Thread_local int il_in_fork_wrapper __attribute__((tls_model("initial-exec")));
int il_atfork_ready;

/* One rate limit per cause of failing open, as docs/failure-model.md says. */
static struct il_log_limit key_full_log, conn_full_log, busy_log, config_error_log;

/* A service that failed open on a bad configuration says so again at each
 * process's first accept and then at most hourly, for as long as the error
 * stands: the line at startup alone is easy to miss (a daemon's stderr may
 * be /dev/null by then). config_error is written before the segment is
 * shared and never again, but for its first byte, which a reload that
 * repairs the policy clears (iplimit reload); so only that byte can
 * change under this read, and the rest of the text stays terminated. */
static void remind_config_error(void)
{
    const char *error = il_state.shm.hdr->config_error;
    if (__atomic_load_n(&error[0], __ATOMIC_RELAXED))
        il_log_limited(&config_error_log, 3600, LOG_ERR,
                       "config error: %.255s; limiter disabled, all connections pass through",
                       error);
}


/* A policy without per-network rates or PROXY peers, and with at most
 * IL_RULECACHE_MAX rules, is the same for every peer but for its rules
 * (and, with a port list, its listener's port: the port stamp, below): each thread keeps the decision it gives a peer no rule contains,
 * and the rules in plain_rules (rulecache.h), so that later accepts skip
 * the seqlock and judge the rules from the copy. The copy is valid while
 * the policy generation is the one read before it was filled: a reload
 * bumps the generation after publishing, so a copy filled from a newer
 * policy than its generation says is merely refreshed once more. */
struct plain_policy {
    uint64_t generation; /* 0: nothing kept */
    /* generation when the straight path may use the copy, else 0: its one
     * test. The copy may be used when it polices, is no dry run and has no
     * PROXY peers (read_policy). Stamped and cleared with generation (a
     * policy generation is never 0: shm.c starts it at 1). */
    uint64_t fast_generation;
    struct il_decision decision; /* all but verdict.key */
    uint8_t v4_prefix, v6_prefix;
    /* The straight path's key masks are the policy's prefixes applied once to an all-ones key of each family by
     * il_key_mask, so both paths mask alike; each mask is the masked
     * key's address loaded as native words (IPv4: its low word,
     * ::ffff:m.m.m.m, applied to the mapped address). */
    /* The policy polices every port. Else (a port list) decision.policed
     * says only that the policy is enabled, and whether it polices a
     * listener's port is in the listener's port stamp (fdmap.h), which the
     * general path writes once per generation and listener: the straight
     * path reads it from the entry it already loaded. */
    bool all_ports;
    /* No IPv4 rules: an IPv4 peer's limit is decision.verdict.limit and
     * the straight path skips the rule cache for it (admit_v4's copy
     * without rules). rated: the policy has a rate (an unjudged peer's). */
    bool v4_no_rules, rated;
    uint8_t v4_plen, v6_plen;
    uint64_t v4_mask_lo, v6_mask_hi, v6_mask_lo;
    /* The key table's hash of an IPv4 key under v4_plen, prepared
     * (addrkey.h), and the table's slots - 1: the segment's seed and size
     * never change while it is mapped (shm.c maps it once a process). */
    struct il_key_hash_prep v4_hash, v4_hash_exact; /* the second for plen 128 */
    uint32_t key_mask;
    uint32_t count_bound; /* il_keytab_count_bound of decision.verdict.limit */
};
static _Thread_local struct plain_policy plain_policy __attribute__((tls_model("initial-exec")));
/* In a TLS section of its own, after the rest of the library's: its 3.6 KB
 * would otherwise sit between plain_policy and the other per-thread words
 * every accept and close reads, and put them on two pages (hot.h). */
static _Thread_local struct il_rulecache plain_rules
    __attribute__((tls_model("initial-exec"), section(".tbss.il_rules")));
/* Set while read_policy runs in this thread: an accept in a signal handler
 * that interrupts it decides from the policy and leaves the copies to the
 * interrupted call, whose filling it would otherwise overwrite under it. */
static _Thread_local bool plain_filling __attribute__((tls_model("initial-exec")));

/* Whether the thread's copy is of another policy generation than the one
 * just read. */
static inline bool plain_stale(uint64_t generation)
{
    return generation != plain_policy.generation;
}

/* Fills plain_policy's masks for the straight path (once per generation). */
static void plain_masks(struct plain_policy *pp)
{
    struct il_key v4 = {.plen = 128}, v6 = {.plen = 128};
    memset(v4.addr + 10, 0xff, 6);
    memset(v6.addr, 0xff, 16);
    il_key_mask(&v4, pp->v4_prefix, pp->v6_prefix);
    il_key_mask(&v6, pp->v4_prefix, pp->v6_prefix);
    memcpy(&pp->v4_mask_lo, v4.addr + 8, 8);
    memcpy(&pp->v6_mask_hi, v6.addr, 8);
    memcpy(&pp->v6_mask_lo, v6.addr + 8, 8);
    pp->v4_plen = v4.plen;
    pp->v6_plen = v6.plen;
    pp->v4_hash = il_key_hash_prep(0, pp->v4_plen, il_state.shm.hash_seed);
    pp->v4_hash_exact = il_key_hash_prep(0, 128, il_state.shm.hash_seed);
    pp->key_mask = il_state.shm.key_slots - 1;
}

static bool read_policy(uint16_t port, const struct il_key *peer, struct il_decision *d,
                        uint64_t generation, bool fill)
{
    struct il_shm *shm = &il_state.shm;
    bool nested = plain_filling;
    plain_filling = true;
    atomic_signal_fence(memory_order_seq_cst);
    bool ok = false;
    for (int attempt = 0; attempt < POLICY_RETRIES && !ok; attempt++) {
        struct il_policy_ticket ticket;
        const struct il_policy *p = il_shm_policy_begin(shm, &ticket);
        if (!p)
            continue;
        d->policed = p->enabled && il_policy_polices_port(p, port);
        d->dry_run = p->dry_run;
        d->action = p->action;
        d->blocking = p->blocking;
        d->log_interval = p->log_interval ? p->log_interval : IL_DEFAULT_LOG_INTERVAL;
        if (il_log_target() != p->log_target)
            il_log_set_target(p->log_target);
        if (d->policed)
            il_policy_judge(p, peer, &d->verdict);
        d->proxy = d->policed && p->nproxy && il_policy_is_proxy(p, peer);
        /* The rules are copied while the policy is read, and so again if
         * it changed meanwhile. */
        bool plain = fill && !nested && p->nrates == 0 && p->nproxy == 0 &&
                     il_rulecache_fill(&plain_rules, p);
        bool enabled = p->enabled, all_ports = p->all_ports;
        struct il_verdict unmatched;
        il_rulecache_default_verdict(p, &unmatched);
        uint8_t v4_prefix = p->v4_prefix, v6_prefix = p->v6_prefix;
        if (il_shm_policy_changed(shm, &ticket))
            continue;
        ok = true;
        if (plain) {
            /* Filled with generation 0 and stamped last: an accept in a
             * signal handler that interrupts this sees no copy, never a
             * half-made one. */
            struct plain_policy pp = {.decision = *d, .v4_prefix = v4_prefix,
                                      .v6_prefix = v6_prefix, .all_ports = all_ports};
            pp.decision.policed = enabled; /* the port's part is in its stamp */
            pp.decision.verdict = unmatched;
            pp.v4_no_rules = plain_rules.nv4 == 0;
            pp.rated = unmatched.rate != 0;
            pp.count_bound = il_keytab_count_bound(unmatched.limit);
            plain_masks(&pp);
            plain_policy = pp;
            atomic_signal_fence(memory_order_seq_cst);
            plain_policy.generation = generation;
            bool fast = pp.decision.policed && !pp.decision.dry_run && !pp.decision.proxy;
            plain_policy.fast_generation = fast ? generation : 0;
        }
    }
    atomic_signal_fence(memory_order_seq_cst);
    plain_filling = nested;
    if (ok)
        return true;
    il_log_limited(&busy_log, 60, LOG_ERR, "policy kept changing during an accept; "
                                           "connection passed uncounted");
    return false;
}

/* The decision for peer at port under the policy of generation (loaded
 * by the caller): from the thread's copy when it is of that generation
 * and the policy polices every port, else from the policy itself (which
 * refills the copy when it is stale). */
static inline __attribute__((always_inline)) bool
read_decision_at(uint64_t generation, uint16_t port, const struct il_key *peer,
                 struct il_decision *d)
{
    bool stale = plain_stale(generation);
    if (stale || !plain_policy.all_ports) {
        if (stale) {
            plain_policy.generation = 0;
            plain_policy.fast_generation = 0;
        }
        bool ok = read_policy(port, peer, d, generation, stale);
        if (ok && !d->policed)
            remind_config_error();
        return ok;
    }
    *d = plain_policy.decision;
    if (!d->policed)
        remind_config_error();
    if (d->policed)
        il_rulecache_verdict(&plain_rules, peer, plain_policy.v4_prefix, plain_policy.v6_prefix,
                             &d->verdict);
    return true;
}

static inline bool read_decision(uint16_t port, const struct il_key *peer, struct il_decision *d)
{
    uint64_t generation =
        atomic_load_explicit(&il_state.shm.hdr->policy_generation, memory_order_acquire);
    return read_decision_at(generation, port, peer, d);
}

/* Stores fd's map entry under the fork lock (forklock.h) and returns what
 * was there: a fork sees the old entry or the new one, and its child the
 * same one. */
static __attribute__((noinline, cold)) uint64_t replace_entry_slow(int fd, uint64_t entry)
{
    bool token = il_fork_lock_shared_slow();
    uint64_t old = il_fdmap_swap(fd, entry);
    il_fork_unlock_shared(token);
    return old;
}

/* The uncontended hold inline, the rest out of line (as close_counted's):
 * the common case keeps no token. */
static uint64_t replace_entry(int fd, uint64_t entry)
{
    if (__builtin_expect(!il_fork_try_shared(), 0))
        return replace_entry_slow(fd, entry);
    uint64_t old = il_fdmap_swap(fd, entry);
    il_fork_unlock_shared(true);
    return old;
}

/* read_decision stays static so that the accept path inlines it. */
bool il_limiter_decide(uint16_t port, const struct il_key *peer, struct il_decision *d)
{
    return read_decision(port, peer, d);
}

/* Classifies a listening socket once and remembers it in the fd map. */
static uint64_t listener_info(int lfd)
{
    uint64_t entry = il_fdmap_get(lfd);
    if ((entry & IL_FD_LISTENER) && !il_fd_is_conn(entry))
        return entry;
    entry = IL_FD_LISTENER;
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    int protocol = 0;
    socklen_t plen = sizeof protocol;
    if (getsockname(lfd, (struct sockaddr *)&local, &len) == 0 &&
        (local.ss_family == AF_INET || local.ss_family == AF_INET6) &&
        getsockopt(lfd, SOL_SOCKET, SO_PROTOCOL, &protocol, &plen) == 0 &&
        (protocol == IPPROTO_TCP || protocol == IPPROTO_MPTCP)) {
        in_port_t port = local.ss_family == AF_INET
                             ? ((struct sockaddr_in *)&local)->sin_port
                             : ((struct sockaddr_in6 *)&local)->sin6_port;
        entry |= IL_FD_POLICEABLE | ntohs(port);
        atomic_fetch_or_explicit(&il_state.shm.hdr->listen_ports[ntohs(port) / 64],
                                 1ULL << (ntohs(port) % 64), memory_order_relaxed);
    }
    il_limiter_release(replace_entry(lfd, entry));
    return entry;
}

/* Records in the listener's entry whether the policy of generation polices
 * its port (fdmap.h), for the straight path. A decision read from a policy
 * published after generation was loaded (a reload bumps the generation
 * after publishing) is newer than its stamp says: the next accept after
 * the bump finds the stamp stale and decides again. */
static void stamp_port(int lfd, uint64_t info, uint64_t generation, bool policed)
{
    uint64_t stamped = (info & ~IL_FD_PORT_STAMP) | il_fd_port_stamp(generation, policed);
    if (stamped != info)
        il_fdmap_replace_if(lfd, info, stamped);
}

static bool listener_blocks(int lfd)
{
    int flags = IL_REAL(fcntl)(lfd, F_GETFL);
    return flags >= 0 && !(flags & O_NONBLOCK);
}

static void reject(int cfd, uint8_t action)
{
    if (action == IL_ACTION_RST) {
        struct linger abort_on_close = {.l_onoff = 1, .l_linger = 0};
        setsockopt(cfd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
    }
    il_real_close(cfd);
}

/* peer is the TCP peer (never the PROXY client) and info the listener's
 * fd map entry: with its port they make the connection's identity
 * (connid.h). */
static void count_connection(int cfd, uint32_t key_index, const struct il_key *key, bool pending,
                             const struct il_connid_peer *peer, uint64_t info)
{
    struct il_shm *shm = &il_state.shm;
    uint64_t handle = il_conntab_alloc(shm, key_index);
    if (!handle) {
        il_keytab_release(shm, key_index);
        atomic_fetch_add_explicit(&shm->stats->untracked, 1, memory_order_relaxed);
        char name[IL_KEY_STRLEN];
        int saved_errno = errno; /* the straight path saves none */
        il_log_limited(&conn_full_log, 60, LOG_ERR,
                       "connection table full (capacity %u): %s passed uncounted; "
                       "raise IPLIMIT_CAPACITY",
                       shm->hdr->conn_slots / 2, il_key_format(key, name));
        errno = saved_errno;
        return;
    }
    /* The identity lets reconciliation match the slot to the kernel's
     * socket: recorded from what accept returned, no system call. */
    il_conntab_set_ident(shm, handle, peer->hi, peer->lo, peer->port_n,
                         (uint16_t)(info & IL_FD_PORT_MASK));
    atomic_fetch_add_explicit(&shm->stats->accepted, 1, memory_order_relaxed);
    /* A fork in another thread after the real accept returned and before
     * this store gives its child a copy of cfd with no entry and no
     * reference: that copy is not counted (the count errs low, never
     * high), and the connection counts while this process holds it. */
    uint64_t entry = IL_FD_CONN | handle;
    if (pending)
        entry |= il_proxy_mark_pending(handle);
    il_limiter_release(replace_entry(cfd, entry));
}

/* Statistics and the (rate-limited) log line of a rejection, real or not;
 * reason is IL_REASON_LIMIT or IL_REASON_RATE. */
void il_limiter_note_rejection(const struct il_decision *d, const struct il_acquired *got,
                               int dry_run, uint64_t reason)
{
    struct il_shm *shm = &il_state.shm;
    struct il_key_slot *slot = &shm->keys[got->index];
    struct il_stats *stats = shm->stats;
    atomic_fetch_add_explicit(dry_run ? &stats->dry_rejected : &stats->rejected, 1,
                              memory_order_relaxed);
    if (reason == IL_REASON_RATE)
        atomic_fetch_add_explicit(dry_run ? &stats->dry_rejected_rate : &stats->rejected_rate, 1,
                                  memory_order_relaxed);
    atomic_fetch_add_explicit(&slot->rejected, 1, memory_order_relaxed);
    atomic_store_explicit(&slot->last_reject, (uint64_t)time(NULL) | reason << IL_REASON_SHIFT,
                          memory_order_relaxed);
    if (reason == IL_REASON_RATE)
        il_log_rate_rejection(shm, got->index, &d->verdict.key, d->verdict.rate,
                              d->verdict.burst, dry_run, d->log_interval);
    else
        il_log_rejection(shm, got->index, &d->verdict.key, got->count, d->verdict.limit,
                         dry_run, d->log_interval);
}

/* A connection counted within the key's limit: spends a token of its rate,
 * if it has one. The count it holds keeps the slot (and so the bucket) the
 * key's meanwhile. The clock is read here (vDSO, no system call) and
 * handed to the reconciliation tick, which reads the same clock. Returns
 * false when the bucket is empty. */
static inline __attribute__((always_inline)) bool
take_rate_in(const struct il_decision *d, struct il_key_slot *slot, uint64_t *now)
{
    *now = il_ratebucket_now();
    return il_ratebucket_take(&slot->bucket, *now, d->verdict.rate, d->verdict.burst);
}

static inline __attribute__((always_inline)) bool
take_rate(const struct il_decision *d, uint32_t key_index, uint64_t *now)
{
    return take_rate_in(d, &il_state.shm.keys[key_index], now);
}

/* take_rate if the decision has a rate. */
static inline __attribute__((always_inline)) bool
within_rate(const struct il_decision *d, uint32_t key_index, uint64_t *now)
{
    return !d->verdict.rate || take_rate(d, key_index, now);
}

/* The key's via: the balancer when the key came from a PROXY header,
 * cleared when it is counted directly again (one load of a slot the
 * acquire just touched, in the common case). */
static inline void note_via(uint32_t key_slot, const struct il_proxy_accept *px,
                            const struct il_key *balancer)
{
    if (px->proxied)
        il_proxy_set_via(key_slot, balancer);
    else if (atomic_load_explicit(&il_state.shm.keys[key_slot].via, memory_order_relaxed))
        il_proxy_set_via(key_slot, NULL);
}

static enum il_admission admit(int lfd, int cfd, const struct sockaddr *peer, socklen_t peer_len,
                               struct il_rejection_mode *mode, uint64_t *now)
{
    il_limiter_forget(cfd);
    uint64_t info = listener_info(lfd);
    struct il_key peer_key;
    struct il_decision d;
    uint64_t generation =
        atomic_load_explicit(&il_state.shm.hdr->policy_generation, memory_order_acquire);
    if (!(info & IL_FD_POLICEABLE) || !il_key_from_sockaddr(&peer_key, peer, peer_len) ||
        !read_decision_at(generation, (uint16_t)(info & IL_FD_PORT_MASK), &peer_key, &d))
        return IL_PASS;
    stamp_port(lfd, info, generation, d.policed);
    if (!d.policed)
        return IL_PASS;

    /* A balancer's connection is keyed by the client its PROXY header
     * names, when the header is already there; else it is counted under
     * the balancer for now and decided at its first read (proxy.h). */
    struct il_proxy_accept px = {.pending = false, .proxied = false};
    if (d.proxy)
        il_proxy_at_accept(cfd, (uint16_t)(info & IL_FD_PORT_MASK), &peer_key, &d, &px);

    struct il_shm *shm = &il_state.shm;
    struct il_acquired got;
    struct il_connid_peer tcp_peer;
    il_connid_peer_of(peer, &tcp_peer);
    switch (il_keytab_acquire(shm, &d.verdict.key, d.verdict.limit, d.dry_run, &got)) {
    case IL_ADMITTED:
        note_via(got.index, &px, &peer_key);
        if (!within_rate(&d, got.index, now)) {
            il_limiter_note_rejection(&d, &got, d.dry_run, IL_REASON_RATE);
            if (!d.dry_run) {
                /* Counted for a moment: a concurrent accept of the same key
                 * may have seen one more open than there will be. */
                il_keytab_release(shm, got.index);
                goto rejected;
            }
        }
        count_connection(cfd, got.index, &d.verdict.key, px.pending, &tcp_peer, info);
        return IL_PASS;
    case IL_OVER_ADMITTED:
        note_via(got.index, &px, &peer_key);
        il_limiter_note_rejection(&d, &got, 1, IL_REASON_LIMIT);
        count_connection(cfd, got.index, &d.verdict.key, px.pending, &tcp_peer, info);
        return IL_PASS;
    case IL_OVER_LIMIT:
        note_via(got.index, &px, &peer_key);
        il_limiter_note_rejection(&d, &got, 0, IL_REASON_LIMIT);
    rejected:
        mode->blocks = listener_blocks(lfd);
        mode->wait = mode->blocks && d.blocking == IL_BLOCKING_WAIT;
        reject(cfd, d.action);
        return IL_REJECTED;
    case IL_TABLE_FULL:
    default: {
        char name[IL_KEY_STRLEN];
        atomic_fetch_add_explicit(&shm->stats->untracked, 1, memory_order_relaxed);
        il_log_limited(&key_full_log, 60, LOG_ERR,
                       "key table full (capacity %u): %s passed uncounted; "
                       "raise IPLIMIT_CAPACITY",
                       shm->hdr->key_slots / 2, il_key_format(&d.verdict.key, name));
        return IL_PASS;
    }
    }
}

/* The key of an IPv6 peer (IPv4-mapped or not) under the plain policy pp
 * and its limit, judged from plain_rules and masked in one pass from the
 * sockaddr, and the peer as the connection's identity records it (*who:
 * the address before masking). An allowed peer's key is its exact address
 * and its limit IL_UNLIMITED, as il_policy_judge says. Returns false for
 * a family or length the general path must look at. (AF_INET peers take
 * admit_v4.) */
static inline __attribute__((always_inline)) bool
fast_key(const struct plain_policy *pp, const struct sockaddr *peer, socklen_t peer_len,
         struct il_key *key, uint32_t *limit, bool *allowed, bool *rated, uint32_t *home,
         struct il_connid_peer *who)
{
    uint64_t hi = 0, lo;
    uint8_t plen = pp->v4_plen;
    if (peer->sa_family == AF_INET6 && peer_len >= sizeof(struct sockaddr_in6)) {
        const uint8_t *a = ((const struct sockaddr_in6 *)peer)->sin6_addr.s6_addr;
        memcpy(&hi, a, 8);
        memcpy(&lo, a + 8, 8);
        who->hi = hi;
        who->lo = lo;
        who->port_n = ((const struct sockaddr_in6 *)peer)->sin6_port;
        if (hi == 0 && il_key_lo_is_v4(lo)) { /* ::ffff:a.b.c.d: an IPv4 peer */
            uint32_t addr_n;
            memcpy(&addr_n, a + 12, 4);
            *allowed = il_rulecache_judge_v4(&plain_rules, addr_n, limit);
            if (!*allowed)
                lo &= pp->v4_mask_lo;
        } else {
            *allowed = il_rulecache_judge_v6(&plain_rules, hi, lo, limit);
            if (!*allowed) {
                hi &= pp->v6_mask_hi;
                lo &= pp->v6_mask_lo;
                plen = pp->v6_plen;
            }
        }
    } else {
        return false;
    }
    memcpy(key->addr, &hi, 8);
    memcpy(key->addr + 8, &lo, 8);
    key->plen = *allowed ? 128 : plen;
    *rated = !*allowed && pp->decision.verdict.rate; /* an allowed peer has no rate */
    *home = (uint32_t)il_key_hash(key, il_state.shm.hash_seed) & pp->key_mask;
    return true;
}

/* The straight path's slow pieces, noinline so that its flattening leaves
 * them out: what they would inline (the key table's full search, the
 * via's seqlock write) would otherwise size its stack frame, and the key
 * and the slot index would live in memory for them. fast_acquire_slow
 * returns the key's slot when the key is admitted, else UINT64_MAX. */
static __attribute__((noinline, cold)) uint64_t fast_acquire_slow(struct il_key key,
                                                                  uint32_t limit)
{
    struct il_acquired got;
    if (il_keytab_acquire(&il_state.shm, &key, limit, 0, &got) != IL_ADMITTED)
        return UINT64_MAX;
    return got.index;
}

static __attribute__((noinline, cold)) void fast_clear_via(uint32_t key_slot)
{
    il_proxy_set_via(key_slot, NULL);
}

/* The straight path of an IPv4 peer (admit_v4): its key and limit judged
 * from the thread's copy of the rules, or, under a policy without IPv4
 * rules, the peer's address under the IPv4 prefix and the policy's limit.
 *
 * Written as a chain of tail calls: every piece that would call out (the
 * key table's full search, a via to clear, a rate, the connection table
 * full, the fork lock's slow path, a stale entry to release, the
 * reconciliation tick when it is on) is entered by a jump from which the
 * path does not come back, and finishes the accept itself. The common
 * case then makes no call at all, so it needs no stack frame, saves no
 * register and keeps the key in registers (the slow pieces rebuild it
 * from the peer). What they carry is five words: cfd, the key's slot, the
 * peer (v4_peer), the listener's map entry and the policy generation.
 *
 * v4_peer: the peer's address (network order) in bits 0..31 and its port
 * (network order) in bits 32..47. */
static inline uint64_t v4_peer(const struct sockaddr *peer)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)peer;
    return sin->sin_addr.s_addr | (uint64_t)sin->sin_port << 32;
}

/* What the path counts a peer under: its key (lo, the address's high
 * word 0, plen), the key's limit, whether the policy's rate applies, and
 * the key table's hash prepared for plen. As il_policy_judge says: an
 * allowed peer's key is its exact address, with no limit and no rate. */
struct v4_verdict {
    uint64_t lo;
    uint32_t plen, limit;
    bool rated;
    const struct il_key_hash_prep *prep;
};

/* judged: the policy has IPv4 rules, judged from plain_rules (a constant
 * in each inlined copy). */
static inline __attribute__((always_inline)) void
v4_judge(const struct plain_policy *pp, uint64_t peer, bool judged, struct v4_verdict *v)
{
    uint64_t lo = il_key_v4_lo((uint32_t)peer);
    v->limit = pp->decision.verdict.limit;
    if (judged && il_rulecache_judge_v4(&plain_rules, (uint32_t)peer, &v->limit)) {
        v->lo = lo;
        v->plen = 128;
        v->rated = false;
        v->prep = &pp->v4_hash_exact;
        return;
    }
    v->lo = lo & pp->v4_mask_lo;
    v->plen = pp->v4_plen;
    v->rated = pp->rated;
    v->prep = &pp->v4_hash;
}

/* The verdict again, for the pieces that join late (cold). */
static struct il_key v4_key(const struct plain_policy *pp, uint64_t peer, struct v4_verdict *v)
{
    v4_judge(pp, peer, !pp->v4_no_rules, v);
    struct il_key key = {.plen = (uint8_t)v->plen};
    memcpy(key.addr + 8, &v->lo, 8);
    return key;
}

/* The reconciliation tick of an accept that ends here, and its result:
 * reconciler.h's two first tests inline (reconciliation off; this
 * process's thread runs it), the rest a jump. */
static __attribute__((noinline)) bool v4_tick(uint64_t generation, uint64_t now)
{
    il_reconcile_tick_gen(&il_state.shm, __atomic_load_n(&il_state.pid, __ATOMIC_RELAXED), now,
                          generation);
    return true;
}

static inline __attribute__((always_inline)) bool v4_ticked(uint64_t generation, uint64_t now)
{
    if (generation == atomic_load_explicit(&il_rec_off_generation, memory_order_relaxed) ||
        atomic_load_explicit(&il_rec_thread_pid, memory_order_relaxed) ==
            __atomic_load_n(&il_state.pid, __ATOMIC_RELAXED))
        return true;
    return v4_tick(generation, now);
}

/* cfd's entry stored by the fork lock's slow path, or an old entry of cfd
 * (a connection it no longer is) released: then the tick. */
static __attribute__((noinline, cold)) bool v4_store_slow(int cfd, uint64_t entry,
                                                          uint64_t generation, uint64_t now)
{
    il_limiter_release(replace_entry_slow(cfd, entry));
    return v4_ticked(generation, now);
}

static __attribute__((noinline, cold)) bool v4_release_old(uint64_t old, uint64_t generation,
                                                           uint64_t now)
{
    il_limiter_release(old);
    return v4_ticked(generation, now);
}

/* No free connection slot was found: count_connection tries once more
 * (one may have been freed meanwhile: then the connection is counted,
 * with its identity from the listener's entry, info) and else lets the
 * connection pass uncounted, with its log line. */
static __attribute__((noinline, cold)) bool v4_conn_full(int cfd, uint32_t index, uint64_t peer,
                                                         uint64_t info, uint64_t generation,
                                                         uint64_t now)
{
    struct v4_verdict v;
    struct il_key key = v4_key(&plain_policy, peer, &v);
    struct il_connid_peer who = {.hi = 0, .lo = il_key_v4_lo((uint32_t)peer),
                                 .port_n = (uint16_t)(peer >> 32)};
    il_limiter_forget(cfd); /* what the map said of cfd before goes */
    count_connection(cfd, index, &key, false, &who, info);
    return v4_ticked(generation, now);
}

/* The connection counted under the key's slot index: a connection slot,
 * its identity, cfd's map entry (as count_connection), then the tick. */
static inline __attribute__((always_inline)) bool
v4_count(int cfd, uint32_t index, uint64_t peer, uint64_t info, uint64_t generation, uint64_t now)
{
    struct il_shm *shm = &il_state.shm;
    uint64_t handle = il_conntab_alloc(shm, index);
    if (__builtin_expect(!handle, 0))
        return v4_conn_full(cfd, index, peer, info, generation, now);
    il_conntab_set_ident(shm, handle, 0, il_key_v4_lo((uint32_t)peer), (uint16_t)(peer >> 32),
                         (uint16_t)(info & IL_FD_PORT_MASK));
    atomic_fetch_add_explicit(&shm->stats->accepted, 1, memory_order_relaxed);
    uint64_t entry = IL_FD_CONN | handle;
    if (__builtin_expect(!il_fork_try_shared(), 0))
        return v4_store_slow(cfd, entry, generation, now);
    uint64_t old = il_fdmap_swap(cfd, entry);
    il_fork_unlock_shared(true);
    if (__builtin_expect(il_fd_is_conn(old), 0))
        return v4_release_old(old, generation, now);
    return v4_ticked(generation, now);
}

/* The rest of the path for a key counted in late (by the key table's
 * full search, or with a via to clear): the via, the verdict judged again
 * for its rate, a token of it (or the count goes back and the general path
 * decides again, and rejects), the connection. */
static __attribute__((noinline, cold, flatten)) bool
v4_join(int cfd, uint32_t index, uint64_t peer, uint64_t info, uint64_t generation)
{
    if (atomic_load_explicit(&il_state.shm.keys[index].via, memory_order_relaxed))
        fast_clear_via(index); /* counted directly again (note_via) */
    struct v4_verdict v;
    v4_judge(&plain_policy, peer, !plain_policy.v4_no_rules, &v);
    uint64_t now = 0;
    if (v.rated && !take_rate(&plain_policy.decision, index, &now)) {
        il_keytab_release(&il_state.shm, index);
        return false;
    }
    return v4_count(cfd, index, peer, info, generation, now);
}

/* The key was not READY first in its window (new, being claimed, taken
 * over): the key table's full search. Not admitted: the general path
 * decides again. */
static __attribute__((noinline, cold)) bool v4_key_slow(int cfd, uint64_t peer, uint64_t info,
                                                        uint64_t generation)
{
    struct v4_verdict v;
    struct il_key key = v4_key(&plain_policy, peer, &v);
    uint64_t index = fast_acquire_slow(key, v.limit);
    if (index == UINT64_MAX)
        return false;
    return v4_join(cfd, (uint32_t)index, peer, info, generation);
}

/* Copies, each a path of its own from the start so that none pays for
 * another's registers: without rules or rate (judged and rated false:
 * admit_v4_plain),
 * with a rate and no rules (admit_v4_rated), and with rules
 * (admit_v4_judged, judged true, rated then the verdict's). */
static inline __attribute__((always_inline)) bool
admit_v4(const struct plain_policy *pp, int cfd, uint64_t peer, uint64_t info,
         uint64_t generation, bool rated, bool judged)
{
    struct il_shm *shm = &il_state.shm;
    struct v4_verdict v;
    v4_judge(pp, peer, judged, &v);
    if (judged)
        rated = v.rated;
    uint32_t bound = judged ? il_keytab_count_bound(v.limit) : pp->count_bound;
    uint32_t home = (uint32_t)il_key_hash_lo(v.prep, v.lo) & pp->key_mask;
    uint32_t index = 0; /* set when counted (GCC cannot tell) */
    struct il_key_slot *slot;
    int counted = il_keytab_acquire_straight(shm, 0, v.lo, v.plen, home, pp->key_mask, v.limit,
                                             bound, &index, &slot);
    if (__builtin_expect(counted < 0, 0))
        return v4_key_slow(cfd, peer, info, generation);
    if (counted)
        return false; /* at the limit, or the count full: decided again, logged there */
    if (__builtin_expect(atomic_load_explicit(&slot->via, memory_order_relaxed), 0))
        return v4_join(cfd, index, peer, info, generation); /* a via to clear */
    uint64_t now = 0;
    if (rated && !take_rate_in(&pp->decision, slot, &now)) {
        il_keytab_release(shm, index);
        return false;
    }
    return v4_count(cfd, index, peer, info, generation, now);
}

static IL_HOT __attribute__((noinline, flatten)) bool
admit_v4_judged(const struct plain_policy *pp, int cfd, const struct sockaddr *peer,
                uint64_t info, uint64_t generation)
{
    return admit_v4(pp, cfd, v4_peer(peer), info, generation, false, true);
}

static IL_HOT __attribute__((noinline, flatten)) bool
admit_v4_rated(const struct plain_policy *pp, int cfd, const struct sockaddr *peer,
               uint64_t info, uint64_t generation)
{
    return admit_v4(pp, cfd, v4_peer(peer), info, generation, true, false);
}

/* A listener whose port the policy does not police: nothing counted. */
static __attribute__((noinline)) bool fast_unpoliced(int cfd, uint64_t generation)
{
    il_limiter_forget(cfd); /* uncounted: only what the map said of cfd goes */
    return v4_ticked(generation, 0);
}

static bool admit_v6(const struct plain_policy *pp, int cfd, const struct sockaddr *peer,
                     socklen_t peer_len, uint64_t info, uint64_t generation);

/* The straight accept path: a TCP listener already classified, the
 * thread's copy of a plain policy (see plain_policy) that polices and is
 * no dry run, a listener whose port it polices, an IPv4 or IPv6 peer, and
 * a key that is admitted.
 * Then the connection is counted with no copy of the decision, and the
 * map store that counts cfd also forgets whatever the map said about that
 * number before: one store where the general path makes two. Anything
 * else returns false with nothing counted and nothing changed, and the
 * caller runs il_limiter_admit, which decides the same connection again
 * from the start. No system call, so errno is untouched. Every case but
 * the default one (an IPv4 peer, no IPv4 rules, no rate) is a jump to a
 * path compiled for it; the default path is inlined here (flatten; the
 * function kept out of the accept wrappers, noinline). It takes its
 * policy generation from the thread's copy again, not from the register
 * that held it for the test above: kept live from the first test, that
 * value made GCC save the default path's registers before the dispatch,
 * and every other case paid 14 instructions for a frame it did not use.
 * (The two are equal: the test above compared them.) */
IL_HOT __attribute__((noinline, flatten)) bool il_limiter_admit_fast(int lfd, int cfd,
                                                              const struct sockaddr *peer,
                                                              socklen_t peer_len)
{
    uint64_t info = il_fdmap_get(lfd);
    if ((info & (IL_FD_CONN | IL_FD_LISTENER | IL_FD_POLICEABLE)) !=
        (IL_FD_LISTENER | IL_FD_POLICEABLE))
        return false;
    uint64_t generation =
        atomic_load_explicit(&il_state.shm.stats->policy_generation, memory_order_acquire);
    const struct plain_policy *pp = &plain_policy;
    if (generation != pp->fast_generation)
        return false;
    if (__builtin_expect(!pp->all_ports, 0)) {
        if (!il_fd_port_stamped(info, generation))
            return false; /* the general path decides and stamps the port */
        if (!(info & IL_FD_PORT_POLICED))
            return fast_unpoliced(cfd, generation);
    }
    if (peer->sa_family != AF_INET || peer_len < sizeof(struct sockaddr_in))
        return admit_v6(pp, cfd, peer, peer_len, info, generation);
    if (!pp->v4_no_rules)
        return admit_v4_judged(pp, cfd, peer, info, generation);
    if (pp->rated)
        return admit_v4_rated(pp, cfd, peer, info, generation);
    return admit_v4(pp, cfd, v4_peer(peer), info,
                    __atomic_load_n(&pp->fast_generation, __ATOMIC_RELAXED), false, false);
}

/* The straight path of the other peers: IPv6, IPv4-mapped or not. */
static __attribute__((noinline, flatten)) bool
admit_v6(const struct plain_policy *pp, int cfd, const struct sockaddr *peer,
         socklen_t peer_len, uint64_t info, uint64_t generation)
{
    struct il_shm *shm = &il_state.shm;
    struct il_key key;
    uint32_t limit;
    bool allowed, rated;
    uint32_t home;
    struct il_connid_peer who;
    if (!fast_key(pp, peer, peer_len, &key, &limit, &allowed, &rated, &home, &who))
        return false;
    const struct il_decision *d = &pp->decision;
    uint64_t hi, lo;
    memcpy(&hi, key.addr, 8);
    memcpy(&lo, key.addr + 8, 8);
    uint32_t index = 0; /* set when counted (GCC cannot tell) */
    struct il_key_slot *slot;
    int counted = il_keytab_acquire_straight(shm, hi, lo, key.plen, home, pp->key_mask, limit,
                                             il_keytab_count_bound(limit), &index, &slot);
    if (__builtin_expect(counted < 0, 0)) {
        uint64_t found = fast_acquire_slow(key, limit);
        if (found == UINT64_MAX)
            return false;
        index = (uint32_t)found;
        slot = &shm->keys[index];
    } else if (counted) {
        return false; /* at the limit, or the count full: decided again, logged there */
    }
    if (__builtin_expect(atomic_load_explicit(&slot->via, memory_order_relaxed), 0))
        fast_clear_via(index); /* counted directly again (note_via) */
    uint64_t now = 0;
    if (rated && !take_rate(d, index, &now)) {
        il_keytab_release(shm, index);
        return false;
    }
    count_connection(cfd, index, &key, false, &who, info);
    il_reconcile_tick_gen(shm, __atomic_load_n(&il_state.pid, __ATOMIC_RELAXED), now, generation);
    return true;
}

/* Reconciliation is checked after the decision, so that an inline run
 * finds the connection just counted in the table; usually this is one load
 * in the owner process, a clock read and two loads elsewhere
 * (reconciler.h). */
enum il_admission il_limiter_admit(int lfd, int cfd, const struct sockaddr *peer,
                                   socklen_t peer_len, struct il_rejection_mode *mode)
{
    uint64_t now = 0; /* CLOCK_MONOTONIC_COARSE ms, if the rate read it */
    enum il_admission admission = admit(lfd, cfd, peer, peer_len, mode, &now);
    il_reconcile_tick(&il_state.shm, __atomic_load_n(&il_state.pid, __ATOMIC_RELAXED), now);
    return admission;
}

/* No il_active() test: a connection's entry is stored only by code that
 * found the limiter active (accept, a received fd, an exec's inherited
 * list, a copy of such an entry), and it is never made inactive again;
 * whoever reads the entry from the fd map (acquire) sees the segment's
 * mapping the storer saw. The entry's flag bits need no mask: the handle's
 * generation and index ignore them (conntab.h). IL_NO_KEY is outside any
 * key table, so one bound test covers both. */
void il_limiter_release(uint64_t entry)
{
    if (!il_fd_is_conn(entry))
        return;
    struct il_shm *shm = &il_state.shm;
    uint32_t key_index = il_conntab_unref(shm, entry);
    if (key_index < shm->key_slots) {
        il_keytab_release(shm, key_index);
        atomic_fetch_add_explicit(&shm->stats->released, 1, memory_order_relaxed);
    }
}

void il_limiter_copy(int oldfd, int newfd)
{
    uint64_t entry = il_fdmap_get(oldfd);
    if (entry == IL_FD_OWN)
        entry = 0; /* the host's copy of one of our fds is the host's */
    if (il_fd_is_conn(entry) && il_conntab_ref(&il_state.shm, entry & IL_FD_HANDLE_MASK) != 0)
        entry = 0; /* stale: oldfd's connection is already gone */
    il_limiter_release(il_fdmap_swap(newfd, entry));
}

void il_limiter_forget(int fd)
{
    if (il_fdmap_get(fd))
        il_limiter_release(replace_entry(fd, 0));
}

/* The walk: one reference per counted fd in the map. Called with the fork
 * lock held exclusive, so the map it walks is the one the fork copies. */
void il_limiter_fork_refs(bool undo)
{
    int high = il_fdmap_high();
    for (int fd = 0; fd <= high; fd++) {
        uint64_t entry = il_fdmap_get(fd);
        if (!il_fd_is_conn(entry))
            continue;
        if (undo)
            il_limiter_release(entry);
        else
            il_conntab_ref(&il_state.shm, entry & IL_FD_HANDLE_MASK);
    }
}

/* What one fork in progress in this thread did before it (prepare). */
struct fork_in_progress {
    bool active;
    bool locked;
    sigset_t mask; /* the thread's signal mask before the fork */
};
static _Thread_local struct fork_in_progress fork_now __attribute__((tls_model("initial-exec")));

/* Signals are blocked from the walk until after the fork (two
 * rt_sigprocmask calls per fork): a handler that closes or dups a counted
 * fd in the forking thread between the walk and the copy would otherwise
 * change the map under its own exclusive hold. Faults are left deliverable. */
static void block_signals(sigset_t *old)
{
    sigset_t all;
    sigfillset(&all);
    static const int synchronous[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT};
    for (unsigned i = 0; i < sizeof synchronous / sizeof synchronous[0]; i++)
        sigdelset(&all, synchronous[i]);
    pthread_sigmask(SIG_BLOCK, &all, old);
}

void il_limiter_fork_prepare(void)
{
    if (!il_active() || fork_now.active)
        return;
    block_signals(&fork_now.mask);
    fork_now.active = true;
    fork_now.locked = il_fork_lock_exclusive();
    il_limiter_fork_refs(false);
}

void il_limiter_fork_parent(bool failed)
{
    if (!fork_now.active)
        return;
    if (failed)
        il_limiter_fork_refs(true);
    il_fork_unlock_exclusive(fork_now.locked);
    fork_now.active = false;
    pthread_sigmask(SIG_SETMASK, &fork_now.mask, NULL);
}

void il_limiter_fork_child(void)
{
    il_fork_lock_child();
    pid_t me = getpid();
    __atomic_store_n(&il_state.pid, me, __ATOMIC_RELAXED);
    if (il_state.shm.hdr)
        il_shm_pick_stats(&il_state.shm, me);
    if (!fork_now.active)
        return;
    fork_now.active = false;
    pthread_sigmask(SIG_SETMASK, &fork_now.mask, NULL);
}

void il_limiter_release_all(void)
{
    if (!il_active() || getpid() != __atomic_load_n(&il_state.pid, __ATOMIC_RELAXED))
        return;
    bool token = il_fork_lock_shared();
    int high = il_fdmap_high();
    for (int fd = 0; fd <= high; fd++) {
        uint64_t entry = il_fdmap_get(fd);
        if (entry && entry != IL_FD_OWN) /* own fds stay ours until the end */
            il_limiter_release(il_fdmap_swap(fd, 0));
    }
    il_fork_unlock_shared(token);
}
