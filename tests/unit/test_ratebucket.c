/* Unit tests for the token bucket of the new-connection rate
 * (src/lib/ratebucket.c), on a synthetic clock: refill, burst, the clock
 * going back or jumping ahead, wrap-around, and threads and processes
 * spending one shared bucket. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/lib/ratebucket.h"
#include "tap.h"

static _Atomic uint64_t bucket;

/* Connections attempted at one instant: how many were admitted. */
static unsigned take_n(uint64_t now, uint32_t rate, uint32_t burst, unsigned tries)
{
    unsigned admitted = 0;
    for (unsigned i = 0; i < tries; i++)
        admitted += il_ratebucket_take(&bucket, now, rate, burst);
    return admitted;
}

static void test_burst_and_refill(void)
{
    atomic_store(&bucket, 0);
    IS_U(take_n(1000, 10, 5, 20), 5, "rate 10 burst 5, fresh bucket: 5 of 20 at once");
    IS_U(take_n(1099, 10, 5, 5), 0, "99 ms later: still empty");
    IS_U(take_n(1100, 10, 5, 5), 1, "100 ms later: one token");
    IS_U(take_n(1600, 10, 5, 20), 5, "500 ms idle (burst/rate): the burst again, exactly");
    IS_U(take_n(1600 + 3600000, 10, 5, 20), 5, "an hour idle: the burst, no more");
    IS_U(il_ratebucket_tokens(atomic_load(&bucket), 1600 + 3600000, 10, 5), 0,
         "tokens: 0 when drained");
    IS_U(il_ratebucket_tokens(atomic_load(&bucket), 1600 + 3600000 + 250, 10, 5), 2,
         "tokens: 2 after 250 ms at 10/s");
}

static void test_slow_rate_keeps_fractions(void)
{
    /* One attempt every millisecond for 10 s at 1/s: each refill of a
     * millisecond is a fraction of a unit, which must not be lost. */
    atomic_store(&bucket, 0);
    unsigned admitted = 0;
    for (uint64_t t = 5000; t <= 15000; t++)
        admitted += take_n(t, 1, 1, 1);
    IS_U(admitted, 11, "rate 1 burst 1, a try every ms for 10 s: 11 admitted");

    atomic_store(&bucket, 0);
    admitted = 0;
    for (uint64_t t = 5000; t <= 8000; t++)
        admitted += take_n(t, 3, 1, 1);
    tap_ok(admitted >= 9 && admitted <= 10, "rate 3 burst 1 for 3 s: 9 or 10 admitted (%u)",
           admitted);
}

static void test_smaller_burst(void)
{
    /* A reload from burst 50 to burst 2: the old deficit is an empty
     * bucket of the new size, which refills at the new rate. */
    atomic_store(&bucket, 0);
    IS_U(take_n(9000, 50, 50, 60), 50, "burst 50: 50 at once");
    IS_U(take_n(9000, 2, 2, 5), 0, "now burst 2: empty");
    IS_U(take_n(9500, 2, 2, 5), 1, "500 ms at 2/s: one, not a wait for 48 tokens");
}

static void test_largest(void)
{
    atomic_store(&bucket, 0);
    IS_U(take_n(77, IL_RATE_MAX, IL_RATE_MAX, 70000), IL_RATE_MAX,
         "rate and burst 65535: 65535 at once");
    IS_U(take_n(77 + 1000, IL_RATE_MAX, IL_RATE_MAX, 70000), IL_RATE_MAX,
         "one second later: 65535 again");
    IS_U(take_n(77 + 1000 + (1ULL << 36), IL_RATE_MAX, IL_RATE_MAX, 70000), IL_RATE_MAX,
         "2^36 ms later: 65535, no overflow");
}

static void test_clock_back(void)
{
    atomic_store(&bucket, 0);
    uint64_t t = 1000000;
    IS_U(take_n(t, 10, 5, 10), 5, "drained at t");
    IS_U(take_n(t - 5, 10, 5, 10), 0, "a read 5 ms behind: nothing");
    IS_U(il_ratebucket_time(atomic_load(&bucket)), t, "the bucket's time did not move back");
    IS_U(take_n(t + 100, 10, 5, 10), 1, "100 ms after t: one");
    IS_U(take_n(t + 100 - IL_RATE_STALE_MS, 10, 5, 10), 0,
         "a read 60 s behind (the stale limit): nothing");
    IS_U(il_ratebucket_time(atomic_load(&bucket)), t + 100, "time still t + 100");

    /* Further back: the clock itself went back. Nothing is granted, and
     * the refill restarts from the new time instead of waiting years. */
    uint64_t back = 500;
    IS_U(take_n(back, 10, 5, 10), 0, "clock back by ~1000 s: nothing granted");
    IS_U(il_ratebucket_time(atomic_load(&bucket)), back, "the bucket was rebased");
    IS_U(take_n(back + 100, 10, 5, 10), 1, "100 ms after the rebase: one");
    IS_U(take_n(back + 100 + 10000, 10, 5, 10), 5, "10 s after: the burst, exactly");
}

static void test_jump_ahead_and_wrap(void)
{
    atomic_store(&bucket, 0);
    uint64_t end = IL_RATE_TIME_MASK; /* the last ms before the time field wraps */
    IS_U(take_n(end - 50, 10, 5, 10), 5, "drained 50 ms before the time field wraps");
    IS_U(take_n((end + 51) & IL_RATE_TIME_MASK, 10, 5, 10), 1,
         "100 ms later, across the wrap: one");
    uint64_t now = (end + 51) & IL_RATE_TIME_MASK;
    IS_U(take_n((now + (1ULL << 37) - 1) & IL_RATE_TIME_MASK, 10, 5, 10), 5,
         "a jump 2^37 - 1 ms ahead (half the time field): the burst, no more");
}

/* Random walk of the clock (forward steps, stale reads, rare jumps both
 * ways) with bursts of attempts: the bucket never holds more than its
 * burst (never more than burst admitted at one instant after any past),
 * and over any stretch of monotonic time at most burst + rate * seconds
 * (+ 1 for the unit rounding) are admitted. */
static void test_random_walk(void)
{
    unsigned seed = 12345, worst_excess = 0, over_burst = 0, runs = 0;
    for (int run = 0; run < 200; run++) {
        atomic_store(&bucket, 0);
        uint32_t rate = 1 + (unsigned)(rand_r(&seed) % 200);
        uint32_t burst = 1 + (unsigned)(rand_r(&seed) % 50);
        uint64_t t = (uint64_t)rand_r(&seed) << 8, start = t, high = t;
        unsigned admitted = 0;
        for (int step = 0; step < 500; step++) {
            unsigned r = (unsigned)rand_r(&seed) % 100;
            if (r < 80)
                t += (unsigned)rand_r(&seed) % 50; /* forward a little */
            else if (r < 95 && t > 1000)
                t -= (unsigned)rand_r(&seed) % 1000; /* a stale read */
            else if (r < 97)
                t += (uint64_t)rand_r(&seed) << 12; /* far ahead */
            else if (t > 100000000)
                t -= 100000000; /* the clock went back a day */
            if (t > high) {
                /* Bound over the monotonic stretch since start. */
                high = t;
            }
            unsigned got = take_n(t & IL_RATE_TIME_MASK, rate, burst, burst + 3);
            over_burst += got > burst;
            admitted += got;
            if (t < start) {
                /* A clock that went back starts a new stretch. */
                start = t;
                high = t;
                admitted = got;
            }
            uint64_t allowed = burst + rate * (high - start) / 1000 + 1;
            if (admitted > allowed && admitted - allowed > worst_excess)
                worst_excess = (unsigned)(admitted - allowed);
        }
        runs++;
    }
    IS_U(over_burst, 0, "random walk: never more than the burst at one instant");
    IS_U(worst_excess, 0, "random walk: never more than burst + rate * elapsed + 1");
    IS_U(runs, 200, "random walk: 200 runs of 500 steps");
}

static void test_idle(void)
{
    IS_U(il_ratebucket_idle(0, 123, 500), 1, "a full bucket (word 0) is idle");
    atomic_store(&bucket, 0);
    take_n(10000, 10, 5, 5);
    uint64_t w = atomic_load(&bucket);
    IS_U(il_ratebucket_idle(w, 10499, 500), 0, "drained, 499 ms later, hold 500: not idle");
    IS_U(il_ratebucket_idle(w, 10500, 500), 1, "500 ms later: idle");
    IS_U(il_ratebucket_idle(w, 9990, 500), 0, "a stale read: not idle");
}

/* ---- one bucket, many spenders ---- */

#define SPENDERS 4
static _Atomic unsigned spent;

static void *spender(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++)
        if (il_ratebucket_take(&bucket, 424242, 100, 1000))
            atomic_fetch_add(&spent, 1);
    return NULL;
}

static void test_threads(void)
{
    atomic_store(&bucket, 0);
    atomic_store(&spent, 0);
    pthread_t t[SPENDERS];
    for (int i = 0; i < SPENDERS; i++)
        pthread_create(&t[i], NULL, spender, NULL);
    for (int i = 0; i < SPENDERS; i++)
        pthread_join(t[i], NULL);
    IS_U(atomic_load(&spent), 1000, "4 threads, one instant, burst 1000: exactly 1000 admitted");
}

static void test_processes(void)
{
    _Atomic uint64_t *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    _Atomic unsigned *total = (_Atomic unsigned *)(shared + 1);
    if (!tap_ok(shared != MAP_FAILED, "shared page for processes"))
        return;
    pid_t pids[SPENDERS];
    for (int i = 0; i < SPENDERS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            alarm(60);
            for (int n = 0; n < 20000; n++)
                if (il_ratebucket_take(shared, 5000 + n / 1000, 100, 300))
                    atomic_fetch_add(total, 1);
            _exit(0);
        }
    }
    for (int i = 0; i < SPENDERS; i++)
        waitpid(pids[i], NULL, 0);
    /* The clock runs 5000..5019 ms: at most 300 + 100 * 0.019 s = 301.9. */
    unsigned got = atomic_load(total);
    tap_ok(got >= 300 && got <= 301, "4 processes, 19 ms of clock, rate 100 burst 300: "
                                     "300 or 301 admitted (%u)", got);
    munmap(shared, 4096);
}

int main(void)
{
    alarm(120);
    test_burst_and_refill();
    test_slow_rate_keeps_fractions();
    test_smaller_burst();
    test_largest();
    test_clock_back();
    test_jump_ahead_and_wrap();
    test_random_walk();
    test_idle();
    test_threads();
    test_processes();
    return tap_done();
}
