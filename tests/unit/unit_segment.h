/* Helpers of the unit tests that work on a real segment made by
 * il_shm_create (test_tables, test_handoff, test_keyreuse,
 * test_firstclaim). Static inline: each test uses what it needs. */
#ifndef IL_UNIT_SEGMENT_H
#define IL_UNIT_SEGMENT_H

#include <stdio.h>
#include <string.h>

#include "../../src/lib/addrkey.h"
#include "../../src/lib/shm.h"
#include "tap.h"

/* The key 10.x.y.z of a number n < 2^24, one per n. */
static inline struct il_key unit_key_n(unsigned n)
{
    struct il_key key;
    char text[32];
    snprintf(text, sizeof text, "10.%u.%u.%u", n >> 16 & 255, n >> 8 & 255, n & 255);
    il_key_parse_cidr(&key, text);
    return key;
}

/* The key (or network) a CIDR text names; a diagnostic if it does not parse. */
static inline struct il_key unit_cidr(const char *text)
{
    struct il_key key;
    memset(&key, 0, sizeof key);
    const char *err = il_key_parse_cidr(&key, text);
    if (err)
        tap_diag("test setup: %s: %s", text, err);
    return key;
}

/* Replaces *shm (detached first if attached) by a new segment of capacity
 * keys under policy (NULL: the defaults). False, with a diagnostic, when
 * it cannot be made. */
static inline bool unit_segment(struct il_shm *shm, uint32_t capacity,
                                const struct il_policy *policy)
{
    struct il_policy defaults;
    if (!policy) {
        il_policy_defaults(&defaults);
        policy = &defaults;
    }
    if (shm->hdr)
        il_shm_detach(shm);
    int err = il_shm_create(shm, capacity, policy, NULL);
    if (err)
        tap_diag("il_shm_create(%u): %s", capacity, strerror(-err));
    return err == 0;
}

#endif
