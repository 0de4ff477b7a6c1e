/* The new-connection rate of one key: a token bucket in one 64-bit word.
 *
 *   [63:26] time of the last refill: milliseconds of CLOCK_MONOTONIC_COARSE,
 *           modulo 2^38 (8.7 years)
 *   [25:0]  tokens spent (the bucket's deficit), in 1/1000 of a token
 *
 * Counting what is spent rather than what is left makes the zero word a
 * full bucket, so a fresh or reset key slot needs no rate to start from.
 * A bucket of burst B holds at most B tokens (deficit 0); an admitted
 * connection spends one (1000 units) and is refused when that would take
 * the deficit beyond B; time refills rate tokens a second, which is rate
 * units a millisecond: the refill is one exact multiplication. The deficit
 * is at most 65535 * 1000 < 2^26. Time sits in the top bits so that the
 * difference of two times is taken modulo 2^38 by plain 64-bit arithmetic.
 *
 * The arithmetic (il_ratebucket_step) is pure, for unit tests with a
 * synthetic clock; il_ratebucket_take applies it with a compare-and-swap, so
 * every process of the service shares one bucket per key without a lock. */
#ifndef IL_RATEBUCKET_H
#define IL_RATEBUCKET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define IL_RATE_MAX 65535 /* largest rate (per second) and burst */
#define IL_RATE_UNIT 1000 /* one token, in deficit units */
#define IL_RATE_TIME_BITS 38
#define IL_RATE_DEFICIT_BITS 26
#define IL_RATE_TIME_MASK ((1ULL << IL_RATE_TIME_BITS) - 1)
#define IL_RATE_DEFICIT_MASK ((1ULL << IL_RATE_DEFICIT_BITS) - 1)
/* A clock reading this far behind the bucket's time is a stale read: a
 * process that read the clock, then lost the race to one that read it
 * later. It refills nothing. Further behind, the clock itself went back
 * (it cannot, for CLOCK_MONOTONIC on one machine; a checkpoint restored
 * elsewhere could): the bucket restarts its refill from that time, keeping
 * its tokens, rather than waiting for the old time to come back. */
#define IL_RATE_STALE_MS 60000

static inline uint64_t il_ratebucket_time(uint64_t word)
{
    return word >> IL_RATE_DEFICIT_BITS;
}
static inline uint32_t il_ratebucket_deficit(uint64_t word)
{
    return (uint32_t)(word & IL_RATE_DEFICIT_MASK);
}
static inline uint64_t il_ratebucket_make(uint64_t time_ms, uint32_t deficit)
{
    return time_ms << IL_RATE_DEFICIT_BITS | (deficit & IL_RATE_DEFICIT_MASK);
}

/* Milliseconds since the bucket's time, 0 for a stale read (above), and
 * UINT64_MAX when the clock went back further than that. */
uint64_t il_ratebucket_elapsed(uint64_t word, uint64_t now_ms);

#define IL_RATE_TIME_PART(word) ((word) & ~IL_RATE_DEFICIT_MASK)

/* The rare case of a step (ratebucket.c), out of the accept path's way:
 * now is behind the bucket's time. Returns the time (shifted) to take as
 * both the bucket's time and now: nothing is refilled either way. */
uint64_t il_ratebucket_behind(uint64_t word, uint64_t now_part);

/* One connection at now_ms against the bucket in word, for rate (1..65535
 * a second) and burst (1..65535). Returns true if it is admitted, false if
 * the bucket holds less than one token (a refused connection spends
 * nothing); either way *next is the word to store (for a refusal, word
 * itself unless the clock went back). */
static inline bool il_ratebucket_step(uint64_t word, uint64_t now_ms, uint32_t rate,
                                      uint32_t burst, uint64_t *next)
{
    uint32_t size = burst * IL_RATE_UNIT;
    uint32_t deficit = (uint32_t)(word & IL_RATE_DEFICIT_MASK);
    uint64_t now_part = now_ms << IL_RATE_DEFICIT_BITS;
    uint64_t time_part = IL_RATE_TIME_PART(word);
    if (__builtin_expect((int64_t)(now_part - time_part) < 0, 0))
        now_part = time_part = il_ratebucket_behind(word, now_part);
    /* At most 2^37 ms, so elapsed * rate < 2^53: no overflow. A full
     * bucket's time may be anything (the zero word is full): whatever it
     * refills, the deficit stays 0 and the time becomes now. */
    uint64_t elapsed = (now_part - time_part) >> IL_RATE_DEFICIT_BITS;
    /* A bucket is never emptier than empty: a deficit left by a larger
     * burst (before a reload) counts as an empty bucket of this one. */
    if (deficit > size)
        deficit = size;
    uint64_t units = elapsed * rate; /* exact: rate units a millisecond */
    uint32_t after = deficit > units ? deficit - (uint32_t)units : 0;
    if (after + IL_RATE_UNIT > size) {
        /* Refused: nothing changes, but for a rebased time, which must be
         * stored or the refill would never start. */
        *next = time_part | (word & IL_RATE_DEFICIT_MASK);
        return false;
    }
    /* The time moves to now: the refill is exact (rate units a whole
     * millisecond), so nothing earned since the last refill is lost; when
     * nothing was refilled (rate >= 1, so no whole ms passed), now_part is
     * time_part already. */
    *next = now_part | (after + IL_RATE_UNIT);
    return true;
}

/* il_ratebucket_step on a shared word, lock-free. Inline, with the step:
 * the accept path takes a token per connection. */
static inline bool il_ratebucket_take(_Atomic uint64_t *bucket, uint64_t now_ms, uint32_t rate,
                                      uint32_t burst)
{
    uint64_t word = atomic_load_explicit(bucket, memory_order_relaxed);
    uint64_t next;
    /* Relaxed: the word is all the state; nothing else is published with
     * it. A failed CAS reloads word and the step is redone on it, so two
     * processes can never spend the same token. */
    for (;;) {
        /* An admission always changes the word (its deficit); a refusal
         * stores only a rebased time. Each outcome returns a constant, so
         * that the inlined caller branches on the step itself. */
        if (il_ratebucket_step(word, now_ms, rate, burst, &next)) {
            if (atomic_compare_exchange_weak_explicit(bucket, &word, next, memory_order_relaxed,
                                                      memory_order_relaxed))
                return true;
        } else if (next == word ||
                   atomic_compare_exchange_weak_explicit(bucket, &word, next,
                                                         memory_order_relaxed,
                                                         memory_order_relaxed)) {
            return false;
        }
    }
}


/* Whole tokens in the bucket at now_ms (for display). */
uint32_t il_ratebucket_tokens(uint64_t word, uint64_t now_ms, uint32_t rate, uint32_t burst);

/* Whether a bucket last written hold_ms or more ago, or full then, is full
 * now for any rate whose bucket fills from empty within hold_ms. */
bool il_ratebucket_idle(uint64_t word, uint64_t now_ms, uint32_t hold_ms);

/* The time to put in a bucket: CLOCK_MONOTONIC_COARSE in ms, read through
 * the vDSO (no system call). Its resolution is the kernel tick (1-10 ms):
 * a refill is never early, at most one tick late. */
uint64_t il_ratebucket_now(void);

#endif
