/* Unit tests for the reuse of key slots with no open connection when keys
 * have a new-connection rate (src/lib/keytab.c, reusable_now): a slot whose
 * bucket is still refilling keeps its key while anything else is free, and
 * is taken over only under table pressure. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../src/lib/keytab.h"
#include "../../src/lib/ratebucket.h"
#include "../../src/lib/shm.h"
#include "tap.h"
#include "unit_segment.h"

static struct il_shm shm;

/* A 64-slot table under a policy of rate 1/s, burst 3600: a drained bucket
 * needs an hour to fill, so no test here depends on how fast it runs. */
static bool make_segment(void)
{
    struct il_policy policy;
    il_policy_defaults(&policy);
    policy.rate = 1;
    policy.burst = 3600;
    return unit_segment(&shm, 1, &policy);
}

static uint64_t drained_at;

/* Empties key's bucket now, as 3600 admissions would. */
static void drain(uint32_t index)
{
    drained_at = il_ratebucket_now();
    atomic_store(&shm.keys[index].bucket, il_ratebucket_make(drained_at, 3600 * IL_RATE_UNIT));
}

static uint32_t acquire(unsigned n, enum il_acquire *result)
{
    struct il_key k = unit_key_n(n);
    struct il_acquired got = {0};
    *result = il_keytab_acquire(&shm, &k, 0, 0, &got);
    return got.index;
}

/* All 64 slots hold a key with one connection; returns the index of key n. */
static uint32_t fill(unsigned pick, uint32_t *other, unsigned pick2)
{
    uint32_t index = 0;
    enum il_acquire r;
    for (unsigned n = 0; n < 64; n++) {
        uint32_t i = acquire(100 + n, &r);
        if (n == pick)
            index = i;
        if (other && n == pick2)
            *other = i;
    }
    return index;
}

static void test_pressure(void)
{
    tap_ok(make_segment(), "segment with rate 1/s burst 3600");
    IS_U(atomic_load(&shm.hdr->rate_hold_ms), 3600000,
         "the header holds the policy's hold: 3600 s");
    uint32_t x = fill(7, NULL, 0);
    drain(x);
    il_keytab_release(&shm, x);
    enum il_acquire r;
    uint32_t got = acquire(999, &r);
    IS_U(r, IL_ADMITTED, "full table, one recently active slot: a new key is admitted");
    IS_U(got, x, "it takes over the recently active slot (table pressure)");
    IS_U(shm.keys[got].bucket, 0, "with a fresh, full bucket");
}

/* Twenty recently active slots and one whose bucket is full, all with no
 * connection: a new key takes the full one, whatever the probe order
 * (three rounds, so that a pick among the 21 by position is caught). */
static void test_idle_first(void)
{
    make_segment();
    uint32_t index[64];
    enum il_acquire r;
    for (unsigned n = 0; n < 64; n++)
        index[n] = acquire(100 + n, &r);
    for (unsigned n = 0; n < 20; n++) {
        drain(index[n]);
        il_keytab_release(&shm, index[n]);
    }
    unsigned took_idle = 0, kept = 0;
    for (unsigned round = 0; round < 3; round++) {
        uint32_t idle = index[40 + round];
        il_keytab_release(&shm, idle); /* its bucket was never touched: full */
        uint32_t got = acquire(900 + round, &r);
        took_idle += r == IL_ADMITTED && got == idle;
    }
    for (unsigned n = 0; n < 20; n++) {
        struct il_key k = unit_key_n(100 + n), read;
        uint32_t count = 99;
        kept += il_keytab_read(&shm, index[n], &read, &count) && il_key_equal(&read, &k) &&
                count == 0;
    }
    IS_U(took_idle, 3, "3 new keys take the 3 slots whose bucket is full, one by one");
    IS_U(kept, 20, "the 20 recently active slots keep their keys");
}

static void test_empty_before_active(void)
{
    make_segment();
    enum il_acquire r;
    uint32_t x = acquire(7, &r);
    drain(x);
    il_keytab_release(&shm, x);
    unsigned kept = 0;
    for (unsigned n = 0; n < 20; n++) {
        uint32_t i = acquire(500 + n, &r);
        kept += r == IL_ADMITTED && i != x;
    }
    IS_U(kept, 20, "20 new keys while empty slots remain: none takes the recently active slot");
    uint32_t again = acquire(7, &r);
    IS_U(again, x, "the churning key comes back to its slot");
    tap_ok(!il_ratebucket_take(&shm.keys[again].bucket, drained_at, 1, 3600),
           "and its bucket is still empty: the state survived");
}

int main(void)
{
    alarm(60);
    test_pressure();
    test_idle_first();
    test_empty_before_active();
    il_shm_detach(&shm);
    return tap_done();
}
