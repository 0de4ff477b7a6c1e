/* The fork lock (see forklock.h).
 *
 * One word: bit 31 is set while a fork holds the lock (or waits for the
 * shared holders to leave), bits 0..30 count the shared holders. Every
 * change is a read-modify-write on that one word, so all of them are in one
 * total order: a shared holder whose increment comes before the fork's
 * setting of bit 31 is seen by the fork's wait for the count to drain, and
 * one whose increment comes after sees bit 31 and backs out. The map
 * updates a shared holder makes happen before its decrement (release),
 * which the fork's drain wait reads (acquire), so the fork's walk of the
 * map sees them. A fork that sets bit 31 makes new shared holders wait
 * (fork has priority: a busy accept/close loop cannot starve it). */
#include "forklock.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "hot.h"

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

#define FORKING IL_FORKING
#define SPINS 64
#define YIELDS 1024

IL_HOT_DATA _Atomic uint32_t il_fork_lock_word;

/* This thread's shared holds (each counted in il_fork_lock_word) and whether it
 * holds the lock exclusive (forklock.h): such a thread never waits for itself. */
_Thread_local unsigned il_fork_held __attribute__((tls_model("initial-exec")));
#define held_shared() (il_fork_held & ~IL_FORK_HELD_EXCLUSIVE)
#define held_exclusive() ((il_fork_held & IL_FORK_HELD_EXCLUSIVE) != 0)

struct waiter {
    unsigned rounds;
    int64_t deadline;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One round of waiting: spin, then yield, then sleep 50 us at a time.
 * Returns false once IL_FORK_LOCK_WAIT_NS have passed since the first
 * round that looked at the clock. Keeps errno. */
static bool keep_waiting(struct waiter *w)
{
    unsigned round = w->rounds++;
    if (round < SPINS) {
        cpu_relax();
        return true;
    }
    int saved_errno = errno;
    if (round < SPINS + YIELDS) {
        sched_yield();
    } else {
        struct timespec pause = {0, 50000};
        nanosleep(&pause, NULL);
    }
    bool go_on = true;
    if (round % 16 == 0) {
        int64_t now = now_ns();
        if (!w->deadline)
            w->deadline = now + IL_FORK_LOCK_WAIT_NS;
        else if (now > w->deadline)
            go_on = false;
    }
    errno = saved_errno;
    return go_on;
}

bool il_fork_lock_shared_slow(void)
{
    /* Inside this thread's own fork (code run by the fork itself): the walk
     * is this thread's, go through. */
    if (held_exclusive())
        return false;
    /* Nested in this thread's own shared hold (a signal handler that
     * interrupted a close): a waiting fork counts this thread's holds
     * already, and waiting for it here would wait for ourselves. */
    if (held_shared()) {
        atomic_fetch_add_explicit(&il_fork_lock_word, 1, memory_order_seq_cst);
        il_fork_held++;
        return true;
    }
    struct waiter w = {0, 0};
    for (;;) {
        uint32_t was = atomic_fetch_add_explicit(&il_fork_lock_word, 1, memory_order_seq_cst);
        if (!(was & FORKING)) {
            il_fork_held++;
            return true;
        }
        atomic_fetch_sub_explicit(&il_fork_lock_word, 1, memory_order_seq_cst);
        while (atomic_load_explicit(&il_fork_lock_word, memory_order_acquire) & FORKING)
            if (!keep_waiting(&w))
                return false;
    }
}

bool il_fork_lock_exclusive(void)
{
    if (held_exclusive())
        return false;
    struct waiter w = {0, 0};
    uint32_t word = atomic_load_explicit(&il_fork_lock_word, memory_order_relaxed);
    for (;;) {
        if (!(word & FORKING)) {
            if (atomic_compare_exchange_weak_explicit(&il_fork_lock_word, &word, word | FORKING,
                                                      memory_order_seq_cst,
                                                      memory_order_relaxed))
                break;
            continue;
        }
        /* Another thread is forking: forks take turns. */
        if (!keep_waiting(&w))
            return false;
        word = atomic_load_explicit(&il_fork_lock_word, memory_order_relaxed);
    }
    il_fork_held |= IL_FORK_HELD_EXCLUSIVE;
    /* Wait for the shared holders to leave; this thread's own holds (a
     * fork from a signal handler that interrupted a close) stay. A holder
     * still inside its real call after the bound (a close lingering, an
     * fclose flushing to a full socket) has already cleared its map entry:
     * going ahead then leaves the child's copy of that fd uncounted. */
    w = (struct waiter){0, 0};
    while ((atomic_load_explicit(&il_fork_lock_word, memory_order_acquire) & ~FORKING) > held_shared())
        if (!keep_waiting(&w))
            break;
    return true;
}

void il_fork_unlock_exclusive(bool token)
{
    if (!token)
        return;
    il_fork_held &= ~IL_FORK_HELD_EXCLUSIVE;
    atomic_fetch_and_explicit(&il_fork_lock_word, ~FORKING, memory_order_release);
}

void il_fork_lock_child(void)
{
    il_fork_held &= ~IL_FORK_HELD_EXCLUSIVE;
    atomic_store_explicit(&il_fork_lock_word, held_shared(), memory_order_relaxed);
}
