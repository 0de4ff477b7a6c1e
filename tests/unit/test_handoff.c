/* Unit tests for connections handed between processes at the table level:
 * the connection slot word with references and fds in flight
 * (src/lib/conntab.c) and the socket identity index (src/lib/sockid.c), on
 * a real segment made by il_shm_create; then processes that send, receive
 * and close at random, racing, until every count is exactly zero. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../src/lib/conntab.h"
#include "../../src/lib/keytab.h"
#include "../../src/lib/shm.h"
#include "../../src/lib/sockid.h"
#include "tap.h"
#include "unit_segment.h"

#define RACE_PAIRS 2
#define RACE_ITERS 20000
#define RING 64
#define RACE_KEYS 3

static struct il_shm shm;

static uint64_t word_of(uint64_t handle)
{
    return atomic_load(&shm.conns[il_handle_index(handle)].word);
}

static void test_word(void)
{
    unit_segment(&shm, 1, NULL);
    uint64_t h = il_conntab_alloc(&shm, 42), w;
    IS_U(il_connword_refs(word_of(h)), 1, "alloc: 1 reference");
    IS_U(il_connword_inflight(word_of(h)), 0, "alloc: nothing in flight");
    IS_I(il_conntab_send(&shm, h), 0, "send: in-flight reference taken");
    IS_U(il_connword_inflight(word_of(h)), 1, "send: 1 in flight");
    IS_U(il_conntab_unref(&shm, h), IL_NO_KEY, "sender closes before the receipt: not the last");
    tap_ok(il_connword_in_use(word_of(h)), "only in flight: the slot stays in use");
    IS_U(il_connword_gen(word_of(h)), il_handle_gen(h), "and keeps its generation");
    IS_I(il_conntab_receive(&shm, h, 1, &w), 0, "receipt converts the in-flight reference");
    IS_U(il_connword_refs(w), 1, "receipt: 1 reference");
    IS_U(il_connword_inflight(w), 0, "receipt: nothing in flight");
    IS_U(w, word_of(h), "receipt reports the word it set");
    IS_I(il_conntab_receive(&shm, h, 1, &w), 0, "receipt with nothing in flight adds one");
    IS_U(il_connword_refs(word_of(h)), 2, "now 2 references");
    IS_I(il_conntab_send(&shm, h), 0, "send again");
    IS_I(il_conntab_receive(&shm, h, 0, &w), 0, "a peek adds a reference");
    IS_U(il_connword_refs(w), 3, "peek: 3 references");
    IS_U(il_connword_inflight(w), 1, "peek leaves the in-flight one for the receipt");
    IS_U(il_conntab_unref(&shm, h), IL_NO_KEY, "unref 1");
    IS_U(il_conntab_unref(&shm, h), IL_NO_KEY, "unref 2");
    IS_U(il_conntab_unref(&shm, h), IL_NO_KEY, "unref 3: still one in flight");
    IS_U(il_conntab_unsend(&shm, h), 42, "the failed send's unsend is the last: key returned");
    tap_ok(!il_connword_in_use(word_of(h)), "slot free");
    IS_I(il_conntab_send(&shm, h), -1, "stale handle: send refused");
    IS_I(il_conntab_receive(&shm, h, 1, &w), -1, "stale handle: receipt refused");
    IS_U(il_conntab_unsend(&shm, h), IL_NO_KEY, "stale handle: unsend refused");

    uint64_t g = il_conntab_alloc(&shm, 7);
    IS_U(il_conntab_unsend(&shm, g), IL_NO_KEY, "unsend with nothing in flight: refused");
    IS_U(il_connword_refs(word_of(g)), 1, "and the reference is untouched");
    unsigned sent = 0;
    while (sent < IL_CONN_INFLIGHT_MAX + 10 && il_conntab_send(&shm, g) == 0)
        sent++;
    IS_U(sent, IL_CONN_INFLIGHT_MAX, "in flight saturates at its maximum, then refuses");
    IS_U(il_connword_refs(word_of(g)), 1, "saturation does not touch the references");
    for (unsigned i = 0; i < sent; i++)
        il_conntab_unsend(&shm, g);
    IS_U(il_conntab_unref(&shm, g), 7, "back to one reference: the last unref returns the key");
}

static void test_inode(void)
{
    unit_segment(&shm, 1, NULL);
    uint64_t h = il_conntab_alloc(&shm, 1);
    IS_U(il_conntab_inode(&shm, h), 0, "no inode recorded yet");
    il_conntab_set_inode(&shm, h, 12345);
    IS_U(il_conntab_inode(&shm, h), 12345, "recorded");
    il_conntab_unref(&shm, h);
    uint64_t h2 = il_conntab_alloc(&shm, 1);
    for (int i = 0; i < 200 && il_handle_index(h2) != il_handle_index(h); i++) {
        il_conntab_unref(&shm, h2);
        h2 = il_conntab_alloc(&shm, 1);
    }
    tap_ok(il_handle_index(h2) == il_handle_index(h), "the slot is taken again");
    IS_U(il_conntab_inode(&shm, h2), 0, "a new generation does not see the old inode");
    IS_U(il_conntab_inode(&shm, h), 0, "nor does the old handle");
    il_conntab_set_inode(&shm, h2, 777);
    IS_U(il_conntab_inode(&shm, h2), 777, "the new generation records its own");
    IS_I(il_conntab_set_inode(&shm, h2, 1ULL << 40), -1, "an inode too large is refused");
    IS_U(il_conntab_inode(&shm, h2), 777, "and changes nothing");
    il_conntab_unref(&shm, h2);
}

/* The identity field and reconciliation's marks (conntab.h). */
static void test_ident(void)
{
    unit_segment(&shm, 1, NULL);
    uint64_t h = il_conntab_alloc(&shm, 1);
    struct il_conn_slot *slot = &shm.conns[il_handle_index(h)];
    il_conntab_set_ident(&shm, h, 11, 22, 4000, 5060);
    uint64_t word = atomic_load(&slot->ident);
    IS_U(il_connid_word_gen(word), il_handle_gen(h), "identity recorded for its generation");
    IS_U(il_connid_word_peer_port(word), 4000, "with the peer port");
    IS_U(il_connid_word_local_port(word), 5060, "and the local port");
    tap_ok(!(word & IL_CONN_IDENT_MARKS), "and no mark bit");
    IS_U(atomic_load(&slot->peer[0]), 11, "the peer's address, high word");
    IS_U(atomic_load(&slot->peer[1]), 22, "the peer's address, low word");
    IS_U(il_conntab_inode(&shm, h), 0, "recording an identity records no inode");
    /* A mark that landed before the record is overwritten by it. */
    atomic_store(&slot->ident, (1ULL << 63) | il_handle_gen(h));
    il_conntab_set_ident(&shm, h, 11, 22, 4000, 5060);
    IS_U(atomic_load(&slot->ident), word, "recording over a mark");
    il_conntab_unref(&shm, h);
}

static void test_sockid(void)
{
    unit_segment(&shm, 1, NULL);
    IS_U(shm.hdr->sockid_slots, 64, "capacity 1: 64 identity entries");
    IS_U(il_sockid_lookup(&shm, 1000), 0, "empty index: not found");
    uint64_t h = il_conntab_alloc(&shm, 3);
    il_conntab_set_inode(&shm, h, 1000);
    IS_I(il_sockid_insert(&shm, h, 1000), 0, "insert");
    IS_U(il_sockid_lookup(&shm, 1000), h, "lookup finds the handle");
    IS_I(il_sockid_insert(&shm, h, 1000), 0, "insert again (a second send)");
    unsigned entries = 0;
    for (uint32_t i = 0; i < shm.hdr->sockid_slots; i++)
        entries += atomic_load(&shm.sockids[i]) != 0;
    IS_U(entries, 1, "a second insert adds no entry");
    IS_U(il_sockid_lookup(&shm, 1001), 0, "another inode: not found");
    il_conntab_unref(&shm, h);
    IS_U(il_sockid_lookup(&shm, 1000), 0, "connection gone: its entry is stale, not found");

    /* Fill: every slot in use with an inode of its own, each indexed. */
    uint64_t hs[64];
    unsigned ok = 0, found = 0;
    for (unsigned i = 0; i < 64; i++) {
        hs[i] = il_conntab_alloc(&shm, i);
        il_conntab_set_inode(&shm, hs[i], 5000 + i);
        ok += il_sockid_insert(&shm, hs[i], 5000 + i) == 0;
    }
    IS_U(ok, 64, "64 live connections indexed in 64 entries (the stale one reused)");
    for (unsigned i = 0; i < 64; i++)
        found += il_sockid_lookup(&shm, 5000 + i) == hs[i];
    IS_U(found, 64, "each found");
    IS_U(il_sockid_lookup(&shm, 1000), 0, "the old inode is not found");
    IS_I(il_sockid_insert(&shm, hs[0], 99999), -1, "full of live entries: insert refused");
    il_conntab_unref(&shm, hs[5]);
    IS_U(il_sockid_lookup(&shm, 5005), 0, "freed connection: not found");
    uint64_t n = il_conntab_alloc(&shm, 77);
    IS_U(il_handle_index(n), il_handle_index(hs[5]), "its slot is taken again");
    IS_U(il_sockid_lookup(&shm, 5005), 0, "the new connection (no inode yet) is not the old");
    il_conntab_set_inode(&shm, n, 6000);
    IS_I(il_sockid_insert(&shm, n, 6000), 0, "the new connection is indexed over a stale entry");
    IS_U(il_sockid_lookup(&shm, 6000), n, "and found");
    found = 0;
    for (unsigned i = 0; i < 64; i++)
        found += i == 5 || il_sockid_lookup(&shm, 5000 + i) == hs[i];
    IS_U(found, 64, "the others are still found");
    /* A handle whose slot recorded another inode is never believed. */
    uint64_t forged = il_sockid_lookup(&shm, 5001);
    il_conntab_set_inode(&shm, forged, 4242);
    IS_U(il_sockid_lookup(&shm, 5001), 0, "entry whose slot has another inode: not found");
    for (unsigned i = 0; i < 64; i++)
        il_conntab_unref(&shm, i == 5 ? n : hs[i]);
}

/* ---- processes: send, receive, close at random ---- */

struct ring {
    _Atomic uint32_t head, tail;
    _Atomic uint64_t inode[RING];
};

struct race {
    struct ring rings[RACE_PAIRS];
    _Atomic uint32_t senders_done;
    _Atomic uint64_t errors, received, lookups_missed;
};

static void put_key(uint32_t key)
{
    if (key != IL_NO_KEY)
        il_keytab_release(&shm, key);
}

static unsigned next(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 16;
}

static void sender(struct race *r, int pair)
{
    struct ring *ring = &r->rings[pair];
    unsigned seed = 77u + (unsigned)pair * 7919u;
    struct timespec nap = {0, 100000};
    for (unsigned i = 0; i < RACE_ITERS; i++) {
        char text[32];
        struct il_key key;
        snprintf(text, sizeof text, "10.0.0.%u", next(&seed) % RACE_KEYS + 1);
        il_key_parse_cidr(&key, text);
        struct il_acquired got;
        if (il_keytab_acquire(&shm, &key, 0, 0, &got) != IL_ADMITTED) {
            atomic_fetch_add(&r->errors, 1);
            continue;
        }
        uint64_t h = il_conntab_alloc(&shm, got.index);
        if (!h) {
            il_keytab_release(&shm, got.index);
            continue; /* table momentarily full: a connection passes uncounted */
        }
        uint64_t inode = (uint64_t)(pair + 1) << 32 | i; /* < 2^40: conntab.c */
        il_conntab_set_inode(&shm, h, inode);
        if (il_conntab_send(&shm, h) != 0) {
            atomic_fetch_add(&r->errors, 1);
            put_key(il_conntab_unref(&shm, h));
            continue;
        }
        if (il_sockid_insert(&shm, h, inode) != 0)
            atomic_fetch_add(&r->errors, 1);
        unsigned what = next(&seed) % 4;
        if (what == 0) { /* the send failed: take it back, then close */
            put_key(il_conntab_unsend(&shm, h));
            put_key(il_conntab_unref(&shm, h));
            continue;
        }
        if (what == 1) /* the sender closes before the send even returns */
            put_key(il_conntab_unref(&shm, h));
        uint32_t tail = atomic_load(&ring->tail);
        for (int spins = 0; tail - atomic_load(&ring->head) == RING && spins < 200000; spins++)
            nanosleep(&nap, NULL);
        if (tail - atomic_load(&ring->head) == RING) {
            atomic_fetch_add(&r->errors, 1000000); /* receiver stuck */
            return;
        }
        atomic_store(&ring->inode[tail % RING], inode);
        atomic_store(&ring->tail, tail + 1);
        if (what != 1) /* the sender closes after sending */
            put_key(il_conntab_unref(&shm, h));
    }
    atomic_fetch_add(&r->senders_done, 1);
}

static void receiver(struct race *r, int pair)
{
    struct ring *ring = &r->rings[pair];
    unsigned seed = 31u + (unsigned)pair * 104729u;
    struct timespec nap = {0, 100000};
    for (unsigned idle = 0; idle < 200000;) {
        uint32_t head = atomic_load(&ring->head);
        if (head == atomic_load(&ring->tail)) {
            if (atomic_load(&r->senders_done) == RACE_PAIRS && head == atomic_load(&ring->tail))
                return;
            idle++;
            nanosleep(&nap, NULL);
            continue;
        }
        idle = 0;
        uint64_t inode = atomic_load(&ring->inode[head % RING]);
        atomic_store(&ring->head, head + 1);
        /* The fd in flight keeps the connection alive: it must be found. */
        uint64_t h = il_sockid_lookup(&shm, inode), w;
        if (!h || il_conntab_receive(&shm, h, 1, &w) != 0) {
            atomic_fetch_add(&r->lookups_missed, 1);
            continue;
        }
        atomic_fetch_add(&r->received, 1);
        if (next(&seed) % 3 == 0) { /* a dup, closed again */
            if (il_conntab_ref(&shm, h) != 0)
                atomic_fetch_add(&r->errors, 1);
            put_key(il_conntab_unref(&shm, h));
        }
        put_key(il_conntab_unref(&shm, h));
    }
    atomic_fetch_add(&r->errors, 1000000); /* gave up waiting */
}

static void test_race(void)
{
    unit_segment(&shm, 256, NULL);
    struct race *r = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                          -1, 0);
    if (!tap_ok(r != MAP_FAILED, "shared race state"))
        return;
    memset(r, 0, sizeof *r);
    pid_t pids[2 * RACE_PAIRS];
    for (int i = 0; i < 2 * RACE_PAIRS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            alarm(100);
            if (i % 2)
                receiver(r, i / 2);
            else
                sender(r, i / 2);
            _exit(0);
        }
    }
    unsigned clean = 0;
    for (int i = 0; i < 2 * RACE_PAIRS; i++) {
        int status = 0;
        if (pids[i] > 0 && waitpid(pids[i], &status, 0) == pids[i])
            clean += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    IS_U(clean, 2 * RACE_PAIRS, "race: every process exited cleanly");
    IS_U(atomic_load(&r->errors), 0, "race: no refused send, insert or reference");
    IS_U(atomic_load(&r->lookups_missed), 0, "race: every fd in flight was found and received");
    tap_ok(atomic_load(&r->received) > RACE_PAIRS * RACE_ITERS / 2,
           "race: most sends were received (%llu)", (unsigned long long)atomic_load(&r->received));
    unsigned keys = 0, conns = 0;
    for (uint32_t i = 0; i < shm.hdr->key_slots; i++) {
        uint64_t w = atomic_load(&shm.keys[i].word);
        keys += il_keyword_state(w) == IL_KEY_BUSY || il_keyword_count(w) != 0;
    }
    for (uint32_t i = 0; i < shm.hdr->conn_slots; i++)
        conns += il_connword_in_use(atomic_load(&shm.conns[i].word));
    IS_U(keys, 0, "race: every key count exactly zero");
    IS_U(conns, 0, "race: every connection slot free (no reference, nothing in flight)");
    munmap(r, sizeof *r);
}

int main(void)
{
    alarm(200);
    test_word();
    test_inode();
    test_ident();
    test_sockid();
    test_race();
    il_shm_detach(&shm);
    return tap_done();
}
