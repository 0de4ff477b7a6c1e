/* The key table's first-claim race (src/lib/keytab.c): two processes make
 * the first accept of one new key at the same instant, one of them just
 * after dropping another key to zero in a slot that lies before the only
 * free slot of the new key's probe window. Without serialized first claims
 * the two scans choose different slots and both claims succeed: the key is
 * split over two slots and two connections are admitted under a limit of
 * 1. Every round must end with exactly one admitted and the key in exactly
 * one READY slot with a count.
 *
 * So that the two lookups overlap even on a loaded machine with one free
 * CPU, a slot after the free one is left BUSY, as a process killed while
 * writing a key leaves it: each scan waits there a little (yielding) before
 * it skips the slot, which gives the other lookup its turn mid-scan. */
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../src/lib/keytab.h"
#include "../../src/lib/shm.h"
#include "tap.h"
#include "unit_segment.h"

#define SLOTS 64
#define FILLERS (SLOTS - 1) /* held: one slot is left for the new key */
#define ROUNDS 3000         /* bounded in count... */
#define RUN_SECONDS 20      /* ...and in time */
#define NO_SLOT UINT32_MAX

struct shared {
    _Atomic unsigned ready;    /* round the other claimer is spinning for */
    _Atomic unsigned go;       /* round the other claimer may start */
    _Atomic uint32_t drop;     /* slot it drops to zero first, or NO_SLOT */
    _Atomic unsigned arrived;  /* rounds the other claimer has done */
    _Atomic int admitted;      /* its result in the current round */
    _Atomic uint32_t index;
    _Atomic unsigned checked;  /* rounds checked: it releases */
    _Atomic unsigned released;
    _Atomic unsigned stop;     /* the last round */
};

static struct il_shm shm;
static struct shared *sh;

static void wait_for(_Atomic unsigned *word, unsigned want)
{
    for (unsigned spin = 0; atomic_load(word) < want; spin++)
        if (spin % 32 == 31)
            sched_yield();
}

/* READY slots holding key with a count above zero. */
static unsigned live_slots_of(const struct il_key *key)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < shm.hdr->key_slots; i++) {
        struct il_key k;
        uint32_t count;
        n += il_keytab_read(&shm, i, &k, &count) && count > 0 && il_key_equal(&k, key);
    }
    return n;
}

static struct il_key round_key(unsigned round)
{
    return unit_key_n(100000 + round);
}

static void other_claimer(void)
{
    for (unsigned round = 1; round <= ROUNDS; round++) {
        /* On the CPU and spinning when the coordinator says go, so that
         * both lookups run at once wherever there are two CPUs. */
        atomic_store(&sh->ready, round);
        for (unsigned spin = 0; spin < 1000000 && atomic_load(&sh->go) < round; spin++)
            ;
        wait_for(&sh->go, round);
        uint32_t drop = atomic_load(&sh->drop);
        if (drop != NO_SLOT)
            il_keytab_release(&shm, drop);
        struct il_key k = round_key(round);
        struct il_acquired got;
        int admitted = il_keytab_acquire(&shm, &k, 1, 0, &got) == IL_ADMITTED;
        atomic_store(&sh->admitted, admitted);
        atomic_store(&sh->index, got.index);
        atomic_store(&sh->arrived, round);
        wait_for(&sh->checked, round);
        if (admitted)
            il_keytab_release(&shm, got.index);
        atomic_store(&sh->released, round);
        if (atomic_load(&sh->stop) == round)
            break;
    }
    _exit(0);
}

struct tally {
    unsigned rounds, raced, bad, split, first_bad;
};

/* The first slot of key's window (in probe order) whose count is zero. */
static uint32_t first_free(uint32_t home)
{
    for (uint32_t i = 0; i < SLOTS; i++) {
        uint32_t index = (home + i) % SLOTS;
        if (il_keyword_count(atomic_load(&shm.keys[index].word)) == 0)
            return i;
    }
    return SLOTS;
}

static void coordinator(struct tally *t)
{
    uint32_t held[FILLERS];
    for (unsigned f = 0; f < FILLERS; f++)
        held[f] = NO_SLOT;
    time_t end = time(NULL) + RUN_SECONDS;
    for (unsigned round = 1; round <= ROUNDS; round++) {
        for (unsigned f = 0; f < FILLERS; f++) {
            if (held[f] != NO_SLOT)
                continue;
            struct il_key k = unit_key_n(f + 1);
            struct il_acquired got;
            if (il_keytab_acquire(&shm, &k, 0, 0, &got) == IL_ADMITTED)
                held[f] = got.index;
        }
        /* The new key's home, and a held filler before its first free
         * slot: the other claimer drops it just before its own lookup. */
        struct il_key k = round_key(round);
        uint32_t home = (uint32_t)il_key_hash(&k, shm.hdr->hash_seed) % SLOTS;
        uint32_t free_at = first_free(home), drop = NO_SLOT;
        for (unsigned f = 0; f < FILLERS && drop == NO_SLOT; f++)
            if (held[f] != NO_SLOT && ((held[f] - home) % SLOTS) < free_at) {
                drop = held[f];
                held[f] = NO_SLOT;
            }
        /* A held filler after the free slot, left BUSY for the round. */
        uint32_t busy = NO_SLOT;
        uint64_t busy_word = 0;
        for (unsigned f = 0; f < FILLERS && busy == NO_SLOT; f++)
            if (held[f] != NO_SLOT && ((held[f] - home) % SLOTS) > free_at && free_at < SLOTS) {
                busy = held[f];
                busy_word = atomic_load(&shm.keys[busy].word);
                atomic_store(&shm.keys[busy].word,
                             il_keyword_make(IL_KEY_BUSY, il_keyword_version(busy_word), 0));
            }
        t->raced += drop != NO_SLOT && busy != NO_SLOT;
        atomic_store(&sh->drop, drop);
        if (round == ROUNDS || time(NULL) >= end)
            atomic_store(&sh->stop, round);
        wait_for(&sh->ready, round);
        atomic_store(&sh->go, round);
        struct il_acquired got;
        int admitted = il_keytab_acquire(&shm, &k, 1, 0, &got) == IL_ADMITTED;
        wait_for(&sh->arrived, round);
        unsigned total = (unsigned)admitted + (unsigned)atomic_load(&sh->admitted);
        unsigned slots = live_slots_of(&k);
        if (total != 1 || slots != 1) {
            if (!t->bad++)
                t->first_bad = round;
            t->split += slots > 1;
        }
        t->rounds++;
        if (busy != NO_SLOT)
            atomic_store(&shm.keys[busy].word, busy_word);
        if (admitted)
            il_keytab_release(&shm, got.index);
        atomic_store(&sh->checked, round);
        wait_for(&sh->released, round);
        if (atomic_load(&sh->stop) == round)
            break;
    }
    for (unsigned f = 0; f < FILLERS; f++)
        if (held[f] != NO_SLOT)
            il_keytab_release(&shm, held[f]);
}

/* A claim word left held by a process that died is taken over; one held
 * by a live process that never lets go delays a first claim by a bounded
 * wait, never for ever. */
static void test_claim_word_holders(void)
{
    struct il_key k = unit_key_n(900001);
    uint32_t home = (uint32_t)il_key_hash(&k, shm.hdr->hash_seed) % SLOTS;
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    atomic_store(&shm.keys[home].claim, 7ULL << 32 | (uint32_t)dead);
    struct il_acquired got;
    IS_U(il_keytab_acquire(&shm, &k, 1, 0, &got), IL_ADMITTED,
         "a claim word held by a dead process: the first claim goes ahead");
    IS_U(atomic_load(&shm.keys[home].claim), 8ULL << 32,
         "the dead holder's word was taken over and released (sequence 8, no holder)");
    il_keytab_release(&shm, got.index);

    struct il_key k2 = unit_key_n(900002);
    home = (uint32_t)il_key_hash(&k2, shm.hdr->hash_seed) % SLOTS;
    atomic_store(&shm.keys[home].claim, 3ULL << 32 | (uint32_t)getppid());
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    IS_U(il_keytab_acquire(&shm, &k2, 1, 0, &got), IL_ADMITTED,
         "a claim word held by a live process that never lets go: the claim still goes ahead");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    tap_diag("waited %.3f s for the live holder", (double)(t1.tv_sec - t0.tv_sec) +
                                                     (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    IS_U(atomic_load(&shm.keys[home].claim), 3ULL << 32 | (uint32_t)getppid(),
         "the live holder's word is left alone");
    atomic_store(&shm.keys[home].claim, 0);
    il_keytab_release(&shm, got.index);
}

int main(void)
{
    alarm(RUN_SECONDS + 60);
    struct il_policy policy;
    il_policy_defaults(&policy);
    int err = il_shm_create(&shm, 16, &policy, NULL);
    if (!tap_ok(err == 0, "segment created"))
        return tap_done();
    IS_U(shm.hdr->key_slots, SLOTS, "64 key slots: every key's probe window is the whole table");
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!tap_ok(sh != MAP_FAILED, "shared test state mapped"))
        return tap_done();
    memset(sh, 0, sizeof *sh);

    pid_t pid = fork();
    if (pid == 0) {
        alarm(RUN_SECONDS + 30);
        other_claimer();
    }
    struct tally t = {0, 0, 0, 0, 0};
    if (pid > 0)
        coordinator(&t);
    int status = 0;
    tap_ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
               WEXITSTATUS(status) == 0,
           "the other claimer finished its rounds");
    tap_diag("%u rounds (%u with a drop before the free slot), %u bad, %u split", t.rounds,
             t.raced, t.bad, t.split);
    tap_ok(t.raced >= 100, "at least 100 rounds raced a drop to zero (%u)", t.raced);
    if (!IS_U(t.bad, 0, "every round: one of two first accepts admitted under limit 1, "
                        "the key in one slot"))
        tap_diag("first bad round: %u", t.first_bad);
    unsigned live = 0;
    for (uint32_t i = 0; i < shm.hdr->key_slots; i++)
        live += il_keyword_count(atomic_load(&shm.keys[i].word)) != 0;
    IS_U(live, 0, "every key count back to zero at the end");
    test_claim_word_holders();
    return tap_done();
}
