/* The shared segment: one per service, mapped by every process of its tree.
 *
 * Layout: header | policy[2] | key slots | connection slots | socket identity
 * index (sockid.h).  It is a memfd
 * named "iplimit" mapped MAP_SHARED in the first process that loads the
 * library; the fd is closed at once (hosts such as Kamailio close fds 3..31
 * at startup), the mapping is inherited by every fork, and the memory goes
 * away with the last process that maps it, so a restarted service always
 * starts from zero.  From outside, the segment is found by the
 * "/memfd:iplimit" line in /proc/PID/maps and opened through
 * /proc/PID/map_files/ (see src/cli).  Everything shared is reached by
 * offset, never by pointer, and every field written after creation is
 * atomic: processes may die at any instruction, so there are no locks. */
#ifndef IL_SHM_H
#define IL_SHM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define IL_SHM_MAGIC "IPLIMIT"
#define IL_SHM_VERSION 9
#define IL_SHM_NAME "iplimit" /* shows as /memfd:iplimit in /proc/PID/maps */
#define IL_DEFAULT_CAPACITY 65536
#define IL_MAX_CAPACITY (1u << 24)
#define IL_MAX_VIAS 64 /* balancers remembered for iplimit stat */
#define IL_STARTED_WITH_LEN 8192 /* bytes of started_with (started.h) */

/* Key slot word: [63:62] state, [61:32] version, [31:0] open connections. */
#define IL_KEY_EMPTY 0ULL
#define IL_KEY_BUSY 1ULL
#define IL_KEY_READY 2ULL

struct il_key_slot {
    _Atomic uint64_t word;
    /* The key, written only while the slot is BUSY and read under the
     * version in word (a seqlock): a reader that sees the same version
     * before and after reading these saw a complete key. */
    _Atomic uint64_t addr_hi;
    _Atomic uint64_t addr_lo;
    _Atomic uint32_t plen;
    _Atomic uint32_t limit;           /* limit applied at the last accept attempt */
    _Atomic uint64_t bucket;          /* new-connection rate: ratebucket.h; 0 (full)
                                       * when the slot is claimed for a key */
    /* In this first line because the straight accept path tests it at
     * every accept (limiter.c): one cache line per key and accept. */
    _Atomic uint32_t via;             /* 0: direct; N: the key was last counted from a
                                       * PROXY header sent by balancer N-1 (il_shm_header.vias) */
    uint32_t pad1;
    _Atomic uint64_t rejected;        /* rejections (and dry-run would-be ones) since created */
    _Atomic uint32_t log_window;      /* second the current log window began */
    _Atomic uint32_t log_suppressed;  /* rejections not logged in that window */
    /* Second cache line, off the accept path of a known key. */
    _Atomic uint64_t last_reject;     /* realtime seconds of last rejection, and
                                       * [63:56] its reason (IL_REASON_*) */
    /* In a key's home slot: the word that serializes first claims of the
     * keys that hash there, [63:32] sequence, [31:0] holder pid or 0
     * (keytab.c). */
    _Atomic uint64_t claim;
    uint64_t pad[6];
};

_Static_assert(sizeof(struct il_key_slot) == 128, "a key slot is two cache lines");
_Static_assert(__builtin_offsetof(struct il_key_slot, via) < 64 &&
                   __builtin_offsetof(struct il_key_slot, last_reject) == 64,
               "what every accept reads is in the first line");

/* Why a connection was rejected (or would have been, in a dry run). */
#define IL_REASON_LIMIT 1ULL /* the key had its limit of open connections */
#define IL_REASON_RATE 2ULL  /* the key's new-connection rate was spent */
#define IL_REASON_SHIFT 56

/* Connection slot word: slot flags, generation, fds in flight and
 * references (fds in all processes), laid out in conntab.h; free when both
 * counts are 0. A handle names (generation, index), so a stale handle can
 * never touch a slot reused by a later connection. */
struct il_conn_slot {
    _Atomic uint64_t word;
    _Atomic uint32_t key_index;
    uint32_t spare;
    /* The connection's identity (connid.h), which reconciliation matches
     * to the kernel's socket: ident holds the generation it belongs to,
     * the peer port and the local port, and is stored after peer (the
     * peer's address, two native 64-bit words) with release: a reader that
     * finds the word's generation in ident sees that connection's peer. */
    _Atomic uint64_t ident;
    _Atomic uint64_t peer[2];
    /* PROXY protocol state (proxy.h): [31:8] the slot's generation when it
     * was written, [7:0] flags. A flag counts only when the generation
     * matches the handle's, so a stale handle never sees a later
     * connection's flags. */
    _Atomic uint32_t proxy;
    _Atomic uint32_t proxy_since; /* il_log_now() seconds when it became pending */
    /* The socket's inode, for the socket identity index (sockid.h), taken
     * by the first process that sends an fd of the connection: [63:40]
     * the slot's generation when it was written, [39:0] the inode; 0 when
     * none was taken. */
    _Atomic uint64_t sock_inode;
    /* To one cache line: an accept writes the word, key_index, ident and
     * peer, and a 56-byte slot put half of those accepts across two lines. */
    uint64_t pad;
};

_Static_assert(sizeof(struct il_conn_slot) == 64, "a connection slot is one cache line");

#define IL_PROXY_WORD_PENDING 0x1u /* counted under its balancer until its PROXY
                                    * header is read by whichever process reads first */

/* The service's counters, in IL_STAT_STRIPES stripes: a process adds to
 * the stripe of its pid (il_shm.stats), and iplimit stat sums them all.
 * Every accept and close adds one, so with one shared set every worker of
 * a prefork server would write the same cache line at every connection;
 * striped, two workers share a line only when their pids are equal modulo
 * IL_STAT_STRIPES. A stripe is never owned: a process that dies leaves its
 * counts there, and a later process of the same residue adds to them, so
 * the sums stay exact whoever comes and goes. A stripe is two cache lines
 * (adjacent-line prefetch pairs them) and also holds that stripe's start
 * for connection slot searches (conntab.c). */
#define IL_STAT_STRIPES 64

struct il_stats {
    _Atomic uint64_t accepted;      /* connections counted */
    _Atomic uint64_t rejected;      /* connections closed over the limit */
    _Atomic uint64_t dry_rejected;  /* would have been rejected (dry run) */
    _Atomic uint64_t untracked;     /* admitted uncounted: table full */
    _Atomic uint64_t released;      /* connections whose last fd closed */
    _Atomic uint64_t rejected_rate;     /* of rejected: over the rate */
    _Atomic uint64_t dry_rejected_rate; /* of dry_rejected: over the rate */
    _Atomic uint32_t conn_hint; /* the stripe's next slot search start (conntab.c) */
    uint32_t pad0;
    /* A copy of the header's policy_generation, stored after it at every
     * publish (il_shm_policy_publish): the straight accept path reads it
     * here, on the line its process writes anyway, and so touches no page
     * of the header (hot.h). A reader that finds the new value sees the
     * new policy (release store); a copy that lags the header by a moment
     * only keeps the thread on the previous policy that moment longer. */
    _Atomic uint64_t policy_generation;
    uint64_t pad[7];
};

_Static_assert(sizeof(struct il_stats) == 128, "a stripe is two cache lines");

#define IL_REC_PREV_SUSPECTS 64

struct il_shm_header {
    char magic[8];
    uint32_t version;
    uint32_t header_size;
    uint64_t segment_size;
    int32_t creator_pid;
    uint32_t pad0;
    uint64_t created_at; /* realtime seconds */
    uint64_t hash_seed;
    uint32_t key_slots;  /* power of two */
    uint32_t conn_slots; /* power of two */
    uint64_t policy_off;
    uint64_t keys_off;
    uint64_t conns_off;
    uint64_t sockid_off;   /* socket identity index (sockid.h) */
    uint32_t sockid_slots; /* power of two */
    uint32_t pad2;
    char config_error[256]; /* first startup configuration error, or "" */

    /* Policy double buffer: writers fill the inactive copy under its
     * sequence number (odd while writing), then flip policy_active. */
    _Atomic uint32_t policy_active;
    _Atomic int32_t policy_writer; /* pid of the writer, 0 when none */
    _Atomic uint64_t policy_seq[2];
    _Atomic uint64_t policy_generation; /* bumped at every publish */
    _Atomic uint64_t policy_loaded_at;  /* realtime seconds */

    /* The active policy's il_policy_rate_hold_ms: how long a key slot
     * with no connection keeps its rate bucket before another key may
     * take it over (keytab.c). */
    _Atomic uint32_t rate_hold_ms;

    /* Global cap on rejection log lines, across all keys. */
    _Atomic uint32_t log_second;
    _Atomic uint32_t log_lines;
    _Atomic uint64_t log_dropped;

    /* Local ports of the policed listeners the service has accepted on. */
    _Atomic uint64_t listen_ports[65536 / 64];

    /* Reconciliation with the kernel's socket table (reconciler.h,
     * reconcile.c). Whoever wins a CAS on rec_next_run once it is due does
     * one run; the rest is written by that run, for iplimit stat. */
    _Atomic uint64_t rec_next_run;       /* CLOCK_MONOTONIC ms; 0 at first; only moves later */
    _Atomic int32_t rec_owner;           /* pid whose reconciler thread runs them, or 0 */
    _Atomic int32_t rec_runner;          /* pid of the process running now, or 0 */
    _Atomic int32_t rec_last_error;      /* errno of the last abandoned run, or 0 */
    _Atomic uint32_t rec_wake;           /* futex word: bumped (and woken) by every policy
                                          * publish, so a sleeping reconciler thread sees
                                          * a reload at once */
    _Atomic uint64_t rec_runs;           /* runs completed */
    _Atomic uint64_t rec_failed;         /* runs abandoned (netlink error, deadline) */
    _Atomic uint64_t rec_last_run;       /* realtime seconds the last run completed */
    _Atomic uint64_t rec_last_usec;      /* how long it took, microseconds */
    _Atomic uint64_t rec_last_sockets;   /* held sockets on policed ports it saw */
    _Atomic uint64_t rec_last_uncounted; /* of those, not counted (reported only) */
    _Atomic uint64_t rec_last_freed;     /* slots it freed */
    _Atomic uint64_t rec_last_corrected; /* keys it corrected */
    _Atomic uint64_t rec_slots_freed;    /* all runs: slots of connections gone */
    _Atomic uint64_t rec_keys_corrected; /* all runs: keys whose count was corrected */
    _Atomic uint64_t rec_counts_removed; /* all runs: counts taken off keys */
    _Atomic uint64_t rec_lookups;        /* all runs: connections looked up (reclookup.h) */
    _Atomic uint64_t rec_dumps;          /* all runs: dumps of the service's sockets */
    /* The keys the last completed run found above their slots, in key
     * order, with each key's word then (reconcile.c, correct_keys): a key
     * is corrected only by a later run that finds the very same word. */
    _Atomic uint32_t rec_prev_n;
    uint32_t pad_prev;
    struct il_prev_suspect {
        _Atomic uint64_t word;
        _Atomic uint32_t key;
        uint32_t pad;
    } rec_prev[IL_REC_PREV_SUSPECTS];

    /* The service's stable name (IPLIMIT_SERVICE, else the program name),
     * NUL-terminated: iplimit stat's Prometheus label. */
    char service[64];
    /* The IPLIMIT_* settings the service was started with (started.h):
     * NUL-terminated NAME=VALUE entries one after another, an empty one
     * after the last; started_with_state says whether they are all there. */
    char started_with[IL_STARTED_WITH_LEN];
    uint32_t started_with_state;
    uint32_t pad_started;
    /* Balancers that sent PROXY headers (a key slot's via names one):
     * state 0 free, 1 being written, 2 ready; never freed. */
    struct il_via {
        _Atomic uint32_t state;
        uint32_t pad;
        _Atomic uint64_t addr_hi, addr_lo;
    } vias[IL_MAX_VIAS];
    _Atomic uint64_t proxy_malformed; /* PROXY headers that did not parse */
    _Atomic uint64_t proxy_rejected;  /* of rejected: decided after accept, at the first read */

    /* Last, on lines of their own: written at every accept and close. */
    _Alignas(128) struct il_stats stats[IL_STAT_STRIPES];
};

struct il_shm {
    struct il_shm_header *hdr;
    struct il_policy *policies; /* [2] */
    struct il_key_slot *keys;
    struct il_conn_slot *conns;
    _Atomic uint64_t *sockids; /* the socket identity index (sockid.h) */
    size_t size;
    /* Copies of the header's table sizes, taken once and checked against
     * the segment's real size when attached: a reader bounds its loops by
     * these, never by the shared header, which its writer may change. */
    uint32_t key_slots, conn_slots;
    uint64_t hash_seed; /* the header's, copied at mapping as the sizes are */
    /* This process's statistics stripe: the one of its pid, set when the
     * segment is mapped and again in a fork's child (il_shm_pick_stats). A
     * child that keeps its parent's stripe (a fork the library did not
     * see) still counts exactly, only on a shared line. */
    struct il_stats *stats;
};

/* Points shm->stats at the stripe of pid. */
static inline void il_shm_pick_stats(struct il_shm *shm, int pid)
{
    shm->stats = &shm->hdr->stats[(uint32_t)pid % IL_STAT_STRIPES];
}

/* Creates and maps a new segment sized for capacity connections and
 * publishes policy in it. Returns 0, or -errno (nothing is left mapped). */
int il_shm_create(struct il_shm *shm, uint32_t capacity, const struct il_policy *policy,
                  const char *config_error);

/* The same, handing the memfd (close-on-exec) to the caller in *fd_out
 * instead of closing it. */
int il_shm_create_keep(struct il_shm *shm, uint32_t capacity, const struct il_policy *policy,
                       const char *config_error, int *fd_out);

/* Names the service (stored truncated to 63 bytes; NULL or "" leaves the
 * program name given at creation). */
void il_shm_set_service(struct il_shm *shm, const char *name);

/* Maps an existing segment from an open fd (the CLI, exec). The fd may be
 * anyone's memfd: the header is copied once, and its layout checked
 * against the file's real size (fstat) before anything is mapped. Returns
 * 0 or -errno; -EPROTO when it is not a well-formed iplimit segment of
 * this version. */
int il_shm_attach_fd(struct il_shm *shm, int fd, int writable);

void il_shm_detach(struct il_shm *shm);

/* Reading the policy in place (the accept path): a seqlock.
 *   do { p = il_shm_policy_begin(shm, &ticket); ...read p... }
 *   while (il_shm_policy_changed(shm, &ticket));
 * begin returns NULL when a writer is mid-way; callers bound their retries. */
struct il_policy_ticket {
    uint32_t index;
    uint64_t seq;
};
const struct il_policy *il_shm_policy_begin(const struct il_shm *shm, struct il_policy_ticket *t);
int il_shm_policy_changed(const struct il_shm *shm, const struct il_policy_ticket *t);

/* Copies the active policy out, consistently. Returns 0, or -EAGAIN if a
 * writer kept changing it. */
int il_shm_policy_read(const struct il_shm *shm, struct il_policy *out);

/* The id (1..IL_MAX_VIAS) of a balancer in the segment's list, added if
 * new; 0 when the list is full. */
uint32_t il_shm_via_id(struct il_shm *shm, const struct il_key *balancer);

/* The balancer of id (from a key slot's via). Returns false for 0 or an
 * unknown id. */
bool il_shm_via_read(const struct il_shm *shm, uint32_t id, struct il_key *balancer);

/* Replaces the active policy. Returns 0, or -EBUSY if another live writer
 * holds the write slot. */
int il_shm_policy_publish(struct il_shm *shm, const struct il_policy *policy);

#endif
