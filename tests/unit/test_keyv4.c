/* Unit tests for il_keytab_acquire_straight (src/lib/keytab.h), the
 * straight accept path's count of a key, with IPv4 keys: over many keys of three prefixes in
 * a crowded table, it must count in exactly where il_keytab_acquire would
 * (the same slot, the same count), refuse at the limit and at a full count
 * exactly as the bound says, and leave everything it does not count
 * (a key not in the table, another prefix's key with the same low word)
 * untouched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lib/keytab.h"
#include "../../src/lib/shm.h"
#include "tap.h"
#include "unit_segment.h"

static struct il_shm shm;

static uint64_t key_lo(const struct il_key *key)
{
    uint64_t lo;
    memcpy(&lo, key->addr + 8, 8);
    return lo;
}

/* acquire_v4 as the straight path calls it, the home hashed from the
 * prepared part (addrkey.h). */
static int acquire_v4(const struct il_key *key, uint32_t limit, uint32_t *index)
{
    uint32_t mask = shm.key_slots - 1;
    struct il_key_hash_prep prep = il_key_hash_prep(0, key->plen, shm.hash_seed);
    uint64_t lo = key_lo(key);
    uint32_t home = (uint32_t)il_key_hash_lo(&prep, lo) & mask;
    struct il_key_slot *slot = NULL;
    int r = il_keytab_acquire_straight(&shm, 0, lo, key->plen, home, mask, limit,
                                       il_keytab_count_bound(limit), index, &slot);
    if (r == 0 && slot != &shm.keys[*index])
        tap_diag("acquire_v4 handed back slot %p for index %u", (void *)slot, *index);
    return r;
}

static uint32_t count_of(uint32_t index)
{
    struct il_key key;
    uint32_t count = 0;
    return il_keytab_read(&shm, index, &key, &count) ? count : UINT32_MAX;
}

/* The IPv4 key of a, masked to a prefix of 32 (plen 128), 24 or 16. */
static struct il_key v4_key(uint32_t a, unsigned v4_prefix)
{
    char text[40];
    snprintf(text, sizeof text, "%u.%u.%u.%u", a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255);
    struct il_key key = unit_cidr(text);
    il_key_mask(&key, v4_prefix, 128);
    return key;
}

/* 3000 keys in a table of 8192 key slots (capacity 4096), with
 * neighbours that share a home: every key that acquire_v4 counts is
 * counted in the slot il_keytab_acquire finds, and a key it declines
 * (-1: not READY first in its window) is one il_keytab_acquire then
 * finds, with the count unchanged meanwhile. */
static void test_same_slot(void)
{
    tap_ok(unit_segment(&shm, 4096, NULL), "segment of 4096");
    static const unsigned prefixes[3] = {32, 24, 16};
    srandom(42);
    unsigned keys = 0, same = 0, counted = 0, declined_ok = 0;
    for (unsigned n = 0; n < 3000; n++) {
        struct il_key key = v4_key((uint32_t)random(), prefixes[n % 3]);
        struct il_acquired got;
        if (il_keytab_acquire(&shm, &key, 0, 0, &got) != IL_ADMITTED)
            continue;
        keys++;
        uint32_t before = count_of(got.index), index = UINT32_MAX;
        int r = acquire_v4(&key, 0, &index);
        if (r == 0) {
            counted++;
            same += index == got.index && count_of(index) == before + 1;
        } else {
            declined_ok += r == -1 && count_of(got.index) == before;
        }
    }
    IS_U(keys, 3000, "3000 keys claimed (some twice: a /16 of a random address repeats)");
    IS_U(same, counted, "every key acquire_v4 counts is counted in il_keytab_acquire's slot, once");
    IS_U(declined_ok, keys - counted, "every key it declines is left as it was");
    tap_ok(counted > 2000, "most keys are READY first in their window (%u of %u)", counted, keys);
}

/* The limit, and the full count: the bound says both. */
static void test_bound(void)
{
    unit_segment(&shm, 64, NULL);
    struct il_key key = v4_key(0x0a000001, 32);
    struct il_acquired got;
    il_keytab_acquire(&shm, &key, 3, 0, &got);
    uint32_t index;
    IS_U(acquire_v4(&key, 3, &index), 0, "limit 3, 1 open: counted");
    IS_U(acquire_v4(&key, 3, &index), 0, "limit 3, 2 open: counted");
    IS_U(count_of(got.index), 3, "3 open");
    IS_U(acquire_v4(&key, 3, &index), 1, "limit 3, 3 open: at the limit");
    IS_U(count_of(got.index), 3, "still 3 open");
    IS_U(acquire_v4(&key, 4, &index), 0, "limit raised to 4: counted");
    IS_U(atomic_load(&shm.keys[got.index].limit), 4, "the slot shows the limit applied");
    /* No limit: only a count that would not fit is refused, as
     * il_keytab_acquire refuses it (IL_TABLE_FULL). */
    uint64_t word = atomic_load(&shm.keys[got.index].word);
    atomic_store(&shm.keys[got.index].word, (word & ~0xffffffffULL) | UINT32_MAX);
    IS_U(acquire_v4(&key, 0, &index), 1, "no limit, a count of 2^32-1: full, refused");
    IS_U(count_of(got.index), UINT32_MAX, "the count unchanged");
    IS_U(il_keytab_acquire(&shm, &key, 0, 0, &got), IL_TABLE_FULL,
         "il_keytab_acquire refuses it too");
    atomic_store(&shm.keys[got.index].word, (word & ~0xffffffffULL) | (UINT32_MAX - 1));
    IS_U(acquire_v4(&key, 0, &index), 0, "no limit, a count of 2^32-2: counted");
    IS_U(count_of(got.index), UINT32_MAX, "to 2^32-1");
    IS_U(il_keytab_count_bound(0), UINT32_MAX - 1, "the bound of no limit");
    IS_U(il_keytab_count_bound(1), 0, "the bound of limit 1: nothing open");
}

/* A key not in the table, and a key of another prefix with the same low
 * word: declined (its home is not READY) or not matched, nothing counted. */
static void test_not_there(void)
{
    unit_segment(&shm, 64, NULL);
    struct il_key wide = v4_key(0x0a000000, 24), exact = v4_key(0x0a000000, 32);
    uint32_t index = UINT32_MAX;
    IS_U(acquire_v4(&exact, 0, &index), (uint64_t)-1, "an empty table: declined");
    struct il_acquired got;
    il_keytab_acquire(&shm, &wide, 0, 0, &got);
    int r = acquire_v4(&exact, 0, &index);
    tap_ok(r == -1, "10.0.0.0/32 beside 10.0.0.0/24 (same low word): declined, not counted (%d)",
           r);
    IS_U(count_of(got.index), 1, "the /24 key keeps its count");
    /* The same, probed from the /24 key's own slot: its low word matches,
     * its prefix does not. */
    struct il_key_slot *slot = NULL;
    r = il_keytab_acquire_straight(&shm, 0, key_lo(&exact), exact.plen, got.index,
                                   shm.key_slots - 1, 0, il_keytab_count_bound(0), &index, &slot);
    tap_ok(r == -1, "probed from the /24's slot: the prefix differs, not counted there (%d)", r);
    IS_U(count_of(got.index), 1, "the /24 key still has its one");
}

int main(void)
{
    test_same_slot();
    test_bound();
    test_not_there();
    il_shm_detach(&shm);
    return tap_done();
}
