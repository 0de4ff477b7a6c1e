/* The shared key table (see keytab.h and the slot layout in shm.h). */
#include "keytab.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ratebucket.h"

#define BUSY_SPINS 1000   /* a BUSY slot is being written by another process... */
#define LOOKUP_RESTARTS 8 /* ...or that process died mid-write: then we move on */

static void load_key(const struct il_key_slot *slot, struct il_key *key)
{
    uint64_t hi = atomic_load_explicit(&slot->addr_hi, memory_order_relaxed);
    uint64_t lo = atomic_load_explicit(&slot->addr_lo, memory_order_relaxed);
    memcpy(key->addr, &hi, 8);
    memcpy(key->addr + 8, &lo, 8);
    key->plen = (uint8_t)atomic_load_explicit(&slot->plen, memory_order_relaxed);
}

static void store_key(struct il_key_slot *slot, const struct il_key *key)
{
    uint64_t hi, lo;
    memcpy(&hi, key->addr, 8);
    memcpy(&lo, key->addr + 8, 8);
    atomic_store_explicit(&slot->addr_hi, hi, memory_order_relaxed);
    atomic_store_explicit(&slot->addr_lo, lo, memory_order_relaxed);
    atomic_store_explicit(&slot->plen, key->plen, memory_order_relaxed);
}

/* Waits briefly for a BUSY slot to be published. Returns its new word, or
 * the BUSY word if the writer is gone or slow (the caller skips the slot). */
static uint64_t wait_published(struct il_key_slot *slot, uint64_t word)
{
    for (int spin = 0; spin < BUSY_SPINS && il_keyword_state(word) == IL_KEY_BUSY; spin++) {
        if (spin % 64 == 63)
            sched_yield();
        word = atomic_load_explicit(&slot->word, memory_order_acquire);
    }
    return word;
}

/* Reads a READY slot's key consistently. Returns 0 if it changed under us. */
static int read_ready_key(struct il_key_slot *slot, uint64_t word, struct il_key *key)
{
    load_key(slot, key);
    atomic_thread_fence(memory_order_acquire);
    uint64_t again = atomic_load_explicit(&slot->word, memory_order_relaxed);
    return il_keyword_state(again) == IL_KEY_READY &&
           il_keyword_version(again) == il_keyword_version(word);
}

/* Takes slot (EMPTY, or READY with no connections) for key and counts the
 * first connection in it. Returns -1 if another process got there first. */
static int claim(struct il_key_slot *slot, uint64_t word, const struct il_key *key,
                 uint32_t limit)
{
    uint64_t version = il_keyword_version(word) + 1;
    uint64_t busy = il_keyword_make(IL_KEY_BUSY, version, 0);
    if (!atomic_compare_exchange_strong_explicit(&slot->word, &word, busy, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return -1;
    store_key(slot, key);
    atomic_store_explicit(&slot->limit, limit, memory_order_relaxed);
    atomic_store_explicit(&slot->rejected, 0, memory_order_relaxed);
    atomic_store_explicit(&slot->log_window, 0, memory_order_relaxed);
    atomic_store_explicit(&slot->log_suppressed, 0, memory_order_relaxed);
    atomic_store_explicit(&slot->last_reject, 0, memory_order_relaxed);
    atomic_store_explicit(&slot->bucket, 0, memory_order_relaxed);
    /* Release: the key is visible before the slot is READY. */
    atomic_store_explicit(&slot->word, il_keyword_make(IL_KEY_READY, version, 1),
                          memory_order_release);
    return 0;
}

/* First claims and why a key never lives in two slots.
 *
 * A lookup that does not find its key takes the first reusable slot (READY,
 * count 0) of the window, else the first EMPTY one. Two first accepts of
 * one new key that scan at different moments can choose different slots:
 * if another key's count drops to zero between the two scans, the second
 * scan finds a reusable slot the first did not. Both claims succeed (they
 * are compare-and-swaps on different words) and the key's connections are
 * split over two slots, each checked against the limit alone.
 *
 * So first claims of the keys that hash to one home slot take turns, on
 * the claim word of that home slot, and scan the window again under it
 * before claiming. Argument: a READY slot gets key K only by a claim of K,
 * made under home(K)'s claim word after a scan that found no READY K; the
 * holder publishes its claim (READY) before releasing the word. The only
 * other change to a slot holding K is a takeover by another key, which
 * removes K. So while a holder scans, no slot can become K, every slot
 * that is K is READY and stays K or stops being K, and the scan finds K
 * if any slot holds it: at most one slot holds K at any time, and lookups
 * of existing keys need no lock.
 *
 * A process may die holding the word: waiters check the holder's pid
 * (kill 0) and take the word over from a dead one; the sequence in the
 * word makes each takeover a compare-and-swap on one exact holding. A
 * holder alive but stopped past CLAIM_WAIT_NS (a SIGSTOP mid-claim) is
 * not waited for: the claim goes ahead unserialized, the one case where a
 * key can still be split. */
#define CLAIM_WAIT_NS 100000000LL
#define CLAIM_PID_MASK 0xffffffffULL

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool holder_dead(uint64_t word)
{
    pid_t pid = (pid_t)(word & CLAIM_PID_MASK);
    int saved_errno = errno;
    bool dead = kill(pid, 0) != 0 && errno == ESRCH;
    errno = saved_errno;
    return dead;
}

/* Takes the claim word of slot. Returns the word it stored (for
 * claim_unlock), or 0 when it went ahead without it. */
static uint64_t claim_lock(struct il_key_slot *slot)
{
    uint64_t me = (uint64_t)(uint32_t)getpid();
    uint64_t word = atomic_load_explicit(&slot->claim, memory_order_relaxed);
    int64_t deadline = 0;
    for (unsigned round = 0;; round++) {
        if ((word & CLAIM_PID_MASK) == 0 || (round % 64 == 63 && holder_dead(word))) {
            uint64_t mine = ((word >> 32) + 1) << 32 | me;
            if (atomic_compare_exchange_weak_explicit(&slot->claim, &word, mine,
                                                      memory_order_acquire,
                                                      memory_order_relaxed))
                return mine;
            continue;
        }
        if (round >= 64) {
            int saved_errno = errno;
            sched_yield();
            errno = saved_errno;
        }
        if (round % 64 == 63) {
            int64_t now = monotonic_ns();
            if (!deadline)
                deadline = now + CLAIM_WAIT_NS;
            else if (now > deadline)
                return 0;
        }
        word = atomic_load_explicit(&slot->claim, memory_order_relaxed);
    }
}

static void claim_unlock(struct il_key_slot *slot, uint64_t mine)
{
    if (!mine)
        return;
    /* Release: the claim (READY slot) is visible to the next holder. Only
     * a dead holder is taken over, so the word is still ours. */
    uint64_t released = mine & ~CLAIM_PID_MASK;
    atomic_compare_exchange_strong_explicit(&slot->claim, &mine, released, memory_order_release,
                                            memory_order_relaxed);
}

/* Whether a slot of another key with no open connection may be taken over
 * at once: its rate bucket is full again (or it has none). A slot whose
 * bucket is still refilling holds the state that limits a churning client;
 * it is taken over only when no such slot nor an empty one is left in the
 * probe window (docs/design.md, "Rate"). The clock is read only here, on
 * the way to a new key, never for a key that is found. */
static bool reusable_now(const struct il_shm *shm, const struct il_key_slot *slot,
                         uint64_t *now)
{
    uint64_t bucket = atomic_load_explicit(&slot->bucket, memory_order_relaxed);
    if (bucket == 0)
        return true;
    if (*now == UINT64_MAX)
        *now = il_ratebucket_now();
    return il_ratebucket_idle(bucket, *now,
                              atomic_load_explicit(&shm->hdr->rate_hold_ms, memory_order_relaxed));
}

enum pass { PASS_DONE, PASS_RESTART, PASS_ABSENT };

/* One pass over the key's probe window. PASS_DONE: the key was found and
 * counted in (result set); PASS_ABSENT: not in the table, *free_index is
 * the slot to claim (-1: none) and *free_word its word. */
static enum pass scan(struct il_shm *shm, const struct il_key *key, uint32_t home, uint32_t limit,
                      int force, enum il_acquire *result, struct il_acquired *out,
                      int64_t *free_index, uint64_t *free_word)
{
    uint32_t mask = shm->key_slots - 1; /* as the straight path's (limiter.c) */
    int64_t reusable = -1;
    uint64_t reusable_word = 0;
    int64_t empty = -1;
    int64_t pressed = -1; /* reusable only under pressure (reusable_now) */
    uint64_t pressed_word = 0, now = UINT64_MAX;

    for (uint32_t i = 0; i < IL_KEY_PROBES && i <= mask; i++) {
        uint32_t index = (home + i) & mask;
        struct il_key_slot *slot = &shm->keys[index];
        uint64_t word = atomic_load_explicit(&slot->word, memory_order_acquire);
        if (il_keyword_state(word) == IL_KEY_BUSY)
            word = wait_published(slot, word);
        if (il_keyword_state(word) == IL_KEY_EMPTY) {
            empty = index;
            break;
        }
        if (il_keyword_state(word) != IL_KEY_READY)
            continue;
        struct il_key found;
        if (!read_ready_key(slot, word, &found))
            return PASS_RESTART;
        if (il_key_equal(&found, key)) {
            out->index = index;
            return il_keytab_count_in(slot, word, limit, force, result, &out->count) == 0
                       ? PASS_DONE
                       : PASS_RESTART;
        }
        if (reusable < 0 && il_keyword_count(word) == 0) {
            if (reusable_now(shm, slot, &now)) {
                reusable = index;
                reusable_word = word;
            } else if (pressed < 0) {
                pressed = index;
                pressed_word = word;
            }
        }
    }
    if (reusable < 0 && empty < 0) {
        reusable = pressed;
        reusable_word = pressed_word;
    }
    *free_index = reusable >= 0 ? reusable : empty;
    *free_word = reusable >= 0 ? reusable_word : 0;
    return PASS_ABSENT;
}

/* The key was not found the quick way: under the home slot's claim word,
 * scan the window again and count the key in, or claim a slot for it.
 * Returns 1 when done (result set), 0 to restart. */
static __attribute__((noinline)) int claim_pass(struct il_shm *shm, const struct il_key *key,
                                                uint32_t home, uint32_t limit, int force,
                                                enum il_acquire *result, struct il_acquired *out)
{
    uint64_t mine = claim_lock(&shm->keys[home]);
    int64_t index;
    uint64_t word;
    enum pass pass;
    int done = 0;
    for (int attempt = 0; attempt < LOOKUP_RESTARTS && !done; attempt++) {
        pass = scan(shm, key, home, limit, force, result, out, &index, &word);
        if (pass == PASS_DONE) {
            done = 1;
        } else if (pass == PASS_ABSENT) {
            /* Not in the table: the first connection is always within any
             * limit (a limit is 0 = none, or at least 1). */
            if (index < 0) {
                *result = IL_TABLE_FULL;
                done = 1;
            } else if (claim(&shm->keys[index], word, key, limit) == 0) {
                out->index = (uint32_t)index;
                out->count = 1;
                *result = IL_ADMITTED;
                done = 1;
            }
        }
    }
    claim_unlock(&shm->keys[home], mine);
    return done;
}

/* The lock-free lookup of a key already in the table, the common case:
 * compares the key in place (a seqlock read: the word's version before and
 * after the key's loads), with none of scan's bookkeeping for a claim.
 * PASS_ABSENT here means only "not found the quick way" (an empty slot, a
 * slot being written, a torn read that did not match): the caller then
 * scans carefully under the claim word, which finds the key if it is there. */
static inline __attribute__((always_inline)) enum pass
find(struct il_shm *shm, const struct il_key *key, uint32_t home, uint32_t mask, uint32_t limit,
     int force, enum il_acquire *result, struct il_acquired *out)
{
    uint64_t hi, lo;
    memcpy(&hi, key->addr, 8);
    memcpy(&lo, key->addr + 8, 8);
    for (uint32_t i = 0; i < IL_KEY_PROBES && i <= mask; i++) {
        uint32_t index = (home + i) & mask;
        struct il_key_slot *slot = &shm->keys[index];
        uint64_t word = atomic_load_explicit(&slot->word, memory_order_acquire);
        /* A slot being claimed is waited for here, as scan does, not under
         * the claim word: a waiter there gives up on its holder after
         * CLAIM_WAIT_NS, and a wait for a stuck BUSY slot on a loaded
         * machine can take that long. */
        if (__builtin_expect(il_keyword_state(word) == IL_KEY_BUSY, 0))
            word = wait_published(slot, word);
        if (il_keyword_state(word) != IL_KEY_READY) {
            if (il_keyword_state(word) == IL_KEY_EMPTY)
                return PASS_ABSENT; /* the end of the key's window */
            continue;               /* BUSY still: skipped, as scan does */
        }
        if (atomic_load_explicit(&slot->addr_hi, memory_order_relaxed) != hi ||
            atomic_load_explicit(&slot->addr_lo, memory_order_relaxed) != lo ||
            atomic_load_explicit(&slot->plen, memory_order_relaxed) != key->plen)
            continue;
        atomic_thread_fence(memory_order_acquire);
        uint64_t again = atomic_load_explicit(&slot->word, memory_order_relaxed);
        if ((again ^ word) >> 32) /* state or version moved: the key may be torn */
            return PASS_RESTART;
        out->index = index;
        return il_keytab_count_in(slot, again, limit, force, result, &out->count) == 0
                   ? PASS_DONE
                   : PASS_RESTART;
    }
    return PASS_ABSENT;
}

/* One attempt: a lock-free lookup; if the key is absent, the first claim
 * under the home slot's claim word. Returns 1 when done (result set), 0 to
 * restart. */
static inline __attribute__((always_inline)) int
acquire_pass(struct il_shm *shm, const struct il_key *key, uint32_t limit, int force,
             enum il_acquire *result, struct il_acquired *out)
{
    uint32_t mask = shm->key_slots - 1; /* as the straight path's (limiter.c) */
    uint32_t home = (uint32_t)il_key_hash(key, shm->hash_seed) & mask;
    enum pass pass = find(shm, key, home, mask, limit, force, result, out);
    if (pass != PASS_ABSENT)
        return pass == PASS_DONE;
    return claim_pass(shm, key, home, limit, force, result, out);
}

/* Everything after a first quick lookup that did not count the key in. */
static __attribute__((noinline)) enum il_acquire
acquire_slow(struct il_shm *shm, const struct il_key *key, uint32_t limit, int force,
             struct il_acquired *out, enum pass first, uint32_t home)
{
    enum il_acquire result = IL_TABLE_FULL;
    if (first == PASS_ABSENT && claim_pass(shm, key, home, limit, force, &result, out))
        return result;
    for (int attempt = 1; attempt < LOOKUP_RESTARTS; attempt++)
        if (acquire_pass(shm, key, limit, force, &result, out))
            return result;
    return IL_TABLE_FULL;
}

enum il_acquire il_keytab_acquire(struct il_shm *shm, const struct il_key *key, uint32_t limit,
                                  int force, struct il_acquired *out)
{
    enum il_acquire result = IL_TABLE_FULL;
    out->count = 0;
    uint32_t mask = shm->key_slots - 1; /* as the straight path's (limiter.c) */
    uint32_t home = (uint32_t)il_key_hash(key, shm->hash_seed) & mask;
    enum pass first = find(shm, key, home, mask, limit, force, &result, out);
    if (__builtin_expect(first == PASS_DONE, 1))
        return result;
    return acquire_slow(shm, key, limit, force, out, first, home);
}

void il_keytab_release(struct il_shm *shm, uint32_t index)
{
    if (index >= shm->key_slots) /* the copy taken at mapping: no header load */
        return;
    struct il_key_slot *slot = &shm->keys[index];
    uint64_t word = atomic_load_explicit(&slot->word, memory_order_relaxed);
    /* Never below zero: a count that some path (a kill -9, a close the
     * library never saw) already lost must not wrap around. */
    while (il_keyword_ready(word) && il_keyword_count(word) > 0) {
        if (atomic_compare_exchange_weak_explicit(&slot->word, &word, word - 1,
                                                  memory_order_acq_rel, memory_order_relaxed))
            return;
    }
}

int il_keytab_read(const struct il_shm *shm, uint32_t index, struct il_key *key, uint32_t *count)
{
    struct il_key_slot *slot = &shm->keys[index];
    uint64_t word = atomic_load_explicit(&slot->word, memory_order_acquire);
    if (il_keyword_state(word) != IL_KEY_READY)
        return 0;
    if (!read_ready_key(slot, word, key))
        return 0;
    *count = il_keyword_count(word);
    return 1;
}
