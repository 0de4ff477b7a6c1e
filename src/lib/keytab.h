/* The shared key table: open connections per key, lock-free.
 *
 * Open addressing with a bounded probe window.  A slot, once used, never
 * goes back to EMPTY (lookups stop at EMPTY); a slot whose count fell to
 * zero keeps its key and may be taken over by a new key, which bumps its
 * version so that readers holding the old version notice. */
#ifndef IL_KEYTAB_H
#define IL_KEYTAB_H

#include <stdint.h>

#include "addrkey.h"
#include "shm.h"

#define IL_KEY_PROBES 64

enum il_acquire {
    IL_ADMITTED,      /* counted: *index is the key's slot */
    IL_OVER_LIMIT,    /* not counted: the key is at its limit */
    IL_OVER_ADMITTED, /* counted although over the limit (dry run) */
    IL_TABLE_FULL,    /* no slot for the key: not counted (fail open) */
};

struct il_acquired {
    uint32_t index; /* key slot */
    uint32_t count; /* open connections after this accept (or at rejection) */
};

/* Counts one connection against key if it is under limit (0 = no limit);
 * with force, counts it anyway and reports IL_OVER_ADMITTED. */
enum il_acquire il_keytab_acquire(struct il_shm *shm, const struct il_key *key, uint32_t limit,
                                  int force, struct il_acquired *out);

/* Uncounts one connection from the key in slot index. */
void il_keytab_release(struct il_shm *shm, uint32_t index);

/* Reads slot index for display: returns 0 when the slot holds no key. */
int il_keytab_read(const struct il_shm *shm, uint32_t index, struct il_key *key, uint32_t *count);

static inline uint32_t il_keyword_count(uint64_t word)
{
    return (uint32_t)word;
}
static inline uint64_t il_keyword_state(uint64_t word)
{
    return word >> 62;
}
static inline uint64_t il_keyword_version(uint64_t word)
{
    return (word >> 32) & 0x3fffffffULL;
}
static inline uint64_t il_keyword_make(uint64_t state, uint64_t version, uint32_t count)
{
    return state << 62 | (version & 0x3fffffffULL) << 32 | count;
}

#endif
