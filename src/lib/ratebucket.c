/* The token bucket of a key's new-connection rate (see ratebucket.h). */
#include "ratebucket.h"

#include <time.h>

/* Refilling caps elapsed time here: longer than any bucket takes to fill
 * from empty (65535 tokens at 1 a second is 65,535,000 ms), short enough
 * that elapsed * rate * 256 cannot overflow. */
#define FILL_CAP_MS (1ULL << 27)

uint64_t il_ratebucket_elapsed(uint64_t word, uint64_t now_ms)
{
    uint64_t diff = (now_ms - il_ratebucket_time(word)) & IL_RATE_TIME_MASK;
    if (diff < 1ULL << (IL_RATE_TIME_BITS - 1))
        return diff;
    /* now is behind the bucket's time (modulo 2^40). */
    return (1ULL << IL_RATE_TIME_BITS) - diff <= IL_RATE_STALE_MS ? 0 : UINT64_MAX;
}

/* The deficit after refilling for elapsed ms. */
static uint32_t refilled(uint32_t deficit, uint64_t elapsed, uint32_t rate)
{
    if (elapsed > FILL_CAP_MS)
        elapsed = FILL_CAP_MS;
    /* rate tokens a second = rate * 256 units per 1000 ms; rounded down,
     * so a refill is never more than the time allows. */
    uint64_t units = elapsed * rate * IL_RATE_UNIT / 1000;
    return units >= deficit ? 0 : deficit - (uint32_t)units;
}

bool il_ratebucket_step(uint64_t word, uint64_t now_ms, uint32_t rate, uint32_t burst,
                        uint64_t *next)
{
    uint32_t deficit = il_ratebucket_deficit(word);
    uint64_t time = il_ratebucket_time(word);
    /* A full bucket's time means nothing (the zero word is full): it
     * starts at now, whatever now is. */
    uint64_t elapsed = deficit ? il_ratebucket_elapsed(word, now_ms) : 1;
    if (elapsed == UINT64_MAX)
        time = now_ms; /* the clock went back: refill from now on */
    else if (elapsed == 0)
        now_ms = time; /* a stale read: the bucket's time never moves back */
    if (elapsed == UINT64_MAX)
        elapsed = 0;
    /* A bucket is never emptier than empty: a deficit left by a larger
     * burst (before a reload) counts as an empty bucket of this one. */
    if (deficit > burst * IL_RATE_UNIT)
        deficit = burst * IL_RATE_UNIT;
    uint32_t after = refilled(deficit, elapsed, rate);
    if (after + IL_RATE_UNIT > burst * IL_RATE_UNIT) {
        /* Refused: nothing changes, but for a rebased time, which must be
         * stored or the refill would never start. */
        *next = il_ratebucket_make(time, deficit);
        return false;
    }
    /* The time moves on only when the refill took something from the
     * deficit: otherwise the fraction of a unit earned since the last
     * refill would be lost at every admission (at a high admission rate
     * and a low token rate, all of it). What is lost is below one unit,
     * 1/256 of a token, per admission, and errs towards fewer admissions. */
    if (after != deficit || deficit == 0)
        time = now_ms;
    *next = il_ratebucket_make(time, after + IL_RATE_UNIT);
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
        bool admitted = il_ratebucket_step(word, now_ms, rate, burst, &next);
        if (next == word ||
            atomic_compare_exchange_weak_explicit(bucket, &word, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return admitted;
    }
}

uint32_t il_ratebucket_tokens(uint64_t word, uint64_t now_ms, uint32_t rate, uint32_t burst)
{
    uint64_t elapsed = il_ratebucket_elapsed(word, now_ms);
    uint32_t deficit = refilled(il_ratebucket_deficit(word), elapsed == UINT64_MAX ? 0 : elapsed,
                                rate);
    uint32_t size = burst * IL_RATE_UNIT;
    return deficit >= size ? 0 : (size - deficit) / IL_RATE_UNIT;
}

bool il_ratebucket_idle(uint64_t word, uint64_t now_ms, uint32_t hold_ms)
{
    if (il_ratebucket_deficit(word) == 0)
        return true;
    uint64_t elapsed = il_ratebucket_elapsed(word, now_ms);
    return elapsed >= hold_ms;
}

uint64_t il_ratebucket_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) & IL_RATE_TIME_MASK;
}
