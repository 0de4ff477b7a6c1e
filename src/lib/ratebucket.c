/* The token bucket of a key's new-connection rate (see ratebucket.h). */
#include "ratebucket.h"

#include <time.h>

#define TIME_PART(word) ((word) & ~IL_RATE_DEFICIT_MASK)

uint64_t il_ratebucket_elapsed(uint64_t word, uint64_t now_ms)
{
    /* The difference in the top 38 bits: modulo 2^38, and negative (as a
     * signed number) when now is behind the bucket's time. */
    int64_t since = (int64_t)((now_ms << IL_RATE_DEFICIT_BITS) - TIME_PART(word));
    if (since >= 0)
        return (uint64_t)since >> IL_RATE_DEFICIT_BITS;
    uint64_t behind = (uint64_t)-since >> IL_RATE_DEFICIT_BITS;
    return behind <= IL_RATE_STALE_MS ? 0 : UINT64_MAX;
}

/* The rare case of a step, out of the accept path's way: now is behind
 * the bucket's time. Returns the time (shifted) to take as both the
 * bucket's time and now: nothing is refilled either way. */
static __attribute__((noinline)) uint64_t behind(uint64_t word, uint64_t now_part)
{
    uint64_t behind_ms = (TIME_PART(word) - now_part) >> IL_RATE_DEFICIT_BITS;
    if ((word & IL_RATE_DEFICIT_MASK) == 0)
        return now_part; /* a full bucket's time means nothing: now */
    /* A stale read (this process read the clock, then lost the race to one
     * that read it later): the bucket's time never moves back. Further
     * back, the clock went back: the refill restarts from now. */
    return behind_ms <= IL_RATE_STALE_MS ? TIME_PART(word) : now_part;
}

bool il_ratebucket_step(uint64_t word, uint64_t now_ms, uint32_t rate, uint32_t burst,
                        uint64_t *next)
{
    uint32_t size = burst * IL_RATE_UNIT;
    uint32_t deficit = (uint32_t)(word & IL_RATE_DEFICIT_MASK);
    uint64_t now_part = now_ms << IL_RATE_DEFICIT_BITS;
    uint64_t time_part = TIME_PART(word);
    if (__builtin_expect((int64_t)(now_part - time_part) < 0, 0))
        now_part = time_part = behind(word, now_part);
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

bool il_ratebucket_take(_Atomic uint64_t *bucket, uint64_t now_ms, uint32_t rate, uint32_t burst)
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

uint32_t il_ratebucket_tokens(uint64_t word, uint64_t now_ms, uint32_t rate, uint32_t burst)
{
    uint32_t deficit = (uint32_t)(word & IL_RATE_DEFICIT_MASK);
    uint64_t elapsed = deficit ? il_ratebucket_elapsed(word, now_ms) : 0;
    if (elapsed == UINT64_MAX)
        elapsed = 0;
    uint64_t units = elapsed * rate;
    deficit = units >= deficit ? 0 : deficit - (uint32_t)units;
    uint32_t size = burst * IL_RATE_UNIT;
    return deficit >= size ? 0 : (size - deficit) / IL_RATE_UNIT;
}

bool il_ratebucket_idle(uint64_t word, uint64_t now_ms, uint32_t hold_ms)
{
    if ((word & IL_RATE_DEFICIT_MASK) == 0)
        return true;
    return il_ratebucket_elapsed(word, now_ms) >= hold_ms;
}

uint64_t il_ratebucket_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    /* tv_nsec < 10^9 fits 32 bits, which lets the compiler divide with one
     * multiplication and a shift. */
    return (uint64_t)ts.tv_sec * 1000 + (uint32_t)ts.tv_nsec / 1000000u;
}
