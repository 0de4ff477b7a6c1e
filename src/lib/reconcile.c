/* Reconciliation with the kernel's socket table (see reconcile.h).
 *
 * One run:
 *   1. snapshot every connection slot in use (word, identity, key; in use means
 *      references or fds in flight, conntab.h), then the
 *      keys whose count exceeds the slots counted under them;
 *   2. look every slot's connection up in the kernel by its 4-tuple
 *      (reclookup.h: a hash lookup each, whatever else the machine holds),
 *      or, when that cannot decide (local addresses not learned yet) and
 *      once a minute, dump the kernel's TCP sockets on the service's ports
 *      (listen_ports) that a process still holds (inode != 0), IPv4 and
 *      IPv6, and match them to slots by identity (connid.h: peer address
 *      and port, local port, all in the sock_diag record);
 *   3. downward: a slot in use whose socket is not found is a connection
 *      whose last fd was closed where the library could not see it (a
 *      SIGKILLed holder): it is freed, by a compare-and-swap from the word
 *      seen in step 1, so a slot that changed meanwhile (a connection
 *      accepted during the dump reuses a slot with a new generation) is
 *      never touched.  A dump confirms before anything is freed (the
 *      lookups' misses, or the first dump's);
 *   4. keys: a count above the number of slots counted under it, in both
 *      measurements (before and after the dumps) and with the key's word
 *      unchanged between them, lost its slot to a process killed between
 *      counting and recording; the excess is removed;
 *   5. upward (runs that dumped): held sockets on the ports the policy in force polices that
 *      no slot knows are counted for iplimit stat and reported, never
 *      counted against a key (docs/failure-model.md says why). Sockets on
 *      a listener the policy leaves alone, and every socket while the
 *      limiter is disabled, are not the library's to count: they are
 *      neither reported nor in the figures.
 * Nothing in the host is blocked: the run holds no lock, the netlink socket
 * is non-blocking and opened and closed within the run, and a run that
 * passes its deadline (IL_RECONCILE_DEADLINE_MS inline, the thread's
 * IL_RECONCILE_THREAD_DEADLINE_MS) is abandoned before it changes anything. */
#include "reconcile.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "connid.h"
#include "conntab.h"
#include "keytab.h"
#include "log.h"
#include "forkgate.h"
#include "ownfd.h"
#include "real.h"
#include "reclookup.h"

#define HELD_STATES IL_HELD_STATES

#define FILTER_PORTS 64      /* more ports than this: filter in user space only */
#define RECV_BUF 65536       /* netlink dump batches are at most 32 KiB */
#define MAX_RECVS (1u << 22) /* bound on recv calls per dump (the deadline comes first) */
#define MAX_SUSPECTS 4096    /* keys checked for excess per run; the rest wait */
#define MAX_LOG_LINES 10     /* correction lines per run, then one summary */
#define MAX_UNMATCHED 1024   /* uncounted sockets re-checked at the end of a run */

/* An ident field holding MARK | generation: a run saw this slot in use with
 * no identity recorded.  count_connection overwrites it with the real
 * identity a few instructions after allocating; if the next run still finds
 * the mark of the same generation, the allocating process died in between.
 * Neither bit is ever part of an identity (connid.h). */
#define MARK (1ULL << 63)
#define STILL (1ULL << 62) /* an unmatched socket seen again by the last dump */

static struct il_log_limit fail_log, uncounted_log;

/* A run that only looks connections up sees no socket that no slot knows
 * (step 5): one run a minute at most apart takes the dump anyway. */
#define FULL_EVERY_US (60 * 1000000ULL)
static _Atomic uint64_t last_full_us; /* this process's last run by dump */

static uint32_t word_gen(uint64_t word)
{
    return (uint32_t)(word >> 32) & IL_CONN_GEN_MASK;
}

static uint64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- per-run memory: one private mapping, unmapped at the end ---- */

struct entry {
    uint64_t word;  /* slot word at the snapshot */
    uint64_t ident; /* hash of the slot's identity (0: not recorded yet), or a MARK */
    uint64_t raw_ident; /* the ident field as read */
    uint64_t peer[2];   /* the peer's address, when ident is a hash */
    uint32_t index; /* connection slot */
    uint32_t key;   /* key slot it is counted under */
    uint32_t seen;  /* bit 0: in the first dump or found by a lookup, bit 1: in the second dump */
    uint32_t pad;
};

struct keycount {
    uint32_t key_plus1; /* 0: empty */
    uint32_t slots1;    /* slots in use under this key, first measurement */
    uint32_t slots2;    /* after the dumps */
    uint32_t freed;     /* slots this run freed */
    uint32_t suspect;   /* 1 + index into suspects, or 0 */
};

struct suspect {
    uint64_t word; /* the key's word at the first measurement */
    uint32_t key;
    uint32_t excess;
};

struct run {
    struct il_shm *shm;
    uint64_t deadline_us;
    uint64_t *ports; /* copy of listen_ports */
    uint64_t *policed; /* of those, the ports the policy in force polices */
    uint16_t filter[FILTER_PORTS];
    unsigned nfilter; /* 0: no kernel-side filter */
    int noports;      /* the service has accepted on no policed port yet */
    struct entry *entries;
    uint32_t nentries, cap;
    uint32_t *ident_hash; /* 1 + entry position, 0 empty */
    uint32_t ident_mask;
    struct keycount *keys;
    uint32_t keys_mask;
    struct suspect *suspects;
    uint32_t nsuspects;
    char *buf;
    uint64_t *unmatched; /* identities of held sockets no slot knew at the dump */
    uint64_t seed;       /* the segment's hash seed (connid.h) */
    uint32_t nunmatched;
    uint64_t sockets, uncounted, freed, corrected, removed, lookups_made, dumps;
    unsigned candidates; /* slots with an identity that the first look missed */
    struct il_lookup *lookups;
    int learning; /* this run holds the learned local addresses (reclookup.h) */
    int full;     /* the first look was a dump: the upward figures are new */
    unsigned lines;
    char *arena;
    size_t arena_size;
    int arena_kept; /* the arena is kept for the next run, not unmapped */
};

static uint32_t pow2_above(uint64_t n)
{
    uint32_t p = 64;
    while (p < 2 * n && p < (1u << 30))
        p <<= 1;
    return p;
}

/* The arena of the last run that held the learned addresses (only such a
 * run uses it, one at a time), kept for the next: mapping it afresh each
 * run cost a page fault per page it touched, the largest part of a run
 * by lookups. Its pid tells a forked child that it is not mapped there
 * (MADV_DONTFORK): the child maps its own. */
static struct {
    void *base;
    size_t size;
    pid_t pid;
} kept;

static void *arena_get(struct run *r, size_t size)
{
    pid_t self = getpid();
    if (r->learning && kept.pid == self && kept.size >= size && kept.size / 4 <= size) {
        r->arena_kept = 1;
        r->arena_size = kept.size;
        return kept.base;
    }
    /* Room to grow: a table filling up would otherwise map anew each run. */
    if (r->learning)
        size *= 2;
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    /* The reconciler thread may run while another thread forks: the child
     * must not inherit a copy it would never unmap. */
    madvise(base, size, MADV_DONTFORK);
    r->arena_size = size;
    if (r->learning) {
        if (kept.pid == self)
            munmap(kept.base, kept.size);
        kept.base = base;
        kept.size = size;
        kept.pid = self;
        r->arena_kept = 1;
    }
    return base;
}

static int arena_map(struct run *r)
{
    uint32_t ih = pow2_above(r->cap), kh = pow2_above(r->cap);
    size_t size = 8192 + (size_t)r->cap * sizeof(struct entry) + (size_t)ih * 4 +
                  (size_t)kh * sizeof(struct keycount) + MAX_SUSPECTS * sizeof(struct suspect) +
                  2 * MAX_UNMATCHED * 8 + (size_t)r->cap * sizeof(struct il_lookup) + RECV_BUF +
                  4096 + 8192;
    void *base = arena_get(r, size);
    if (!base)
        return -errno;
    char *p = base;
    r->arena = base;
    r->ports = (uint64_t *)p;
    p += 8192;
    r->policed = (uint64_t *)p;
    p += 8192;
    r->entries = (struct entry *)p;
    p += (size_t)r->cap * sizeof(struct entry);
    r->ident_hash = (uint32_t *)p;
    r->ident_mask = ih - 1;
    p += (size_t)ih * 4;
    r->keys = (struct keycount *)p;
    r->keys_mask = kh - 1;
    p += (size_t)kh * sizeof(struct keycount);
    r->suspects = (struct suspect *)p;
    p += MAX_SUSPECTS * sizeof(struct suspect);
    r->unmatched = (uint64_t *)p;
    p += 2 * MAX_UNMATCHED * 8;
    r->lookups = (struct il_lookup *)p;
    p += (size_t)r->cap * sizeof(struct il_lookup);
    /* Empty sets (a kept arena holds the last run's). */
    memset(r->ident_hash, 0, (size_t)ih * 4);
    memset(r->keys, 0, (size_t)kh * sizeof(struct keycount));
    memset(r->unmatched, 0, 2 * MAX_UNMATCHED * 8);
    r->buf = p;
    return 0;
}

static uint32_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

static struct keycount *key_slot(struct run *r, uint32_t key, int create)
{
    for (uint32_t i = 0, h = mix(key); i <= r->keys_mask; i++, h++) {
        struct keycount *k = &r->keys[h & r->keys_mask];
        if (k->key_plus1 == key + 1)
            return k;
        if (k->key_plus1 == 0) {
            if (!create)
                return NULL;
            k->key_plus1 = key + 1;
            return k;
        }
    }
    return NULL;
}

/* ---- step 1: the table ---- */

/* Slot searches start anywhere in the table (conntab.c), so every slot
 * may be in use. */
static uint32_t scan_limit(const struct il_shm *shm)
{
    return shm->hdr->conn_slots;
}

static uint32_t count_in_use(const struct il_shm *shm)
{
    uint32_t n = 0, limit = scan_limit(shm);
    for (uint32_t i = 0; i < limit; i++)
        n += il_connword_in_use(atomic_load_explicit(&shm->conns[i].word, memory_order_relaxed));
    return n;
}

/* The hash of the identity of the connection in slot (connid.h), 0 while
 * its allocator has not recorded it yet (the field may still hold the
 * previous connection's), or a MARK. raw is the field as read, for the
 * compare-and-swap that marks; peer receives the peer's address. The
 * acquire pairs with the recorder's release (il_conntab_set_ident): a
 * field holding the word's generation comes with that connection's peer.
 * (Should the slot be freed and taken again meanwhile, the address may be
 * a later connection's: harmless, as nothing is freed but by a
 * compare-and-swap from the word read before, which has changed.) */
static uint64_t slot_ident(const struct run *r, struct il_conn_slot *slot, uint64_t word,
                           uint64_t *raw, uint64_t peer[2])
{
    *raw = atomic_load_explicit(&slot->ident, memory_order_acquire);
    if (*raw & MARK)
        return *raw;
    if (!(*raw & IL_CONNID_SET) || il_connid_word_gen(*raw) != word_gen(word))
        return 0;
    peer[0] = atomic_load_explicit(&slot->peer[0], memory_order_relaxed);
    peer[1] = atomic_load_explicit(&slot->peer[1], memory_order_relaxed);
    return il_connid_of(r->seed, peer[0], peer[1], il_connid_word_peer_port(*raw),
                        il_connid_word_local_port(*raw));
}

/* Records every slot in use. Returns 0, or -1 if more slots came into use
 * than there is room for (the run is abandoned: counts must be complete). */
static int snapshot(struct run *r)
{
    struct il_shm *shm = r->shm;
    uint32_t limit = scan_limit(shm);
    for (uint32_t i = 0; i < limit; i++) {
        struct il_conn_slot *slot = &shm->conns[i];
        /* Acquire: the key and identity stored by the allocator before a
         * release we synchronise with are visible (see the residual race
         * in docs/failure-model.md for an allocator that stalls before). */
        uint64_t word = atomic_load_explicit(&slot->word, memory_order_acquire);
        if (!il_connword_in_use(word))
            continue;
        if (r->nentries == r->cap)
            return -1;
        struct entry *e = &r->entries[r->nentries++];
        e->word = word;
        e->index = i;
        e->seen = 0;
        e->key = atomic_load_explicit(&slot->key_index, memory_order_acquire);
        e->ident = slot_ident(r, slot, word, &e->raw_ident, e->peer);
        struct keycount *k = key_slot(r, e->key, 1);
        if (k)
            k->slots1++;
    }
    return 0;
}

static void index_idents(struct run *r)
{
    for (uint32_t pos = 0; pos < r->nentries; pos++) {
        uint64_t ident = r->entries[pos].ident;
        if (ident == 0 || (ident & MARK))
            continue;
        uint32_t h = mix(ident);
        while (r->ident_hash[h & r->ident_mask])
            h++;
        r->ident_hash[h & r->ident_mask] = pos + 1;
    }
}

/* Marks every entry with this identity seen in the given pass (several
 * slots may share one: connid.h); 0 if none. */
static int see_ident(struct run *r, uint64_t ident, uint32_t pass_bit)
{
    int found = 0;
    for (uint32_t h = mix(ident);; h++) {
        uint32_t pos = r->ident_hash[h & r->ident_mask];
        if (!pos)
            return found;
        if (r->entries[pos - 1].ident == ident) {
            r->entries[pos - 1].seen |= pass_bit;
            found = 1;
        }
    }
}

/* Keys whose count is above the slots counted under them. Pages of the key
 * table that were never touched are not resident and hold no key: mincore
 * lets the scan skip them without faulting them in. */
static void find_suspects(struct run *r)
{
    struct il_shm *shm = r->shm;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t start = (uintptr_t)shm->keys & ~(uintptr_t)(page - 1);
    uintptr_t end = (uintptr_t)(shm->keys + shm->hdr->key_slots);
    size_t npages = (end - start + (size_t)page - 1) / (size_t)page;
    unsigned char *vec = mmap(NULL, npages, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (vec == MAP_FAILED)
        return;
    if (mincore((void *)start, end - start, vec) == 0) {
        for (uint32_t i = 0; i < shm->hdr->key_slots && r->nsuspects < MAX_SUSPECTS; i++) {
            if (!(vec[((uintptr_t)&shm->keys[i] - start) / (size_t)page] & 1))
                continue;
            uint64_t word = atomic_load_explicit(&shm->keys[i].word, memory_order_acquire);
            uint32_t count = il_keyword_count(word);
            if (il_keyword_state(word) != IL_KEY_READY || count == 0)
                continue;
            struct keycount *k = key_slot(r, i, 1);
            if (!k || count <= k->slots1)
                continue;
            r->suspects[r->nsuspects] = (struct suspect){word, i, count - k->slots1};
            k->suspect = ++r->nsuspects;
        }
    }
    munmap(vec, npages);
}

/* ---- step 2: the kernel ---- */

/* The policed ports among the listeners': none while the limiter is
 * disabled (or the policy cannot be read consistently this run). */
static void build_policed(struct run *r)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        struct il_policy_ticket ticket;
        const struct il_policy *p = il_shm_policy_begin(r->shm, &ticket);
        if (!p)
            continue;
        int enabled = p->enabled, all = p->all_ports;
        for (unsigned w = 0; w < 65536 / 64; w++)
            r->policed[w] = !enabled ? 0 : r->ports[w] & (all ? ~0ULL : p->ports[w]);
        if (!il_shm_policy_changed(r->shm, &ticket))
            return;
    }
    memset(r->policed, 0, 8192);
}

static void build_filter(struct run *r)
{
    unsigned nports = 0;
    for (unsigned w = 0; w < 65536 / 64; w++) {
        r->ports[w] = atomic_load_explicit(&r->shm->hdr->listen_ports[w], memory_order_relaxed);
        for (uint64_t b = r->ports[w]; b; b &= b - 1, nports++)
            if (nports < FILTER_PORTS)
                r->filter[nports] = (uint16_t)(w * 64 + (unsigned)__builtin_ctzll(b));
    }
    r->nfilter = nports <= FILTER_PORTS ? nports : 0;
    r->noports = nports == 0;
    build_policed(r);
}

static int has_port(const struct run *r, uint16_t port)
{
    return (r->ports[port / 64] >> (port % 64)) & 1;
}

static int is_policed(const struct run *r, uint16_t port)
{
    return (r->policed[port / 64] >> (port % 64)) & 1;
}

/* Bytecode "source port is p1 or p2 or ...": each test is S_EQ (8 bytes:
 * on a match go on to the JMP after it, else skip over that JMP to the
 * next test; the last test's miss lands 4 bytes past the end, which
 * rejects), and each JMP jumps to the very end, which accepts. The kernel
 * audits that every jump lands on an instruction reached by the "yes"
 * chain, which this layout keeps. */
static size_t build_bytecode(const struct run *r, struct inet_diag_bc_op *ops)
{
    size_t total = r->nfilter * 8 + (r->nfilter - 1) * 4, pos = 0;
    unsigned n = 0;
    for (unsigned i = 0; i < r->nfilter; i++) {
        ops[n++] = (struct inet_diag_bc_op){INET_DIAG_BC_S_EQ, 8, 12};
        ops[n++] = (struct inet_diag_bc_op){0, 0, r->filter[i]};
        pos += 8;
        if (i + 1 < r->nfilter) {
            ops[n++] = (struct inet_diag_bc_op){INET_DIAG_BC_JMP, 4, (unsigned short)(total - pos)};
            pos += 4;
        }
    }
    return total;
}

/* The request: a header, the request proper (v2 by family, or the older
 * v1 form of both families), then the bytecode attribute. */
#define REQUEST_MAX                                                                     \
    (NLMSG_ALIGN(NLMSG_HDRLEN + sizeof(struct inet_diag_req)) + NLA_HDRLEN +            \
     FILTER_PORTS * 3 * sizeof(struct inet_diag_bc_op))

/* family AF_UNSPEC: one request for both families, in the older form
 * (TCPDIAG_GETSOCK, struct inet_diag_req), which the kernel serves with a
 * single walk of its TCP hash tables, both families at once; a request by
 * family walks them whole each time. The walk visits every socket in the
 * tables, TIME_WAIT ones included, whatever the filters (the states and
 * ports are tested per socket, inside the walk): one walk instead of two
 * halves the cost that grows with the machine's sockets (BENCHMARKS.md,
 * reccost). */
static int send_request(const struct run *r, int fd, int family, uint32_t seq)
{
    union {
        struct nlmsghdr nlh;
        char bytes[REQUEST_MAX];
    } msg;
    memset(&msg, 0, sizeof msg);
    size_t reqlen;
    if (family == AF_UNSPEC) {
        struct inet_diag_req *req = NLMSG_DATA(&msg.nlh);
        reqlen = sizeof *req;
        msg.nlh.nlmsg_type = TCPDIAG_GETSOCK;
        req->idiag_family = AF_INET; /* not a filter in this form */
        req->idiag_states = HELD_STATES;
    } else {
        struct inet_diag_req_v2 *req = NLMSG_DATA(&msg.nlh);
        reqlen = sizeof *req;
        msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
        req->sdiag_family = (uint8_t)family;
        req->sdiag_protocol = IPPROTO_TCP;
        req->idiag_states = HELD_STATES;
    }
    msg.nlh.nlmsg_len = NLMSG_LENGTH(reqlen);
    if (r->nfilter) {
        struct nlattr *attr = (struct nlattr *)(msg.bytes + NLMSG_ALIGN(msg.nlh.nlmsg_len));
        size_t bclen = build_bytecode(r, (struct inet_diag_bc_op *)((char *)attr + NLA_HDRLEN));
        attr->nla_type = INET_DIAG_REQ_BYTECODE;
        attr->nla_len = (unsigned short)(NLA_HDRLEN + bclen);
        msg.nlh.nlmsg_len = NLMSG_ALIGN(msg.nlh.nlmsg_len) + NLA_ALIGN(attr->nla_len);
    }
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.nlh.nlmsg_seq = seq;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    ssize_t n = sendto(fd, &msg, msg.nlh.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel);
    return n == (ssize_t)msg.nlh.nlmsg_len ? 0 : -(n < 0 ? errno : EIO);
}

/* The cell for ident in the set of unmatched sockets (see step 5). */
static uint64_t *unmatched_find(struct run *r, uint64_t ident)
{
    for (uint32_t i = 0, h = mix(ident); i < 2 * MAX_UNMATCHED; i++, h++) {
        uint64_t *cell = &r->unmatched[h % (2 * MAX_UNMATCHED)];
        if (*cell == 0 || (*cell & ~(MARK | STILL)) == ident)
            return cell;
    }
    return NULL;
}

static void on_socket(struct run *r, const struct inet_diag_msg *m, uint32_t pass_bit)
{
    if (m->idiag_inode == 0 || !has_port(r, ntohs(m->id.idiag_sport)))
        return; /* orphaned, in an accept queue, or not on the service's ports */
    if (r->learning && pass_bit != 4)
        il_learn_add(m);
    uint64_t ident = il_connid_from_diag(r->seed, m);
    if (pass_bit == 4) { /* confirming the unmatched ones: still held? */
        uint64_t *cell = unmatched_find(r, ident);
        if (cell && *cell == ident)
            *cell |= STILL;
        return;
    }
    int found = see_ident(r, ident, pass_bit);
    /* Every held socket counts for the downward check above; only those on
     * policed ports can be missing from the table. */
    if (pass_bit == 1 && is_policed(r, ntohs(m->id.idiag_sport))) {
        r->sockets++;
        uint64_t *cell = found || r->nunmatched >= MAX_UNMATCHED
                             ? NULL : unmatched_find(r, ident);
        if (cell && *cell == 0) {
            *cell = ident;
            r->nunmatched++;
        } else if (!found && !cell) {
            r->uncounted++;
        }
    }
}

/* Parses one batch. Returns 1 at the end of the dump, 0 for more, -errno. */
static int parse_batch(struct run *r, size_t len, uint32_t seq, uint32_t pass_bit)
{
    struct nlmsghdr *h = (struct nlmsghdr *)r->buf;
    for (; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_seq != seq)
            continue;
        if (h->nlmsg_flags & NLM_F_DUMP_INTR)
            return -EINTR; /* the dump may have missed sockets */
        if (h->nlmsg_type == NLMSG_DONE)
            return 1;
        if (h->nlmsg_type == NLMSG_ERROR) {
            const struct nlmsgerr *err = NLMSG_DATA(h);
            return err->error ? err->error : -EPROTO;
        }
        /* Answers to the older form are typed as its request was. */
        if ((h->nlmsg_type == SOCK_DIAG_BY_FAMILY || h->nlmsg_type == TCPDIAG_GETSOCK) &&
            h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
            on_socket(r, NLMSG_DATA(h), pass_bit);
    }
    return 0;
}

static int wait_readable(const struct run *r, int fd)
{
    uint64_t now = clock_us();
    if (now >= r->deadline_us)
        return -ETIMEDOUT;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ms = (int)((r->deadline_us - now + 999) / 1000);
    if (poll(&p, 1, ms) < 0 && errno != EINTR)
        return -errno;
    return 0;
}

/* The netlink socket of a dump is one of the library's own fds (ownfd.h):
 * a run may be in the reconciler thread while a host thread closes fds it
 * does not own and reuses the number, so every recv and the final close
 * first check that it is still this socket. */
static int diag_open(struct il_own_fd **s)
{
    /* Made low, then moved high: no fork may copy it in between. */
    il_forkgate_enter();
    int fd = il_raw_socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_SOCK_DIAG);
    int err = 0;
    if (fd < 0)
        err = -errno;
    else if (!(*s = il_own_fd_take(fd)))
        err = -errno;
    il_forkgate_leave();
    return err;
}

static int collect(struct run *r, const struct il_own_fd *s, uint32_t seq, uint32_t pass_bit)
{
    for (uint32_t i = 0; i < MAX_RECVS; i++) {
        if (!il_own_fd_valid(s))
            return -EBADF;
        ssize_t n = recv(il_own_fd_num(s), r->buf, RECV_BUF, MSG_DONTWAIT);
        if (n < 0) {
            int err = errno == EAGAIN || errno == EINTR ? wait_readable(r, il_own_fd_num(s)) : -errno;
            if (err)
                return err;
            continue;
        }
        int done = parse_batch(r, (size_t)n, seq, pass_bit);
        if (done)
            return done > 0 ? 0 : done;
        if (clock_us() >= r->deadline_us)
            return -ETIMEDOUT;
    }
    return -ETIMEDOUT;
}

static atomic_int no_compat; /* the kernel refused the one-walk request */

static int dump_on(struct run *r, const struct il_own_fd *s, uint32_t pass_bit);

/* One complete dump of IPv4 and IPv6 TCP sockets, marking entries seen
 * with pass_bit. The socket is opened and closed here: no fd outlives it. */
static int dump(struct run *r, uint32_t pass_bit)
{
    struct il_own_fd *s = NULL;
    int err = diag_open(&s);
    if (err)
        return err;
    int learn = r->learning && pass_bit != 4;
    r->dumps++;
    if (learn)
        il_learn_begin();
    err = dump_on(r, s, pass_bit);
    if (!err && learn)
        il_learn_commit();
    il_own_fd_close(s);
    return err;
}

static int dump_on(struct run *r, const struct il_own_fd *s, uint32_t pass_bit)
{
    int err = 0;
    if (!atomic_load_explicit(&no_compat, memory_order_relaxed)) {
        uint32_t seq = (uint32_t)clock_us() ^ (pass_bit << 8 | 3);
        err = send_request(r, il_own_fd_num(s), AF_UNSPEC, seq);
        if (!err)
            err = collect(r, s, seq, pass_bit);
        /* A kernel that refuses the older form (before any socket was
         * reported: its answer is a lone error) is asked by family. */
        if (err != -EOPNOTSUPP && err != -EINVAL && err != -ENOENT)
            return err;
        atomic_store_explicit(&no_compat, 1, memory_order_relaxed);
        err = 0;
    }
    static const int families[] = {AF_INET, AF_INET6};
    for (unsigned f = 0; f < 2 && !err; f++) {
        uint32_t seq = (uint32_t)clock_us() ^ (pass_bit << 8 | f);
        err = send_request(r, il_own_fd_num(s), families[f], seq);
        if (!err)
            err = collect(r, s, seq, pass_bit);
    }
    return err;
}

/* ---- step 2, by lookups: each connection by its 4-tuple ---- */

/* Every slot with a recorded identity is looked up at the local addresses
 * learned for its port (reclookup.h), each address a round for the slots
 * not found yet; a slot found is seen (bit 0), as if in a first dump.
 * Returns 1 when every one was looked up, 0 when the run must take the
 * dump instead (a port with no or too many learned addresses: a slot
 * there has nothing decisive to be looked up by; the lookups failed), or
 * -ETIMEDOUT. A slot no lookup found is only a candidate: it is freed only
 * if the dump that follows (reconcile) lacks it too. */
static int look_up(struct run *r)
{
    if (!r->learning)
        return 0;
    uint32_t n = 0;
    for (uint32_t pos = 0; pos < r->nentries; pos++) {
        const struct entry *e = &r->entries[pos];
        if (e->ident == 0 || (e->ident & MARK))
            continue;
        if (!il_learn_port(il_connid_word_local_port(e->raw_ident)))
            return 0;
        n++;
    }
    if (n == 0)
        return 1;
    struct il_own_fd *s = NULL;
    int err = diag_open(&s);
    if (err)
        return 0;
    for (unsigned round = 0; round < IL_LEARN_ADDRS && !err; round++) {
        uint32_t nq = 0;
        for (uint32_t pos = 0; pos < r->nentries; pos++) {
            const struct entry *e = &r->entries[pos];
            if (e->ident == 0 || (e->ident & MARK) || (e->seen & 1))
                continue;
            uint16_t port = il_connid_word_local_port(e->raw_ident);
            const struct il_learned_port *lp = il_learn_port(port);
            if (round >= lp->n)
                continue;
            r->lookups[nq++] = (struct il_lookup){
                .peer = {e->peer[0], e->peer[1]},
                .local = &lp->a[round],
                .peer_port_n = il_connid_word_peer_port(e->raw_ident),
                .local_port = port,
                .tag = pos,
            };
        }
        if (nq == 0)
            break;
        err = il_lookup_all(s, r->lookups, nq, r->buf, RECV_BUF, r->deadline_us);
        r->lookups_made += nq;
        for (uint32_t i = 0; i < nq && !err; i++)
            if (r->lookups[i].hit)
                r->entries[r->lookups[i].tag].seen |= 1;
    }
    il_own_fd_close(s);
    if (err == -ETIMEDOUT)
        return err;
    return err ? 0 : 1;
}

/* ---- step 3: slots of connections the kernel no longer has ---- */

/* A slot seen in use without an identity gets the mark of its generation,
 * unless its allocator recorded the identity or moved on meanwhile. The
 * compare-and-swap is from the field as read, which did not hold this
 * generation; the recorder's one store (il_conntab_set_ident) holds it:
 * the mark lands before that store, which overwrites it, or not at all. */
static void mark_unrecorded(struct il_conn_slot *slot, const struct entry *e)
{
    uint64_t seen = e->raw_ident, mark = MARK | word_gen(e->word);
    if (atomic_load_explicit(&slot->word, memory_order_relaxed) != e->word)
        return;
    atomic_compare_exchange_strong(&slot->ident, &seen, mark);
}

/* Decides after the first dump; counts candidates that need a second. */
static void classify(struct run *r)
{
    for (uint32_t pos = 0; pos < r->nentries; pos++) {
        struct entry *e = &r->entries[pos];
        if (e->ident == 0) {
            mark_unrecorded(&r->shm->conns[e->index], e);
        } else if (!(e->ident & MARK) && !(e->seen & 1)) {
            /* A slot whose word moved since the snapshot (closed, under a
             * churn the common case) cannot be freed from that word: it
             * costs no second dump. It counts as seen, so that a word that
             * moves back (a dup closed again) is not freed unconfirmed. */
            if (atomic_load_explicit(&r->shm->conns[e->index].word, memory_order_relaxed) !=
                e->word)
                e->seen |= 2;
            else
                r->candidates++;
        }
    }
}

/* ident_now: the slot's ident field now. */
static int is_dead(const struct entry *e, uint64_t ident_now)
{
    if (e->ident == (MARK | word_gen(e->word)))
        return ident_now == e->ident; /* no identity for a whole interval */
    if (e->ident == 0 || (e->ident & MARK))
        return 0;
    /* Missing from both looks, and still the same connection. */
    return !(e->seen & 3) && ident_now == e->raw_ident;
}

static void free_dead(struct run *r)
{
    struct il_shm *shm = r->shm;
    for (uint32_t pos = 0; pos < r->nentries; pos++) {
        struct entry *e = &r->entries[pos];
        struct il_conn_slot *slot = &shm->conns[e->index];
        if (!is_dead(e, atomic_load_explicit(&slot->ident, memory_order_relaxed)))
            continue;
        /* Only from the exact word of the snapshot: a slot reused by a
         * connection accepted since (new generation) or referenced anew
         * (a dup, a fork: refs changed) is left alone. Stale handles to it
         * in fd maps fail their generation check later. */
        uint64_t word = e->word;
        uint64_t freed = word & ~IL_CONN_COUNTS_MASK; /* references and in flight */
        if (!atomic_compare_exchange_strong_explicit(&slot->word, &word, freed,
                                                     memory_order_acq_rel, memory_order_relaxed))
            continue;
        il_keytab_release(shm, e->key);
        r->freed++;
        struct keycount *k = key_slot(r, e->key, 0);
        if (k)
            k->freed++;
    }
}

/* ---- step 4: key counts without slots ---- */

static void recount(struct run *r)
{
    struct il_shm *shm = r->shm;
    uint32_t limit = scan_limit(shm);
    for (uint32_t i = 0; i < limit; i++) {
        uint64_t word = atomic_load_explicit(&shm->conns[i].word, memory_order_acquire);
        if (!il_connword_in_use(word))
            continue;
        struct keycount *k =
            key_slot(r, atomic_load_explicit(&shm->conns[i].key_index, memory_order_acquire), 0);
        if (k)
            k->slots2++;
    }
}

/* One line per corrected key: fmt takes the key, n and the open count. */
static void log_key(struct run *r, uint32_t index, const char *fmt, uint32_t n)
    __attribute__((format(printf, 3, 0)));
static void log_key(struct run *r, uint32_t index, const char *fmt, uint32_t n)
{
    struct il_key key;
    uint32_t count = 0;
    char name[IL_KEY_STRLEN];
    if (r->lines++ >= MAX_LOG_LINES || !il_keytab_read(r->shm, index, &key, &count))
        return;
    il_log(LOG_WARNING, fmt, il_key_format(&key, name), n, count);
}

/* The excess is taken off only if the key's word did not change between
 * the two measurements (no accept or close of that key in between, so the
 * excess is not an accept or a close in flight) and by the smaller of the
 * two excesses. */
static void correct_key(struct run *r, const struct suspect *s)
{
    struct il_key_slot *slot = &r->shm->keys[s->key];
    struct keycount *k = key_slot(r, s->key, 0);
    uint32_t count = il_keyword_count(s->word);
    if (!k || k->freed || count <= k->slots2)
        return;
    uint32_t excess = count - k->slots2 < s->excess ? count - k->slots2 : s->excess;
    uint64_t word = s->word;
    if (!atomic_compare_exchange_strong_explicit(&slot->word, &word, s->word - excess,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return;
    r->corrected++;
    r->removed += excess;
    log_key(r, s->key, "reconcile: %s: %u counts without a recorded connection (a process "
                       "killed mid-accept or mid-close?) removed; %u open now", excess);
}

/* A key is corrected only when the previous completed run (of any
 * process of the service: the list is in the segment) saw it above its
 * slots and left it with the very same word: the key was quiet from the
 * end of that run to the end of this one, not just for one run. A run by lookups lasts milliseconds: an accept
 * descheduled that long between counting its key and taking its slot (or a
 * close between freeing its slot and uncounting its key) looks like an
 * excess within one run, and taking it off would leave the key one below
 * its connections for good. Runs do not overlap but for one that outlasts
 * the interval; a list torn by such an overlap can only match a key whose
 * word is again what a run saw, the same condition as an untorn one. */
static bool seen_before(const struct il_shm_header *hdr, uint32_t n, uint32_t *pos,
                        const struct suspect *s)
{
    while (*pos < n && atomic_load_explicit(&hdr->rec_prev[*pos].key, memory_order_relaxed) < s->key)
        ++*pos;
    return *pos < n && atomic_load_explicit(&hdr->rec_prev[*pos].key, memory_order_relaxed) == s->key &&
           atomic_load_explicit(&hdr->rec_prev[*pos].word, memory_order_relaxed) == s->word;
}

/* Each suspect is kept with its key's word as this run leaves it (after
 * the slots of that key it freed and any correction), so that the next run
 * compares with what a quiet key still holds. */
static void remember_suspects(struct il_shm_header *hdr, const struct run *r)
{
    uint32_t n = r->nsuspects < IL_REC_PREV_SUSPECTS ? r->nsuspects : IL_REC_PREV_SUSPECTS;
    atomic_store_explicit(&hdr->rec_prev_n, 0, memory_order_relaxed);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t now = atomic_load_explicit(&r->shm->keys[r->suspects[i].key].word,
                                            memory_order_relaxed);
        atomic_store_explicit(&hdr->rec_prev[i].word, now, memory_order_relaxed);
        atomic_store_explicit(&hdr->rec_prev[i].key, r->suspects[i].key, memory_order_relaxed);
    }
    atomic_store_explicit(&hdr->rec_prev_n, n, memory_order_release);
}

static void correct_keys(struct run *r)
{
    struct il_shm_header *hdr = r->shm->hdr;
    if (r->nsuspects) {
        recount(r);
        uint32_t n = atomic_load_explicit(&hdr->rec_prev_n, memory_order_acquire), pos = 0;
        if (n > IL_REC_PREV_SUSPECTS)
            n = IL_REC_PREV_SUSPECTS; /* a forged segment: stay inside the list */
        for (uint32_t i = 0; i < r->nsuspects; i++)
            if (seen_before(hdr, n, &pos, &r->suspects[i]))
                correct_key(r, &r->suspects[i]);
    }
    remember_suspects(hdr, r);
}

static void log_freed(struct run *r)
{
    for (uint32_t i = 0; i <= r->keys_mask && r->freed; i++) {
        struct keycount *k = &r->keys[i];
        if (k->key_plus1 && k->freed)
            log_key(r, k->key_plus1 - 1, "reconcile: %s: %u connections the kernel no longer "
                                         "has (a process killed?) were still counted; "
                                         "released, %u open now", k->freed);
    }
    if (r->lines > MAX_LOG_LINES)
        il_log(LOG_WARNING, "reconcile: %u more corrected keys not logged",
               r->lines - MAX_LOG_LINES);
}

/* ---- step 5: held but not counted ---- */

/* A socket accepted just before the dump may have been counted since; only
 * those still unknown to every slot now are reported. The identities are kept
 * in a small open-addressing set; a match sets MARK on its entry. */
static void recheck_unmatched(struct run *r)
{
    struct il_shm *shm = r->shm;
    uint32_t limit = scan_limit(shm);
    for (uint32_t i = 0; i < limit && r->nunmatched; i++) {
        uint64_t word = atomic_load_explicit(&shm->conns[i].word, memory_order_acquire);
        if (!il_connword_in_use(word))
            continue;
        uint64_t raw, peer[2];
        uint64_t ident = slot_ident(r, &shm->conns[i], word, &raw, peer);
        uint64_t *cell = ident && !(ident & MARK) ? unmatched_find(r, ident) : NULL;
        if (cell && *cell)
            *cell |= MARK;
    }
    uint64_t left = 0;
    for (uint32_t i = 0; i < 2 * MAX_UNMATCHED; i++)
        left += r->unmatched[i] != 0 && !(r->unmatched[i] & MARK);
    /* A rejected connection lives until the wrapper closes it: only those
     * the kernel still lists after all this are reported. */
    if (left && dump(r, 4) == 0)
        for (uint32_t i = 0; i < 2 * MAX_UNMATCHED; i++)
            r->uncounted += (r->unmatched[i] & (MARK | STILL)) == STILL;
}

/* ---- the run ---- */

static void publish(struct run *r, uint64_t started)
{
    struct il_shm_header *hdr = r->shm->hdr;
    atomic_store_explicit(&hdr->rec_last_usec, clock_us() - started, memory_order_relaxed);
    /* A run by lookups has not seen the sockets no slot knows: the figures
     * of the last dump stand. */
    if (r->full) {
        atomic_store_explicit(&hdr->rec_last_sockets, r->sockets, memory_order_relaxed);
        atomic_store_explicit(&hdr->rec_last_uncounted, r->uncounted, memory_order_relaxed);
    }
    atomic_store_explicit(&hdr->rec_last_freed, r->freed, memory_order_relaxed);
    atomic_store_explicit(&hdr->rec_last_corrected, r->corrected, memory_order_relaxed);
    atomic_fetch_add_explicit(&hdr->rec_slots_freed, r->freed, memory_order_relaxed);
    atomic_fetch_add_explicit(&hdr->rec_keys_corrected, r->corrected, memory_order_relaxed);
    atomic_fetch_add_explicit(&hdr->rec_counts_removed, r->removed, memory_order_relaxed);
    atomic_fetch_add_explicit(&hdr->rec_lookups, r->lookups_made, memory_order_relaxed);
    atomic_fetch_add_explicit(&hdr->rec_dumps, r->dumps, memory_order_relaxed);
    atomic_store_explicit(&hdr->rec_last_error, 0, memory_order_relaxed);
    atomic_store_explicit(&hdr->rec_last_run, (uint64_t)time(NULL), memory_order_relaxed);
    atomic_fetch_add_explicit(&hdr->rec_runs, 1, memory_order_release);
    if (r->full && r->uncounted)
        il_log_limited(&uncounted_log, 3600, LOG_NOTICE,
                       "reconcile: %llu open connections on the service's ports are not "
                       "counted (table full, inherited across exec, or outbound from a "
                       "listening port); they are left uncounted",
                       (unsigned long long)r->uncounted);
}

static int abandon(struct run *r, int err)
{
    struct il_shm_header *hdr = r->shm->hdr;
    atomic_fetch_add_explicit(&hdr->rec_failed, 1, memory_order_relaxed);
    atomic_store_explicit(&hdr->rec_last_error, -err, memory_order_relaxed);
    il_log_limited(&fail_log, 3600, LOG_ERR,
                   "reconcile: cannot check the counts against the kernel's sockets "
                   "(sock_diag): %s; counts left as they are",
                   err == -ETIMEDOUT ? "took too long" : strerrordesc_np(-err));
    return err;
}

/* Steps 1-5 on a prepared run. Returns 0 or -errno (nothing changed). */
static int reconcile(struct run *r)
{
    if (snapshot(r) != 0)
        return -EAGAIN;
    find_suspects(r);
    index_idents(r);
    int err = r->full ? 0 : look_up(r);
    if (err < 0)
        return err;
    if (err == 0) {
        /* No lookups, or not all: the first look is a dump (which also
         * learns the local addresses for the next run's lookups). */
        r->full = 1;
        if ((err = dump(r, 1)) != 0)
            return err;
    }
    classify(r);
    if (r->candidates && (err = dump(r, 2)) != 0)
        return err;
    /* Past the deadline nothing is changed: the snapshot is too old to
     * tell a slow allocator from a dead one with any margin. */
    if (clock_us() >= r->deadline_us)
        return -ETIMEDOUT;
    free_dead(r);
    correct_keys(r);
    if (r->full)
        recheck_unmatched(r);
    log_freed(r);
    return 0;
}

int il_reconcile_run(struct il_shm *shm)
{
    return il_reconcile_run_within(shm, IL_RECONCILE_DEADLINE_MS);
}

int il_reconcile_run_within(struct il_shm *shm, unsigned deadline_ms)
{
    uint64_t started = clock_us();
    struct run r;
    memset(&r, 0, sizeof r);
    r.shm = shm;
    r.seed = shm->hdr->hash_seed;
    r.deadline_us = started + deadline_ms * 1000ULL;
    uint32_t in_use = count_in_use(shm);
    r.cap = in_use + in_use / 4 + 1024;
    r.learning = il_learn_take();
    int err = arena_map(&r);
    if (err) {
        if (r.learning)
            il_learn_give();
        return abandon(&r, err);
    }
    atomic_store_explicit(&shm->hdr->rec_runner, getpid(), memory_order_relaxed);
    build_filter(&r);
    /* The upward check (step 5) needs a dump: one run in FULL_EVERY_US
     * takes it whatever the lookups would find. */
    uint64_t last = atomic_load_explicit(&last_full_us, memory_order_relaxed);
    r.full = !r.learning || last == 0 || started - last >= FULL_EVERY_US;
    err = r.noports ? 0 : reconcile(&r);
    if (!err && r.full)
        atomic_store_explicit(&last_full_us, started, memory_order_relaxed);
    if (err)
        abandon(&r, err);
    else
        publish(&r, started);
    atomic_store_explicit(&shm->hdr->rec_runner, 0, memory_order_relaxed);
    if (!r.arena_kept)
        munmap(r.arena, r.arena_size);
    if (r.learning)
        il_learn_give(); /* after the last use of the kept arena */
    return err;
}
