/* Unit tests for the fork lock (src/lib/forklock.c): exclusion between the
 * fork and the fd changes, and that it never hangs its host: re-entry from
 * a signal handler, a holder that never lets go, the child of a fork. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../src/lib/forklock.h"
#include "tap.h"

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- a fork waits for a shared holder, and shared holders for a fork ---- */

static _Atomic int stage;
static _Atomic int exclusive_held;

static void *forking_thread(void *arg)
{
    (void)arg;
    atomic_store(&stage, 1);
    bool token = il_fork_lock_exclusive();
    atomic_store(&exclusive_held, 1);
    atomic_store(&stage, 2);
    while (atomic_load(&stage) != 3)
        pause_ms(1);
    atomic_store(&exclusive_held, 0);
    il_fork_unlock_exclusive(token);
    return (void *)(uintptr_t)token;
}

static void test_exclusion(void)
{
    bool shared = il_fork_lock_shared();
    tap_ok(shared, "a shared hold with nobody forking");
    pthread_t t;
    pthread_create(&t, NULL, forking_thread, NULL);
    while (atomic_load(&stage) < 1)
        pause_ms(1);
    pause_ms(50); /* give the fork every chance to run ahead */
    tap_ok(!atomic_load(&exclusive_held), "the fork waits while a shared hold lasts");
    il_fork_unlock_shared(shared);
    while (atomic_load(&stage) < 2)
        pause_ms(1);
    tap_ok(atomic_load(&exclusive_held), "the fork goes ahead once the shared hold ends");
    atomic_store(&stage, 3);
    void *ret;
    pthread_join(t, &ret);
    tap_ok((uintptr_t)ret == 1, "the fork held the lock (token)");
}

/* ---- re-entry from a signal handler ---- */

static _Atomic int handler_token = -1;
static _Atomic int fork_done, handler_saw_fork_done = -1;

static void on_usr1(int sig)
{
    (void)sig;
    bool token = il_fork_lock_shared();
    atomic_store(&handler_token, token);
    atomic_store(&handler_saw_fork_done, atomic_load(&fork_done));
    il_fork_unlock_shared(token);
}

static _Atomic int waiter_started;

static void *waiting_fork(void *arg)
{
    (void)arg;
    atomic_store(&waiter_started, 1);
    bool token = il_fork_lock_exclusive();
    il_fork_unlock_exclusive(token);
    atomic_store(&fork_done, 1);
    return NULL;
}

static void test_signal_reentry(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);

    /* A thread holding the lock shared is interrupted by a handler that
     * takes it again while a fork waits: the handler must get it at once
     * (waiting for the fork would wait for itself: the fork waits for this
     * very thread), not after the bound with no lock. */
    bool shared = il_fork_lock_shared();
    pthread_t t;
    pthread_create(&t, NULL, waiting_fork, NULL);
    while (!atomic_load(&waiter_started))
        pause_ms(1);
    pause_ms(50); /* the fork is now waiting for this thread */
    pthread_kill(pthread_self(), SIGUSR1);
    IS_I(atomic_load(&handler_token), 1,
         "a handler re-entering a shared hold while a fork waits gets the lock");
    IS_I(atomic_load(&handler_saw_fork_done), 0,
         "...at once: the fork is still waiting for the interrupted hold");
    il_fork_unlock_shared(shared);
    pthread_join(t, NULL);

    /* The forking thread itself (code run inside its fork) goes through
     * without waiting for itself. */
    bool exclusive = il_fork_lock_exclusive();
    atomic_store(&handler_token, -1);
    pthread_kill(pthread_self(), SIGUSR1);
    IS_I(atomic_load(&handler_token), 0,
         "inside this thread's own fork a shared hold goes through without the lock");
    il_fork_unlock_exclusive(exclusive);
    bool again = il_fork_lock_shared();
    tap_ok(again, "after the fork, shared holds work again");
    il_fork_unlock_shared(again);
}

/* ---- bounded waits ---- */

static _Atomic int holder_go;

static void *stuck_holder(void *arg)
{
    (void)arg;
    bool token = il_fork_lock_shared();
    atomic_store(&holder_go, 1);
    while (atomic_load(&holder_go) != 2)
        pause_ms(5);
    il_fork_unlock_shared(token);
    return NULL;
}

static void *stuck_fork(void *arg)
{
    (void)arg;
    bool token = il_fork_lock_exclusive();
    atomic_store(&holder_go, 1);
    while (atomic_load(&holder_go) != 2)
        pause_ms(5);
    il_fork_unlock_exclusive(token);
    return NULL;
}

static void test_bounded(void)
{
    pthread_t t;
    atomic_store(&holder_go, 0);
    pthread_create(&t, NULL, stuck_holder, NULL);
    while (atomic_load(&holder_go) != 1)
        pause_ms(1);
    bool token = il_fork_lock_exclusive();
    tap_ok(token, "a fork facing a shared holder that never lets go goes ahead after the bound");
    il_fork_unlock_exclusive(token);
    atomic_store(&holder_go, 2);
    pthread_join(t, NULL);

    atomic_store(&holder_go, 0);
    pthread_create(&t, NULL, stuck_fork, NULL);
    while (atomic_load(&holder_go) != 1)
        pause_ms(1);
    bool shared = il_fork_lock_shared();
    tap_ok(!shared, "a close facing a fork that never ends goes ahead after the bound, unlocked");
    il_fork_unlock_shared(shared);
    atomic_store(&holder_go, 2);
    pthread_join(t, NULL);
    shared = il_fork_lock_shared();
    tap_ok(shared, "once the fork ended, shared holds take the lock again");
    il_fork_unlock_shared(shared);
}

/* ---- the child of a fork ---- */

static void *blocked_closer(void *arg)
{
    (void)arg;
    atomic_store(&holder_go, 1);
    bool token = il_fork_lock_shared(); /* waits for the fork below */
    il_fork_unlock_shared(token);
    return NULL;
}

static void test_child(void)
{
    /* As a real fork: this thread holds the lock exclusive across it while
     * another thread waits to close; the child has only this thread. */
    bool exclusive = il_fork_lock_exclusive();
    pthread_t t;
    atomic_store(&holder_go, 0);
    pthread_create(&t, NULL, blocked_closer, NULL);
    while (atomic_load(&holder_go) != 1)
        pause_ms(1);
    pid_t pid = fork();
    if (pid == 0) {
        il_fork_lock_child();
        alarm(10);
        bool shared = il_fork_lock_shared();
        il_fork_unlock_shared(shared);
        bool ex = il_fork_lock_exclusive();
        il_fork_unlock_exclusive(ex);
        _exit(shared && ex ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "in the child of a fork the lock is free: a close there takes it shared");
    il_fork_unlock_exclusive(exclusive);
    pthread_join(t, NULL);
}

int main(void)
{
    alarm(60);
    test_exclusion();
    test_signal_reentry();
    test_bounded();
    test_child();
    return tap_done();
}
