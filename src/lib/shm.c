/* The shared segment: creation, attachment and the policy double buffer. */
#include "shm.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "real.h"

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t p = 64;
    while (p < n && p < (1u << 31))
        p <<= 1;
    return p;
}

static size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

static uint64_t random_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
    }
    return seed;
}

/* The generation into every statistics stripe (shm.h, il_stats), after
 * the header's and before the write slot is released. */
static void copy_generation(struct il_shm_header *hdr, uint64_t generation)
{
    for (unsigned i = 0; i < IL_STAT_STRIPES; i++)
        atomic_store_explicit(&hdr->stats[i].policy_generation, generation,
                              memory_order_release);
}

/* hdr is a private copy of the header (never the mapped one, which
 * another process may be rewriting): the layout is read from it once. */
static void layout(struct il_shm *shm, void *base, const struct il_shm_header *hdr)
{
    char *p = base;
    shm->hdr = base;
    shm->policies = (struct il_policy *)(p + hdr->policy_off);
    shm->keys = (struct il_key_slot *)(p + hdr->keys_off);
    shm->conns = (struct il_conn_slot *)(p + hdr->conns_off);
    shm->sockids = (_Atomic uint64_t *)(p + hdr->sockid_off);
    shm->size = hdr->segment_size;
    shm->key_slots = hdr->key_slots;
    shm->conn_slots = hdr->conn_slots;
    shm->hash_seed = hdr->hash_seed;
    il_shm_pick_stats(shm, getpid());
}

static void init_header(struct il_shm_header *hdr, uint32_t capacity, const char *config_error)
{
    /* Slots are twice the capacity: the key table's probe windows and the
     * connection slot search stay short while at most half are in use. */
    uint32_t key_slots = pow2_at_least((uint64_t)capacity * 2);
    uint32_t conn_slots = pow2_at_least((uint64_t)capacity * 2);
    memcpy(hdr->magic, IL_SHM_MAGIC, sizeof IL_SHM_MAGIC);
    hdr->version = IL_SHM_VERSION;
    hdr->header_size = sizeof *hdr;
    hdr->creator_pid = getpid();
    hdr->created_at = (uint64_t)time(NULL);
    hdr->hash_seed = random_seed();
    hdr->key_slots = key_slots;
    hdr->conn_slots = conn_slots;
    hdr->policy_off = align_up(sizeof *hdr, 64);
    hdr->keys_off = align_up(hdr->policy_off + 2 * sizeof(struct il_policy), 64);
    hdr->conns_off = hdr->keys_off + (uint64_t)key_slots * sizeof(struct il_key_slot);
    /* One identity entry per connection slot: at most half are live. */
    hdr->sockid_slots = conn_slots;
    hdr->sockid_off = align_up(hdr->conns_off + (uint64_t)conn_slots * sizeof(struct il_conn_slot),
                               64);
    hdr->segment_size = align_up(hdr->sockid_off + (uint64_t)conn_slots * sizeof(uint64_t), 4096);
    /* Each stripe's slot searches start 2^26 apart on the scrambled
     * sequence (conntab.c): processes of different stripes do not probe
     * the same slots in step. */
    for (uint32_t i = 0; i < IL_STAT_STRIPES; i++)
        atomic_init(&hdr->stats[i].conn_hint, i << 26);
    if (config_error)
        strncpy(hdr->config_error, config_error, sizeof hdr->config_error - 1);
    strncpy(hdr->service, program_invocation_short_name, sizeof hdr->service - 1);
}

void il_shm_set_service(struct il_shm *shm, const char *name)
{
    if (!name || !*name)
        return;
    memset(shm->hdr->service, 0, sizeof shm->hdr->service);
    strncpy(shm->hdr->service, name, sizeof shm->hdr->service - 1);
}

int il_shm_create(struct il_shm *shm, uint32_t capacity, const struct il_policy *policy,
                  const char *config_error)
{
    return il_shm_create_keep(shm, capacity, policy, config_error, NULL);
}

int il_shm_create_keep(struct il_shm *shm, uint32_t capacity, const struct il_policy *policy,
                       const char *config_error, int *fd_out)
{
    struct il_shm_header proto;
    memset(&proto, 0, sizeof proto);
    init_header(&proto, capacity, config_error);

    int fd = memfd_create(IL_SHM_NAME, MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)proto.segment_size) != 0) {
        int err = errno;
        il_real_close(fd);
        return -err;
    }
    void *base = mmap(NULL, proto.segment_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int err = errno;
    if (base == MAP_FAILED || !fd_out)
        il_real_close(fd);
    if (base == MAP_FAILED)
        return -err;
    if (fd_out)
        *fd_out = fd;
    /* A fresh memfd reads as zeros: only the header needs writing, every
     * slot starts EMPTY / free. */
    memcpy(base, &proto, sizeof proto);
    layout(shm, base, &proto);
    memcpy(&shm->policies[0], policy, sizeof *policy);
    atomic_store_explicit(&shm->hdr->policy_loaded_at, (uint64_t)time(NULL), memory_order_relaxed);
    atomic_store_explicit(&shm->hdr->rate_hold_ms, il_policy_rate_hold_ms(policy),
                          memory_order_relaxed);
    atomic_store_explicit(&shm->hdr->policy_generation, 1, memory_order_release);
    copy_generation(shm->hdr, 1);
    return 0;
}

static bool is_pow2_slots(uint32_t n)
{
    return n >= 64 && n <= 2 * IL_MAX_CAPACITY && (n & (n - 1)) == 0;
}

/* Whether region [off, off + len) starts at a 64-byte boundary at or after
 * from and ends within size; no sum can overflow (all are below 2^63). */
static bool region_ok(uint64_t off, uint64_t len, uint64_t from, uint64_t size)
{
    return off % 64 == 0 && off >= from && off <= size && len <= size - off;
}

/* The layout the header claims, checked against the file's real size:
 * every table lies inside the file, in order, without overlap. */
static bool layout_ok(const struct il_shm_header *h, uint64_t file_size)
{
    if (memcmp(h->magic, IL_SHM_MAGIC, sizeof IL_SHM_MAGIC) != 0 ||
        h->version != IL_SHM_VERSION || h->header_size != sizeof *h)
        return false;
    if (!is_pow2_slots(h->key_slots) || !is_pow2_slots(h->conn_slots))
        return false;
    uint64_t size = h->segment_size;
    if (size > file_size || size > SIZE_MAX || size < sizeof *h)
        return false;
    uint64_t keys_len = (uint64_t)h->key_slots * sizeof(struct il_key_slot);
    uint64_t conns_len = (uint64_t)h->conn_slots * sizeof(struct il_conn_slot);
    uint64_t sockids_len = (uint64_t)h->sockid_slots * sizeof(uint64_t);
    return is_pow2_slots(h->sockid_slots) &&
           region_ok(h->policy_off, 2 * sizeof(struct il_policy), sizeof *h, size) &&
           region_ok(h->keys_off, keys_len, h->policy_off + 2 * sizeof(struct il_policy), size) &&
           region_ok(h->conns_off, conns_len, h->keys_off + keys_len, size) &&
           region_ok(h->sockid_off, sockids_len, h->conns_off + conns_len, size);
}

int il_shm_attach_fd(struct il_shm *shm, int fd, int writable)
{
    /* One copy of the header, read once: the checks and the layout both
     * use it, so a writer changing the shared one meanwhile changes
     * nothing here. */
    struct il_shm_header hdr;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || pread(fd, &hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr ||
        !layout_ok(&hdr, (uint64_t)st.st_size))
        return -EPROTO;
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    void *base = mmap(NULL, hdr.segment_size, prot, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return -errno;
    layout(shm, base, &hdr);
    return 0;
}

void il_shm_detach(struct il_shm *shm)
{
    if (shm->hdr)
        munmap(shm->hdr, shm->size);
    memset(shm, 0, sizeof *shm);
}

/* The policy copies are read while a writer may be rewriting them (the
 * sequence numbers tell the reader to retry), so whole-policy copies go
 * word by word with relaxed atomics: a torn read is detected, never a data
 * race. struct il_policy is a multiple of 8 bytes (it holds uint64_t). */
static void copy_policy(struct il_policy *dst, const struct il_policy *src)
{
    _Static_assert(sizeof(struct il_policy) % sizeof(uint64_t) == 0, "policy size");
    uint64_t *d = (uint64_t *)dst;
    const uint64_t *s = (const uint64_t *)src;
    for (size_t i = 0; i < sizeof *dst / sizeof *d; i++)
        __atomic_store_n(&d[i], __atomic_load_n(&s[i], __ATOMIC_RELAXED), __ATOMIC_RELAXED);
}

const struct il_policy *il_shm_policy_begin(const struct il_shm *shm, struct il_policy_ticket *t)
{
    t->index = atomic_load_explicit(&shm->hdr->policy_active, memory_order_acquire) & 1;
    t->seq = atomic_load_explicit(&shm->hdr->policy_seq[t->index], memory_order_acquire);
    if (t->seq & 1)
        return NULL;
    return &shm->policies[t->index];
}

int il_shm_policy_changed(const struct il_shm *shm, const struct il_policy_ticket *t)
{
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&shm->hdr->policy_seq[t->index], memory_order_relaxed) != t->seq;
}

int il_shm_policy_read(const struct il_shm *shm, struct il_policy *out)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        struct il_policy_ticket t;
        const struct il_policy *p = il_shm_policy_begin(shm, &t);
        if (!p)
            continue;
        copy_policy(out, p);
        if (!il_shm_policy_changed(shm, &t))
            return 0;
    }
    return -EAGAIN;
}

static int writer_alive(int32_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* One writer at a time: the write slot holds the writer's pid, and a slot
 * left by a writer that died is taken over. */
static int claim_writer(struct il_shm_header *hdr)
{
    int32_t me = getpid();
    for (int attempt = 0; attempt < 100; attempt++) {
        int32_t holder = 0;
        if (atomic_compare_exchange_strong(&hdr->policy_writer, &holder, me))
            return 0;
        if (!writer_alive(holder) &&
            atomic_compare_exchange_strong(&hdr->policy_writer, &holder, me))
            return 0;
        usleep(1000);
    }
    return -EBUSY;
}

int il_shm_policy_publish(struct il_shm *shm, const struct il_policy *policy)
{
    struct il_shm_header *hdr = shm->hdr;
    if (claim_writer(hdr) != 0)
        return -EBUSY;
    uint32_t inactive = (atomic_load(&hdr->policy_active) & 1) ^ 1;
    /* Odd sequence while writing: a reader that started on this copy
     * before the previous flip sees the change and retries. */
    atomic_fetch_add(&hdr->policy_seq[inactive], 1);
    atomic_thread_fence(memory_order_release);
    copy_policy(&shm->policies[inactive], policy);
    atomic_fetch_add_explicit(&hdr->policy_seq[inactive], 1, memory_order_release);
    atomic_store_explicit(&hdr->policy_active, inactive, memory_order_release);
    atomic_store(&hdr->policy_loaded_at, (uint64_t)time(NULL));
    copy_generation(hdr, atomic_fetch_add(&hdr->policy_generation, 1) + 1);
    atomic_store_explicit(&hdr->rate_hold_ms, il_policy_rate_hold_ms(policy),
                          memory_order_relaxed);
    atomic_store(&hdr->policy_writer, 0);
    /* A reconciler thread sleeps until its next run on rec_wake: the new
     * policy may change its interval or turn it off. */
    atomic_fetch_add_explicit(&hdr->rec_wake, 1, memory_order_release);
    il_sys(SYS_futex, &hdr->rec_wake, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    return 0;
}

/* The balancer list is append-only: an entry is claimed (0 -> 1), written,
 * then published (2); readers use only published entries. A writer that
 * dies between leaves one entry at 1, skipped by everyone. */
uint32_t il_shm_via_id(struct il_shm *shm, const struct il_key *balancer)
{
    uint64_t hi, lo;
    memcpy(&hi, balancer->addr, 8);
    memcpy(&lo, balancer->addr + 8, 8);
    for (uint32_t i = 0; i < IL_MAX_VIAS; i++) {
        struct il_via *via = &shm->hdr->vias[i];
        uint32_t state = atomic_load_explicit(&via->state, memory_order_acquire);
        if (state == 0 && atomic_compare_exchange_strong_explicit(&via->state, &state, 1,
                                                                  memory_order_acq_rel,
                                                                  memory_order_acquire)) {
            atomic_store_explicit(&via->addr_hi, hi, memory_order_relaxed);
            atomic_store_explicit(&via->addr_lo, lo, memory_order_relaxed);
            atomic_store_explicit(&via->state, 2, memory_order_release);
            return i + 1;
        }
        if (state == 2 && atomic_load_explicit(&via->addr_hi, memory_order_relaxed) == hi &&
            atomic_load_explicit(&via->addr_lo, memory_order_relaxed) == lo)
            return i + 1;
    }
    return 0;
}

bool il_shm_via_read(const struct il_shm *shm, uint32_t id, struct il_key *balancer)
{
    if (id == 0 || id > IL_MAX_VIAS)
        return false;
    struct il_via *via = &shm->hdr->vias[id - 1];
    if (atomic_load_explicit(&via->state, memory_order_acquire) != 2)
        return false;
    uint64_t hi = atomic_load_explicit(&via->addr_hi, memory_order_relaxed);
    uint64_t lo = atomic_load_explicit(&via->addr_lo, memory_order_relaxed);
    memcpy(balancer->addr, &hi, 8);
    memcpy(balancer->addr + 8, &lo, 8);
    balancer->plen = 128;
    return true;
}
