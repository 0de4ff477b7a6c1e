/* Who reconciles, and when (see reconciler.h). */
#include "reconciler.h"

#include <errno.h>
#include <linux/close_range.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "forkgate.h"
#include "hot.h"
#include "ownfd.h"
#include "log.h"
#include "real.h"
#include "reconcile.h"

#define THREAD_STACK (256 * 1024)

/* The pid of this process while its reconciler thread runs, else 0. A
 * forked child inherits the parent's value, which is not its own pid, so it
 * never mistakes the parent's thread for one of its own. */
IL_HOT_DATA _Atomic pid_t il_rec_thread_pid;
static struct il_log_limit thread_log;

static uint64_t clock_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct schedule {
    uint32_t interval; /* seconds, 0: never */
    uint8_t thread;    /* reconcile in a thread, not inline */
};

static struct schedule schedule_of(const struct il_shm *shm)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        struct il_policy_ticket ticket;
        const struct il_policy *p = il_shm_policy_begin(shm, &ticket);
        if (!p)
            continue;
        struct schedule s = {p->reconcile_interval, p->reconcile_thread};
        if (!il_shm_policy_changed(shm, &ticket))
            return s;
    }
    return (struct schedule){IL_DEFAULT_RECONCILE_INTERVAL, 1};
}

/* Moves the due time from due to one interval after now. Only the caller
 * that wins this compare-and-swap runs; the due time moves before the run,
 * so a runner killed mid-run delays nothing but its own run. */
static bool claim_run(struct il_shm *shm, uint64_t due, uint64_t now, uint32_t interval)
{
    /* Disabled: look again in a second, in case a reload enables it. */
    uint64_t next = now + (interval ? interval : 1) * 1000ULL;
    return atomic_compare_exchange_strong_explicit(&shm->hdr->rec_next_run, &due, next,
                                                   memory_order_relaxed, memory_order_relaxed);
}

/* Sleeps for ms, or until a policy publish bumps rec_wake from seen (it
 * is a shared futex: the waker may be another process, iplimit reload). */
static void sleep_unless_woken(struct il_shm *shm, uint32_t seen, uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    il_sys(SYS_futex, &shm->hdr->rec_wake, FUTEX_WAIT, seen, &ts, NULL, 0);
}

struct thread_arg {
    struct il_shm *shm;
    pid_t owner;
    _Atomic uint32_t running; /* set by the thread first thing; a futex */
};

static bool still_owner(struct il_shm *shm, pid_t self)
{
    return atomic_load_explicit(&shm->hdr->rec_owner, memory_order_relaxed) == self;
}

/* The thread: a run at once (its starter won a due time), then one each
 * time the due time comes, until another process takes ownership over or
 * a reload asks for inline runs or for none. It blocks every signal (they belong to
 * the host's threads) and never calls into libc state a fork could leave
 * locked in a child (log.c never calls syslog(3)). */
static void *reconciler_main(void *opaque)
{
    struct thread_arg *start = opaque;
    struct thread_arg arg = {start->shm, start->owner, 0};
    struct il_shm *shm = arg.shm;
    /* An fd table of its own, with only the host's stdin, stdout and
     * stderr of this moment (CLOSE_RANGE_UNSHARE copies none of the fds it
     * closes; stderr is where IPLIMIT_LOG=stderr lines go): the netlink
     * and /dev/log sockets this thread opens are never in the host's
     * table, so no fork, raw clone or close of the host's can copy or take
     * them. Without it (kernel before 5.9), forkgate.h holds off forks
     * while they are made. */
    int (*real_close_range)(unsigned, unsigned, int) = IL_REAL(close_range);
    if (real_close_range && real_close_range(3, ~0u, CLOSE_RANGE_UNSHARE) == 0)
        il_own_fds_private = 1;
    /* The creator waits for this (start_thread): from here on glibc has
     * marked the thread started, and a child cloned now can setuid. */
    /* Named from inside: pthread_setname_np on another thread opens a
     * file in the host's fd table. */
    prctl(PR_SET_NAME, "iplimit-rec", 0, 0, 0);
    atomic_store_explicit(&start->running, 1, memory_order_release);
    il_sys(SYS_futex, &start->running, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    struct schedule s = schedule_of(shm);
    if (s.interval)
        il_reconcile_run_within(shm, IL_RECONCILE_THREAD_DEADLINE_MS);
    while (still_owner(shm, arg.owner)) {
        /* Read before the policy: a publish after this makes the sleep
         * below return at once. */
        uint32_t seen = atomic_load_explicit(&shm->hdr->rec_wake, memory_order_acquire);
        s = schedule_of(shm);
        if (!s.thread || !s.interval)
            break; /* inline runs, or none: the thread is not needed */
        uint64_t now = clock_ms(CLOCK_MONOTONIC);
        uint64_t due = atomic_load_explicit(&shm->hdr->rec_next_run, memory_order_relaxed);
        if (now < due) {
            sleep_unless_woken(shm, seen, due - now);
            continue;
        }
        if (claim_run(shm, due, now, s.interval) && s.interval)
            il_reconcile_run_within(shm, IL_RECONCILE_THREAD_DEADLINE_MS);
    }
    pid_t self = arg.owner;
    atomic_compare_exchange_strong_explicit(&shm->hdr->rec_owner, &self, 0, memory_order_relaxed,
                                            memory_order_relaxed);
    atomic_store_explicit(&il_rec_thread_pid, 0, memory_order_relaxed);
    return NULL;
}

/* Waits, bounded, until the new thread has set running. */
static bool wait_running(_Atomic uint32_t *running)
{
    uint64_t deadline = clock_ms(CLOCK_MONOTONIC) + IL_FORKGATE_WAIT_MS;
    while (!atomic_load_explicit(running, memory_order_acquire)) {
        uint64_t now = clock_ms(CLOCK_MONOTONIC);
        if (now >= deadline)
            return false;
        struct timespec ts = {(time_t)((deadline - now) / 1000),
                              (long)((deadline - now) % 1000) * 1000000};
        il_sys(SYS_futex, running, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
    }
    return true;
}

/* Starts this process's thread. Returns 0 or -errno (no thread then).
 *
 * From pthread_create until the thread runs its first instruction, glibc
 * lists it as not yet started; a child cloned in that window (a raw clone
 * system call, which skips glibc's fork bookkeeping) inherits the list,
 * and its setuid/setgroups then wait for ever for that thread. So the
 * creating call (the host's accept) returns only once the thread runs,
 * and forks in other threads wait for it (forkgate.h); both bounded. */
static int start_thread(struct il_shm *shm, pid_t self)
{
    static struct thread_arg arg; /* read by the thread before anything else */
    static struct il_log_limit slow_log;
    arg.shm = shm;
    arg.owner = self;
    atomic_store_explicit(&arg.running, 0, memory_order_relaxed);
    atomic_store_explicit(&shm->hdr->rec_owner, self, memory_order_relaxed);
    atomic_store_explicit(&il_rec_thread_pid, self, memory_order_relaxed);

    pthread_attr_t attr;
    sigset_t all, old;
    pthread_t thread;
    int err = pthread_attr_init(&attr);
    if (err)
        goto failed;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    /* The thread inherits this mask: no signal of the host is ever
     * delivered to it. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    il_forkgate_enter();
    err = pthread_create(&thread, &attr, reconciler_main, &arg);
    bool running = err == 0 && wait_running(&arg.running);
    il_forkgate_leave();
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err)
        goto failed;
    if (!running)
        il_log_limited(&slow_log, 3600, LOG_WARNING,
                       "reconcile: its thread did not start within %d ms; going on (a child "
                       "cloned before it starts cannot change its user id)",
                       IL_FORKGATE_WAIT_MS);
    return 0;
failed:
    atomic_store_explicit(&il_rec_thread_pid, 0, memory_order_relaxed);
    atomic_compare_exchange_strong_explicit(&shm->hdr->rec_owner, &self, 0, memory_order_relaxed,
                                            memory_order_relaxed);
    return -err;
}

static __attribute__((noinline)) void tick_due(struct il_shm *shm, pid_t self, uint64_t due,
                                               uint64_t now)
{
    /* An owner's thread takes its due time within milliseconds; only one
     * this late has stopped (killed, stopped, exec'd). */
    if (atomic_load_explicit(&shm->hdr->rec_owner, memory_order_relaxed) != 0 &&
        now < due + IL_RECONCILER_GRACE_MS)
        return;
    struct schedule s = schedule_of(shm);
    if (!claim_run(shm, due, now, s.interval) || !s.interval)
        return;
    if (s.thread) {
        int err = start_thread(shm, self);
        if (err == 0)
            return;
        il_log_limited(&thread_log, 3600, LOG_WARNING,
                       "reconcile: cannot start its thread: %s; reconciling inline in accept",
                       strerrordesc_np(-err));
    }
    il_reconcile_run(shm);
}

/* The schedule as of one policy generation, kept per process so that the
 * accept path reads no policy: [63:32] the generation's low 32 bits,
 * [31:1] the interval (seconds, at most 2^31 - 1), [0] thread. 0: none
 * kept yet. Threads that refresh it at once store the same value, or one
 * from a newer policy (the generation is read before the policy), which
 * the next generation change refreshes again. */
static IL_HOT_DATA _Atomic uint64_t tick_schedule;
IL_HOT_DATA _Atomic uint64_t il_rec_off_generation;

/* The latest due time this process has read from the header. The due time
 * only ever moves later (claim_run moves it from a time already reached
 * to one after it), and a running image never changes segment, so until
 * the clock reaches this value no run can be due and the accept need not
 * read the header, a line and page of its own. Threads that store at once
 * may leave an older value: the next accept then reads the header again. */
static IL_HOT_DATA _Atomic uint64_t seen_due;

IL_HOT_DATA _Atomic uint32_t il_rec_tick_skip;
/* The clock as the tick last read it, for IL_TICK_BUSY_MS. */
static IL_HOT_DATA _Atomic uint64_t last_tick_ms;

static __attribute__((noinline)) uint64_t refresh_schedule(struct il_shm *shm,
                                                           uint64_t generation)
{
    struct schedule s = schedule_of(shm);
    uint32_t interval = s.interval < 0x7fffffffu ? s.interval : 0x7fffffffu;
    uint64_t packed = (uint64_t)(uint32_t)generation << 32 | (uint64_t)interval << 1 | s.thread;
    atomic_store_explicit(&tick_schedule, packed, memory_order_relaxed);
    /* Read before the policy, as above: at worst it marks off a generation
     * whose own policy had reconciliation on, which only accepts that read
     * that superseded generation can match (the same as the schedule). */
    if (interval == 0)
        atomic_store_explicit(&il_rec_off_generation, generation, memory_order_relaxed);
    return packed;
}

/* The clock has reached the latest due time this process saw: read the
 * header's, and take the run if it is due. Out of line, so that the
 * common tick keeps no frame for it. */
static __attribute__((noinline)) void tick_look(struct il_shm *shm, pid_t self, uint64_t now)
{
    uint64_t due = atomic_load_explicit(&shm->hdr->rec_next_run, memory_order_relaxed);
    if (now < due) {
        atomic_store_explicit(&seen_due, due, memory_order_relaxed);
        return;
    }
    int saved_errno = errno;
    tick_due(shm, self, due, now);
    errno = saved_errno;
}

void il_reconcile_tick_slow(struct il_shm *shm, pid_t self, uint64_t now_ms, uint64_t generation)
{
    uint64_t schedule = atomic_load_explicit(&tick_schedule, memory_order_relaxed);
    if (__builtin_expect(schedule == 0 || (uint32_t)(schedule >> 32) != (uint32_t)generation, 0))
        schedule = refresh_schedule(shm, generation);
    /* Reconciliation off: no run can be due. A reload that turns it on
     * bumps the generation, and the first accept after it finds the old
     * due time past. */
    if (!(schedule & 0xfffffffeULL))
        return;
    /* The other accepts look at the clock: where another process's
     * thread owns the runs, to see that it is alive; inline, because a run
     * may be due. Every accept of a quiet process does (a takeover must
     * not wait for a number of accepts that may take hours to come), one
     * in IL_TICK_SKIP + 1 of a busy one (reconciler.h). */
    uint64_t now = now_ms ? now_ms : clock_ms(CLOCK_MONOTONIC_COARSE);
    /* Unsigned: where another thread has just stored a later reading than
     * this one, the difference wraps to a huge value and nothing is
     * skipped, which is always safe. */
    if (now - atomic_exchange_explicit(&last_tick_ms, now, memory_order_relaxed) < IL_TICK_BUSY_MS)
        atomic_store_explicit(&il_rec_tick_skip, IL_TICK_SKIP, memory_order_relaxed);
    if (__builtin_expect(now >= atomic_load_explicit(&seen_due, memory_order_relaxed), 0))
        tick_look(shm, self, now);
}
