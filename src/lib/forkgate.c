/* Forks and the library's half-done work (see forkgate.h). */
#include "forkgate.h"

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* The gate is a Dekker pair: a window counts itself in, then looks for a
 * fork; a fork counts itself in, then looks for windows. Both are
 * sequentially consistent, so of two racing sides at least one sees the
 * other and waits (or backs off). */
static _Atomic int windows; /* windows open in this process, all threads */
static _Atomic int forks;   /* forks between prepare and parent/child */
static _Thread_local int my_windows __attribute__((tls_model("initial-exec")));

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pause_briefly(void)
{
    struct timespec ts = {0, 50 * 1000}; /* 50 us: windows last microseconds */
    nanosleep(&ts, NULL);
}

void il_forkgate_enter(void)
{
    if (my_windows++ > 0)
        return; /* nested: already counted */
    uint64_t deadline = 0;
    for (;;) {
        atomic_fetch_add(&windows, 1);
        if (atomic_load(&forks) == 0)
            return;
        /* A fork is waiting for the windows to close: let it go first,
         * for at most the bound; after that, open anyway. */
        atomic_fetch_sub(&windows, 1);
        uint64_t now = now_ms();
        if (!deadline)
            deadline = now + IL_FORKGATE_WAIT_MS;
        else if (now >= deadline) {
            atomic_fetch_add(&windows, 1);
            return;
        }
        pause_briefly();
    }
}

void il_forkgate_leave(void)
{
    if (--my_windows == 0)
        atomic_fetch_sub(&windows, 1);
}

void il_forkgate_prepare(void)
{
    atomic_fetch_add(&forks, 1);
    /* This thread's own window (a fork from a signal handler inside it)
     * cannot close while we wait: do not wait for it. */
    int mine = my_windows > 0;
    if (atomic_load(&windows) <= mine)
        return;
    uint64_t deadline = now_ms() + IL_FORKGATE_WAIT_MS;
    while (atomic_load(&windows) > mine && now_ms() < deadline)
        pause_briefly();
}

void il_forkgate_parent(void)
{
    atomic_fetch_sub(&forks, 1);
}

/* The child has one thread, this one: only its own window is open. */
void il_forkgate_child(void)
{
    atomic_store(&forks, 0);
    atomic_store(&windows, my_windows > 0);
}
