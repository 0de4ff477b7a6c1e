/* The token bucket of a key's new-connection rate (see ratebucket.h). */
#include "ratebucket.h"

#include <time.h>

#define TIME_PART(word) IL_RATE_TIME_PART(word)

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

/* See ratebucket.h. Out of line: the clock is rarely behind. */
uint64_t il_ratebucket_behind(uint64_t word, uint64_t now_part)
{
    uint64_t behind_ms = (TIME_PART(word) - now_part) >> IL_RATE_DEFICIT_BITS;
    if ((word & IL_RATE_DEFICIT_MASK) == 0)
        return now_part; /* a full bucket's time means nothing: now */
    /* A stale read (this process read the clock, then lost the race to one
     * that read it later): the bucket's time never moves back. Further
     * back, the clock went back: the refill restarts from now. */
    return behind_ms <= IL_RATE_STALE_MS ? TIME_PART(word) : now_part;
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
