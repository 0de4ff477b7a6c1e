/* Unit tests for the shared key and connection tables on a real segment
 * made by il_shm_create (src/lib/keytab.c, conntab.c, shm.c), including
 * threads and forked processes hammering them. */
#include <pthread.h>
#include <stdlib.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/lib/conntab.h"
#include "../../src/lib/keytab.h"
#include "../../src/lib/shm.h"
#include "tap.h"
#include "unit_segment.h"

#define HAMMER_ITERS 20000
#define HAMMER_WORKERS 4
#define HAMMER_KEYS 3

static struct il_shm shm;

static uint32_t count_of(uint32_t index)
{
    struct il_key key;
    uint32_t count = 0;
    return il_keytab_read(&shm, index, &key, &count) ? count : UINT32_MAX;
}

/* Keys with open connections, counted the way iplimit stat does. */
static uint32_t live_keys(void)
{
    uint32_t live = 0;
    for (uint32_t i = 0; i < shm.hdr->key_slots; i++) {
        struct il_key key;
        uint32_t count = 0;
        live += il_keytab_read(&shm, i, &key, &count) && count > 0;
    }
    return live;
}

static void test_segment(void)
{
    tap_ok(unit_segment(&shm, 1, NULL), "segment for capacity 1 created");
    IS_U(shm.hdr->key_slots, 64, "capacity 1: 64 key slots (the minimum)");
    IS_U(shm.hdr->conn_slots, 64, "capacity 1: 64 connection slots");
    IS_S(shm.hdr->magic, IL_SHM_MAGIC, "segment magic");
    IS_U(shm.hdr->creator_pid, getpid(), "segment creator pid");
    tap_ok(unit_segment(&shm, 1000, NULL), "segment for capacity 1000 created");
    IS_U(shm.hdr->key_slots, 2048, "capacity 1000: 2048 key slots");
}

static void test_acquire_limit(void)
{
    unit_segment(&shm, 16, NULL);
    struct il_key a = unit_key_n(1);
    struct il_acquired got[5];
    enum il_acquire r[5];
    for (int i = 0; i < 4; i++)
        r[i] = il_keytab_acquire(&shm, &a, 3, 0, &got[i]);
    IS_U(r[0], IL_ADMITTED, "1st of limit 3 admitted");
    IS_U(got[0].count, 1, "1st: count 1");
    IS_U(r[2], IL_ADMITTED, "3rd of limit 3 admitted");
    IS_U(got[2].count, 3, "3rd: count 3");
    tap_ok(got[1].index == got[0].index && got[2].index == got[0].index,
           "same key, same slot");
    IS_U(r[3], IL_OVER_LIMIT, "4th of limit 3 over limit");
    IS_U(got[3].count, 3, "4th: reports the count at rejection");
    IS_U(count_of(got[0].index), 3, "read: count 3 after a rejection");
    IS_U(live_keys(), 1, "one live key");

    r[4] = il_keytab_acquire(&shm, &a, 3, 1, &got[4]);
    IS_U(r[4], IL_OVER_ADMITTED, "forced (dry run) over the limit: over-admitted");
    IS_U(got[4].count, 4, "forced: count 4");
    IS_U(count_of(got[0].index), 4, "read: count 4");

    for (int i = 0; i < 4; i++)
        il_keytab_release(&shm, got[0].index);
    IS_U(count_of(got[0].index), 0, "released four times: count 0");
    IS_U(live_keys(), 0, "no live keys");
    il_keytab_release(&shm, got[0].index);
    IS_U(count_of(got[0].index), 0, "a release at zero stays at zero");
    /* Out-of-range releases touch nothing: every slot word is unchanged. */
    struct il_acquired held;
    il_keytab_acquire(&shm, &a, 3, 0, &held);
    unsigned changed = 0;
    uint64_t *before = calloc(shm.hdr->key_slots, sizeof *before);
    for (uint32_t i = 0; i < shm.hdr->key_slots; i++)
        before[i] = atomic_load(&shm.keys[i].word);
    il_keytab_release(&shm, shm.hdr->key_slots);
    il_keytab_release(&shm, UINT32_MAX);
    for (uint32_t i = 0; i < shm.hdr->key_slots; i++)
        changed += atomic_load(&shm.keys[i].word) != before[i];
    free(before);
    IS_U(changed, 0, "releases of out-of-range slots change no slot");
    IS_U(count_of(held.index), 1, "the live key keeps its count 1");
    il_keytab_release(&shm, held.index);

    struct il_acquired again;
    IS_U(il_keytab_acquire(&shm, &a, 3, 0, &again), IL_ADMITTED, "reacquired after zero");
    IS_U(again.index, got[0].index, "reacquired in the same slot");
    IS_U(again.count, 1, "reacquired: count 1");
    il_keytab_release(&shm, again.index);
}

static void test_unlimited(void)
{
    unit_segment(&shm, 16, NULL);
    struct il_key a = unit_key_n(2);
    struct il_acquired got = {0};
    unsigned admitted = 0;
    for (int i = 0; i < 2000; i++)
        admitted += il_keytab_acquire(&shm, &a, 0, 0, &got) == IL_ADMITTED;
    IS_U(admitted, 2000, "limit 0: 2000 of 2000 admitted");
    IS_U(got.count, 2000, "limit 0: count 2000");
    struct il_acquired one;
    IS_U(il_keytab_acquire(&shm, &a, 2000, 0, &one), IL_OVER_LIMIT,
         "a lower limit later applies to the existing count");
}

static void test_key_table_full(void)
{
    unit_segment(&shm, 1, NULL);
    struct il_acquired got;
    unsigned admitted = 0, index_of_7 = 0;
    for (unsigned n = 0; n < 64; n++) {
        struct il_key k = unit_key_n(100 + n);
        admitted += il_keytab_acquire(&shm, &k, 5, 0, &got) == IL_ADMITTED;
        if (n == 7)
            index_of_7 = got.index;
    }
    IS_U(admitted, 64, "64 keys fill 64 slots");
    struct il_key extra = unit_key_n(999);
    memset(&got, 0xff, sizeof got);
    IS_U(il_keytab_acquire(&shm, &extra, 5, 0, &got), IL_TABLE_FULL, "65th key: table full");
    IS_U(got.count, 0, "table full: count 0");
    struct il_key k7 = unit_key_n(107);
    IS_U(il_keytab_acquire(&shm, &k7, 5, 0, &got), IL_ADMITTED,
         "an existing key still counts when the table is full");
    il_keytab_release(&shm, index_of_7);
    il_keytab_release(&shm, index_of_7);
    IS_U(il_keytab_acquire(&shm, &extra, 5, 0, &got), IL_ADMITTED,
         "new key takes the slot of a key that fell to zero");
    IS_U(got.index, index_of_7, "the reused slot is the freed one");
    struct il_key read;
    uint32_t count;
    il_keytab_read(&shm, got.index, &read, &count);
    tap_ok(il_key_equal(&read, &extra) && count == 1, "the reused slot now reads the new key");
}

static void test_conn_basic(void)
{
    unit_segment(&shm, 1, NULL);
    uint64_t h = il_conntab_alloc(&shm, 42);
    tap_ok(h != 0, "alloc gives a handle");
    IS_U(il_handle_gen(h), 1, "a fresh slot has generation 1");
    IS_I(il_conntab_ref(&shm, h), 0, "ref (dup) ok");
    IS_I(il_conntab_ref(&shm, h), 0, "ref (fork) ok");
    IS_U(il_conntab_unref(&shm, h), IL_NO_KEY, "unref 1 of 3: not last");
    IS_U(il_conntab_unref(&shm, h), IL_NO_KEY, "unref 2 of 3: not last");
    IS_U(il_conntab_unref(&shm, h), 42, "unref 3 of 3: last, returns the key index");
    IS_U(il_conntab_unref(&shm, h), IL_NO_KEY, "unref after the last: refused");
    IS_I(il_conntab_ref(&shm, h), -1, "ref after the last: refused");
    uint64_t bad = (uint64_t)1 << 32 | shm.hdr->conn_slots;
    IS_I(il_conntab_ref(&shm, bad), -1, "ref of an out-of-range index refused");
    IS_U(il_conntab_unref(&shm, bad), IL_NO_KEY, "unref of an out-of-range index refused");
}

static void test_conn_full_and_stale(void)
{
    unit_segment(&shm, 1, NULL);
    uint64_t h[65];
    unsigned got = 0;
    for (unsigned i = 0; i < 64; i++)
        got += (h[i] = il_conntab_alloc(&shm, i)) != 0;
    IS_U(got, 64, "64 connections fill 64 slots");
    IS_U(il_conntab_alloc(&shm, 99), 0, "65th connection: no slot (0)");
    IS_U(il_conntab_unref(&shm, h[10]), 10, "free one slot");
    h[64] = il_conntab_alloc(&shm, 77);
    IS_U(il_handle_index(h[64]), il_handle_index(h[10]), "the freed slot is reused");
    IS_U(il_handle_gen(h[64]), il_handle_gen(h[10]) + 1, "with the next generation");
    IS_I(il_conntab_ref(&shm, h[10]), -1, "stale handle: ref refused");
    IS_U(il_conntab_unref(&shm, h[10]), IL_NO_KEY, "stale handle: unref refused");
    IS_U(il_conntab_unref(&shm, h[64]), 77, "the new handle still holds its one reference");
}

/* A thread's next allocation tries the slot it freed last (conntab.c),
 * and only while that slot is still free with the generation it left. */
static void test_conn_reuse(void)
{
    unit_segment(&shm, 1024, NULL);
    uint64_t a = il_conntab_alloc(&shm, 1);
    IS_U(il_conntab_unref(&shm, a), 1, "free a slot");
    uint64_t b = il_conntab_alloc(&shm, 2);
    IS_U(il_handle_index(b), il_handle_index(a), "the next allocation reuses it");
    IS_U(il_handle_gen(b), il_handle_gen(a) + 1, "with the next generation");
    IS_U(atomic_load(&shm.conns[il_handle_index(b)].key_index), 2, "under the new key");

    /* Another process takes the freed slot before this thread allocates. */
    IS_U(il_conntab_unref(&shm, b), 2, "free it again");
    struct il_conn_slot *slot = &shm.conns[il_handle_index(b)];
    uint64_t taken = (uint64_t)(il_handle_gen(b) + 1) << 32 | 1;
    atomic_store(&slot->word, taken);
    uint64_t c = il_conntab_alloc(&shm, 3);
    tap_ok(c != 0 && il_handle_index(c) != il_handle_index(b),
           "a slot taken meanwhile is not reused: another slot is found");
    IS_U(atomic_load(&slot->word), taken, "the other's slot is untouched");

    /* The slot was taken and freed again meanwhile: its generation moved on. */
    IS_U(il_conntab_unref(&shm, c), 3, "free the other slot");
    uint64_t freed = atomic_load(&shm.conns[il_handle_index(c)].word);
    atomic_store(&shm.conns[il_handle_index(c)].word, freed + (2ULL << 32));
    uint64_t d = il_conntab_alloc(&shm, 4);
    tap_ok(d != 0 && (il_handle_index(d) != il_handle_index(c) ||
                      il_handle_gen(d) == il_handle_gen(c) + 3),
           "a slot reused and freed meanwhile is taken only at its newer generation");

    /* A slot freed at the last generation: reused at generation 1, and
     * nothing carried above the generation. */
    uint64_t e = il_conntab_alloc(&shm, 5);
    struct il_conn_slot *eslot = &shm.conns[il_handle_index(e)];
    uint64_t last_gen = (uint64_t)IL_CONN_GEN_MASK << 32 | il_handle_index(e);
    atomic_store(&eslot->word, (uint64_t)IL_CONN_GEN_MASK << 32 | 1);
    IS_U(il_conntab_unref(&shm, last_gen), 5, "a connection of the last generation freed");
    uint64_t f = il_conntab_alloc(&shm, 6);
    IS_U(il_handle_index(f), il_handle_index(e), "its slot reused");
    IS_U(il_handle_gen(f), 1, "at generation 1 after the last");
    IS_U(atomic_load(&eslot->word), (uint64_t)1 << 32 | 1,
         "the slot's word: generation 1, one reference, nothing above");
    IS_U(il_conntab_unref(&shm, f), 6, "and freed by its handle");

    /* The slot a thread freed in one segment is not taken in another whose
     * table is smaller (the library maps one segment; tests map several). */
    unit_segment(&shm, 1024, NULL);
    uint64_t big = 0;
    for (unsigned i = 0; i < 256 && il_handle_index(big) < 64; i++)
        big = il_conntab_alloc(&shm, 7); /* the smaller ones stay taken */
    tap_ok(il_handle_index(big) >= 64, "a slot past the smaller table's 64 (index %u)",
           il_handle_index(big));
    IS_U(il_conntab_unref(&shm, big), 7, "freed: the thread's last freed slot");
    unit_segment(&shm, 1, NULL);
    uint64_t small = il_conntab_alloc(&shm, 8);
    tap_ok(small != 0 && il_handle_index(small) < shm.conn_slots,
           "the next allocation in a table of %u slots takes one of them (index %u)",
           shm.conn_slots, il_handle_index(small));
}

/* ---- concurrency: exact counts after many threads and processes ---- */

static unsigned hammer(unsigned seed, unsigned iters)
{
    unsigned errors = 0;
    for (unsigned i = 0; i < iters; i++) {
        seed = seed * 1103515245u + 12345u;
        struct il_key k = unit_key_n(seed >> 16 & 3 ? (seed >> 20) % HAMMER_KEYS : 50 + seed % 40);
        struct il_acquired got;
        if (il_keytab_acquire(&shm, &k, 0, 0, &got) != IL_ADMITTED) {
            errors++;
            continue;
        }
        uint64_t h = il_conntab_alloc(&shm, got.index);
        if (!h || il_conntab_ref(&shm, h) != 0) {
            errors++;
            il_keytab_release(&shm, got.index);
            continue;
        }
        errors += il_conntab_unref(&shm, h) != IL_NO_KEY;
        uint32_t index = il_conntab_unref(&shm, h);
        errors += index != got.index;
        il_keytab_release(&shm, got.index);
    }
    return errors;
}

static void *hammer_thread(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    return (void *)(uintptr_t)hammer(seed, HAMMER_ITERS);
}

/* Every key's count and every connection's references are zero. */
static void check_all_zero(const char *who)
{
    unsigned nonzero_keys = 0, nonzero_conns = 0;
    for (uint32_t i = 0; i < shm.hdr->key_slots; i++) {
        uint64_t w = atomic_load(&shm.keys[i].word);
        nonzero_keys += il_keyword_state(w) == IL_KEY_BUSY || il_keyword_count(w) != 0;
    }
    for (uint32_t i = 0; i < shm.hdr->conn_slots; i++)
        nonzero_conns += (uint32_t)atomic_load(&shm.conns[i].word) != 0;
    char name[128];
    snprintf(name, sizeof name, "%s: every key count back to zero", who);
    IS_U(nonzero_keys, 0, name);
    snprintf(name, sizeof name, "%s: every connection slot free", who);
    IS_U(nonzero_conns, 0, name);
    snprintf(name, sizeof name, "%s: live_keys back to zero", who);
    IS_U(live_keys(), 0, name);
}

static void test_threads(void)
{
    unit_segment(&shm, 256, NULL);
    pthread_t t[HAMMER_WORKERS];
    for (uintptr_t i = 0; i < HAMMER_WORKERS; i++)
        pthread_create(&t[i], NULL, hammer_thread, (void *)(i * 7919 + 1));
    uintptr_t errors = 0;
    for (int i = 0; i < HAMMER_WORKERS; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        errors += (uintptr_t)ret;
    }
    IS_U(errors, 0, "threads: every acquire, alloc and unref as expected");
    check_all_zero("threads");
}

static void test_processes(void)
{
    unit_segment(&shm, 256, NULL);
    pid_t pids[HAMMER_WORKERS];
    for (int i = 0; i < HAMMER_WORKERS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            alarm(60);
            _exit(hammer((unsigned)i * 104729u + 3u, HAMMER_ITERS) ? 1 : 0);
        }
    }
    unsigned clean = 0;
    for (int i = 0; i < HAMMER_WORKERS; i++) {
        int status = 0;
        if (pids[i] > 0 && waitpid(pids[i], &status, 0) == pids[i])
            clean += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    IS_U(clean, HAMMER_WORKERS, "processes: every worker exited cleanly");
    check_all_zero("processes");
}

/* Threads contend for one key with limit 2: never more than 2 holders. */
static _Atomic int holders, max_holders;

static void *limit_thread(void *arg)
{
    struct il_key k = unit_key_n(7);
    uintptr_t bad = 0;
    for (int i = 0; i < HAMMER_ITERS; i++) {
        struct il_acquired got;
        if (il_keytab_acquire(&shm, &k, 2, 0, &got) != IL_ADMITTED)
            continue;
        int now = atomic_fetch_add(&holders, 1) + 1;
        int seen = atomic_load(&max_holders);
        while (now > seen && !atomic_compare_exchange_weak(&max_holders, &seen, now))
            ;
        bad += got.count > 2;
        atomic_fetch_sub(&holders, 1);
        il_keytab_release(&shm, got.index);
    }
    (void)arg;
    return (void *)bad;
}

/* Rounds in which 4 threads each try once, all at the same moment, to take
 * a place under limit 2 and keep it until everyone has tried: exactly 2
 * must be admitted every round (an off-by-one admits 3). */
#define EXACT_ROUNDS 200
static pthread_barrier_t round_start, round_end;
static _Atomic unsigned round_admitted;

static void *exact_thread(void *arg)
{
    struct il_key k = unit_key_n(8);
    (void)arg;
    for (int r = 0; r < EXACT_ROUNDS; r++) {
        struct il_acquired got;
        pthread_barrier_wait(&round_start);
        int admitted = il_keytab_acquire(&shm, &k, 2, 0, &got) == IL_ADMITTED;
        atomic_fetch_add(&round_admitted, (unsigned)admitted);
        pthread_barrier_wait(&round_end); /* everyone has tried; main reads */
        pthread_barrier_wait(&round_end); /* main has read; give the places back */
        if (admitted)
            il_keytab_release(&shm, got.index);
    }
    return NULL;
}

static void test_limit_exact(void)
{
    unit_segment(&shm, 16, NULL);
    pthread_barrier_init(&round_start, NULL, HAMMER_WORKERS);
    pthread_barrier_init(&round_end, NULL, HAMMER_WORKERS + 1);
    pthread_t t[HAMMER_WORKERS];
    for (int i = 0; i < HAMMER_WORKERS; i++)
        pthread_create(&t[i], NULL, exact_thread, NULL);
    unsigned wrong = 0;
    for (int r = 0; r < EXACT_ROUNDS; r++) {
        pthread_barrier_wait(&round_end);
        wrong += atomic_exchange(&round_admitted, 0) != 2;
        pthread_barrier_wait(&round_end);
    }
    for (int i = 0; i < HAMMER_WORKERS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&round_start);
    pthread_barrier_destroy(&round_end);
    IS_U(wrong, 0, "limit 2, 4 threads at once: exactly 2 admitted in every round");
    check_all_zero("limit 2, rounds");
}

static void test_limit_threads(void)
{
    unit_segment(&shm, 16, NULL);
    pthread_t t[HAMMER_WORKERS];
    for (int i = 0; i < HAMMER_WORKERS; i++)
        pthread_create(&t[i], NULL, limit_thread, NULL);
    uintptr_t bad = 0;
    for (int i = 0; i < HAMMER_WORKERS; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        bad += (uintptr_t)ret;
    }
    IS_U(bad, 0, "limit 2 under contention: no admission reports a count above 2");
    tap_ok(atomic_load(&max_holders) <= 2, "limit 2 under contention: at most 2 holders at once");
    check_all_zero("limit 2 under contention");
}

int main(void)
{
    alarm(120); /* bound the whole run */
    test_segment();
    test_acquire_limit();
    test_unlimited();
    test_key_table_full();
    test_conn_basic();
    test_conn_full_and_stale();
    test_conn_reuse();
    test_threads();
    test_processes();
    test_limit_threads();
    test_limit_exact();
    il_shm_detach(&shm);
    return tap_done();
}
