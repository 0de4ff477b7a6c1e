/* The interposed libc functions: the library's only exported symbols.
 *
 * Each wrapper calls the real function and tells the limiter what changed.
 * Return values and errno are exactly the real call's: the limiter never
 * changes errno on success, and on failure the real errno is what the
 * caller sees.
 *
 * The fd-reuse rule: an fd's map entry is cleared BEFORE the real close.
 * The kernel cannot hand the number out again until the close, so an
 * accept racing in another thread can never have its fresh entry wiped. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include "closerange.h"
#include "fdmap.h"
#include "forkgate.h"
#include "forklock.h"
#include "hot.h"
#include "inherit.h"
#include "interpose.h"
#include "limiter.h"
#include "ownfd.h"
#include "real.h"

#define IL_EXPORT __attribute__((visibility("default")))

#define IL_MAX_REFUSALS 64 /* refusals in one accept call, then EAGAIN */

static int libc_accept(int lfd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    (void)flags;
    return IL_REAL(accept)(lfd, addr, addrlen);
}

static int libc_accept4(int lfd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    return IL_REAL(accept4)(lfd, addr, addrlen, flags);
}

/* Runs the real accept; with a peer buffer of our own when the caller
 * passed none, so the limiter always learns the peer. */
static int accept_once(int lfd, struct sockaddr *addr, socklen_t *addrlen, int flags,
                       il_accept_fn *real, struct sockaddr_storage *own, socklen_t *own_len)
{
    if (!addr) {
        *own_len = sizeof *own;
        addr = (struct sockaddr *)own;
        addrlen = own_len;
    }
    return real(lfd, addr, addrlen, flags);
}

/* The peer of cfd: from the caller's buffer if the kernel filled it whole,
 * else asked again (the caller's buffer was too small or absent). */
static const struct sockaddr *peer_of(int cfd, struct sockaddr *addr, socklen_t got,
                                      socklen_t room, struct sockaddr_storage *own,
                                      socklen_t *own_len)
{
    if (addr && got <= room)
        return addr;
    if (!addr)
        return (struct sockaddr *)own;
    *own_len = sizeof *own;
    if (getpeername(cfd, (struct sockaddr *)own, own_len) != 0)
        *own_len = 0;
    return (struct sockaddr *)own;
}

/* Whether a connection is queued on lfd now (never waits). */
static bool queued(int lfd)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* After a rejection, accept goes on to the next queued connection, so that
 * a refused peer never costs the application a failed accept while a good
 * one waits (servers that pause after a failed accept: PostgreSQL). It
 * gives up after IL_MAX_REFUSALS refusals in one call, so that a flood
 * cannot keep one call busy; then, or when the queue is empty, -1/EAGAIN.
 * On a blocking listener the queue is looked at first (poll, no timeout):
 * a sole acceptor (Kamailio's tcp main) never blocks. Where several
 * processes accept on one listener, another may take the connection
 * between the poll and the accept: then this accept waits for the next
 * connection, as the caller of a blocking accept asked (docs/design.md).
 * IPLIMIT_BLOCKING=wait on a blocking listener: no bound, no poll.
 *
 * The general path, for cfd just accepted (the straight path declined it):
 * errno is the caller's still (a successful accept leaves it), saved here. */
static __attribute__((noinline)) int accept_general(int lfd, struct sockaddr *addr,
                                                    socklen_t *addrlen, int flags,
                                                    il_accept_fn *real, socklen_t room, int cfd,
                                                    struct sockaddr_storage *own,
                                                    socklen_t own_len)
{
    int saved_errno = errno;
    unsigned refused = 0;
    for (;;) {
        socklen_t got = addr ? *addrlen : own_len;
        const struct sockaddr *peer = peer_of(cfd, addr, got, room, own, &own_len);
        socklen_t peer_len = peer == (struct sockaddr *)own ? own_len : got;
        struct il_rejection_mode mode = {.blocks = false, .wait = false};
        if (il_limiter_admit(lfd, cfd, peer, peer_len, &mode) == IL_PASS) {
            errno = saved_errno;
            return cfd;
        }
        if (!mode.wait && (++refused >= IL_MAX_REFUSALS || (mode.blocks && !queued(lfd)))) {
            if (addr)
                *addrlen = room;
            errno = EAGAIN;
            return -1;
        }
        own_len = 0;
        if (addr)
            *addrlen = room;
        cfd = accept_once(lfd, addr, addrlen, flags, real, own, &own_len);
        if (cfd < 0)
            return cfd;
    }
}

/* The straight path: the real accept into the caller's buffer (or ours),
 * then il_limiter_admit_fast, which changes no errno; whatever it declines
 * goes on in accept_general. */
int il_accept(int lfd, struct sockaddr *addr, socklen_t *addrlen, int flags, il_accept_fn *real)
{
    if (!il_active() || (addr && !addrlen))
        return real(lfd, addr, addrlen, flags);
    socklen_t room = addr ? *addrlen : 0;
    struct sockaddr_storage own;
    socklen_t own_len = 0;
    int cfd = accept_once(lfd, addr, addrlen, flags, real, &own, &own_len);
    if (cfd < 0)
        return cfd;
    /* The peer is whole in the buffer (else accept_general asks again). */
    const struct sockaddr *peer = addr ? addr : (struct sockaddr *)&own;
    socklen_t got = addr ? *addrlen : own_len;
    if (__builtin_expect((!addr || got <= room) && il_limiter_admit_fast(lfd, cfd, peer, got), 1))
        return cfd;
    return accept_general(lfd, addr, addrlen, flags, real, room, cfd, &own, own_len);
}

/* accept_general for a connection the straight path of accept/accept4
 * declined; out of line, so that the wrappers keep nothing for it but
 * what they already hold. The straight path declines every connection of
 * an inactive limiter (its listeners have no entry: only the general
 * path, which runs when active, classifies them), so the activity is
 * tested here, not before every accept. */
static __attribute__((noinline, cold)) int accept_declined(int lfd, struct sockaddr *addr,
                                                           socklen_t *addrlen, int flags,
                                                           il_accept_fn *real, socklen_t room,
                                                           int cfd)
{
    if (!il_active())
        return cfd;
    struct sockaddr_storage own;
    return accept_general(lfd, addr, addrlen, flags, real, room, cfd, &own, 0);
}

/* accept and accept4 with a peer buffer (the common case) call libc
 * directly: il_real's pointers for them are never NULL (real.c), so
 * neither the thunk nor a NULL test is needed. The rest is il_accept's.
 * Inlined into each wrapper with four constant, so each calls its own
 * libc function directly. */
static inline __attribute__((always_inline)) int
accept_straight(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags, bool four)
{
    il_accept_fn *general = four ? libc_accept4 : libc_accept;
    if (__builtin_expect(!addr || !addrlen, 0))
        return il_accept(fd, addr, addrlen, flags, general);
    socklen_t room = *addrlen;
    int cfd = four ? __atomic_load_n(&il_real.accept4, __ATOMIC_RELAXED)(fd, addr, addrlen, flags)
                   : __atomic_load_n(&il_real.accept, __ATOMIC_RELAXED)(fd, addr, addrlen);
    if (cfd < 0)
        return cfd;
    socklen_t got = *addrlen;
    if (__builtin_expect(got <= room && il_limiter_admit_fast(fd, cfd, addr, got), 1))
        return cfd;
    return accept_declined(fd, addr, addrlen, flags, general, room, cfd);
}

IL_EXPORT IL_HOT int accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    return accept_straight(fd, addr, addrlen, 0, false);
}

IL_EXPORT IL_HOT int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    return accept_straight(fd, addr, addrlen, flags, true);
}

/* After the real close of an fd whose entry was cleared first: release
 * what it referred to, keeping the close's result and errno. */
static int release_after_close(uint64_t entry, int result)
{
    int saved_errno = errno;
    il_limiter_release(entry);
    errno = saved_errno;
    return result;
}

/* close and fclose of a counted fd run under the fork lock (forklock.h):
 * entry cleared and real call made, both before or both after any fork in
 * another thread. Both are cancellation points; a cancellation inside
 * would leave the lock held, so it is held off until the lock is released
 * and the count updated, then acted on: the call behaves as if the request
 * came just after it. */
static int hold_off_cancel(void)
{
    int state = PTHREAD_CANCEL_DISABLE;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
    return state;
}

static void allow_cancel(int state)
{
    if (state == PTHREAD_CANCEL_DISABLE)
        return;
    int saved_errno = errno;
    pthread_setcancelstate(state, NULL);
    pthread_testcancel();
    errno = saved_errno;
}

/* The close system call: -errno on failure. Inline where the ABI is
 * known (not a cancellation point either way). */
static inline long sys_close(int fd)
{
#if defined(__x86_64__)
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "0"((long)SYS_close), "D"((long)fd)
                     : "rcx", "r11", "memory");
    return ret;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = SYS_close;
    register long x0 __asm__("x0") = fd;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8) : "memory", "cc");
    return x0;
#else
    return il_sys(SYS_close, fd) == 0 ? 0 : -errno;
#endif
}

/* The common case of il_close_known: the next close is libc's, so the
 * same system call is made here without libc's cancellation point, and
 * nothing can unwind the thread while it holds the fork lock with the
 * entry cleared. A cancellation request is acted on after the release, as
 * if it came just after the call: what hold_off_cancel/allow_cancel do,
 * for one pthread_testcancel instead of two pthread_setcancelstate (none
 * when no pthread_cancel was ever made: close_counted).
 * in_map: fd is known to be inside the fd map (close() read its entry;
 * the map's length never changes once set), so the take tests no bound. */
static inline __attribute__((always_inline)) long
close_locked(int fd, bool in_map, bool token, uint64_t *entry)
{
    *entry = in_map ? atomic_exchange_explicit(il_fdmap_slot(fd), 0, memory_order_acq_rel)
                    : il_fdmap_take(fd);
    long result = sys_close(fd);
    il_fork_unlock_shared(token);
    return result;
}

/* A failed close's errno, out of line: the straight close then makes no
 * call, and keeps no register across one. */
static __attribute__((noinline, cold)) int close_failed(long result)
{
    errno = (int)-result;
    return -1;
}

/* test_cancel false: no pthread_cancel had been made in the process when
 * the close began (close_counted_way; interpose_cancel.c argues why that
 * test stands for this one). */
static inline __attribute__((always_inline)) int close_finish(uint64_t entry, long result,
                                                             bool test_cancel)
{
    /* Neither the release (atomics only) nor a test that finds no
     * cancellation pending changes errno: it stays the caller's. */
    il_limiter_release(entry);
    if (test_cancel)
        pthread_testcancel();
    if (__builtin_expect(result < 0, 0))
        return close_failed(result);
    return 0;
}

/* A fork under way, or a hold in this thread already: the fork lock's
 * slow path, out of line so that the common case keeps no frame for it. */
static __attribute__((noinline, cold)) int close_uncancelled_slow(int fd)
{
    uint64_t entry;
    long result = close_locked(fd, false, il_fork_lock_shared_slow(), &entry);
    return close_finish(entry, result, true);
}

/* straight: close_counted found no cancellation request ever made (and
 * fd inside the map); otherwise the test is made after the release. */
static inline __attribute__((always_inline)) int close_uncancelled_in(int fd, bool straight)
{
    if (__builtin_expect(!il_fork_try_shared(), 0))
        return close_uncancelled_slow(fd);
    uint64_t entry;
    long result = close_locked(fd, straight, true, &entry);
    return close_finish(entry, result, !straight);
}

static int close_uncancelled(int fd)
{
    return close_uncancelled_in(fd, false);
}

int il_close_known(int fd, int (*real_close)(int))
{
    if (il_fdmap_get(fd) == IL_FD_OWN) {
        /* One of the library's fds: the host never opened it, so for the
         * host it is closed already, and it stays open for us (in a vfork
         * child too: it closes at exec). */
        int saved_errno = errno;
        bool ours = il_own_fd_is(fd);
        errno = saved_errno;
        if (ours)
            return 0;
    }
    /* A vfork child's close (interpose_vfork.c) takes its own copy of fd:
     * the parent's entry and count stay. */
    if (il_vfork_child())
        return real_close(fd);
    if (real_close == il_real.close && __atomic_load_n(&il_real_close_is_libc, __ATOMIC_RELAXED))
        return close_uncancelled(fd);
    int cancel_state = hold_off_cancel();
    bool token = il_fork_lock_shared();
    uint64_t entry = il_fdmap_swap(fd, 0);
    int result = real_close(fd);
    il_fork_unlock_shared(token);
    result = release_after_close(entry, result);
    allow_cancel(cancel_state);
    return result;
}

/* close() found an entry for fd that is not a counted connection's. */
static __attribute__((noinline)) int close_known(int fd)
{
    return il_close_known(fd, IL_REAL(close));
}

/* close() found a counted connection's entry for fd, with libc's close
 * next and no pthread_cancel ever made in the process (close_counted_way).
 * Such an fd is never one of the library's own (IL_FD_OWN is a value of
 * its own), so it goes straight to the uncancelled close, and no request
 * can be pending for it to act on after the release. Flattened: the
 * release is inlined too (the slow paths are noinline, out of it). */
static IL_HOT __attribute__((noinline, flatten)) int close_counted(int fd)
{
    return close_uncancelled_in(fd, true);
}

/* A counted connection's close once pthread_cancel was called: the way of
 * the other known fds, which tests for a pending request after the
 * release. A function of its own: its address in close_counted_way is
 * that state. */
static __attribute__((noinline)) int close_counted_cancellable(int fd)
{
    return close_known(fd);
}

/* The ways once a vfork was made in the process (il_close_way_vforked):
 * each asks first whether this is a vfork child, whose close is
 * il_close_known's case (close_known). Functions of their own, as above. */
static __attribute__((noinline)) int close_known_vforked(int fd)
{
    return close_known(fd);
}

static __attribute__((noinline)) int close_counted_vforked(int fd)
{
    if (il_vfork_child())
        return close_known(fd);
    return close_counted(fd);
}

/* Where close() sends a counted connection; the state is this one word.
 * Resolution (il_real_resolve, init.c) moves it between the general way
 * (close_known, until libc's close is known to be next) and the straight
 * one (close_counted); a vfork moves either to its checking twin
 * (_vforked); the first pthread_cancel moves any of them to
 * close_counted_cancellable. Every move but that last is a
 * compare-and-swap from one named state to its partner, so none undoes
 * another made meanwhile (a resolution racing a pthread_cancel from a
 * thread another library's constructor started, or a vfork in another
 * thread): the checking states {known_vforked, counted_vforked,
 * cancellable} are closed under every move, so a vfork child never finds
 * the straight way once its parent's wrapper has made the move, and
 * pthread_cancel's store is never overwritten. close() loads the word
 * where it tested a flag before: the argument that no cancellation
 * request it must act on is missed is interpose_cancel.c's. */
static IL_HOT_DATA int (*close_counted_way)(int) = close_known;

typedef int (*close_way)(int);

/* A move: the states it changes, each to its partner; any other state it
 * leaves as it is. */
struct way_move {
    close_way from[2], to[2];
};

static void move_close_way(const struct way_move *move)
{
    close_way from = __atomic_load_n(&close_counted_way, __ATOMIC_RELAXED);
    for (;;) {
        close_way to = from == move->from[0] ? move->to[0]
                     : from == move->from[1] ? move->to[1] : NULL;
        if (!to || __atomic_compare_exchange_n(&close_counted_way, &from, to, false,
                                               __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            return;
    }
}

void il_close_way_resolved(bool libc_next)
{
    static const struct way_move to_straight = {{close_known, close_known_vforked},
                                                {close_counted, close_counted_vforked}};
    static const struct way_move to_general = {{close_counted, close_counted_vforked},
                                               {close_known, close_known_vforked}};
    move_close_way(libc_next ? &to_straight : &to_general);
}

/* Called by the vfork wrappers before the child exists (interpose_vfork.c,
 * interpose_clone.c): the child runs on after this thread's own move, so
 * its closes see it. Kept by this name: the vfork assembly calls it. A
 * process that has vforked once tests the mark on every counted close
 * from then on (a TLS load and a test), not the closes of other fds. */
__attribute__((used)) void il_close_way_vforked(void)
{
    static const struct way_move to_checking = {{close_known, close_counted},
                                                {close_known_vforked, close_counted_vforked}};
    move_close_way(&to_checking);
}

void il_close_way_cancellable(void)
{
    __atomic_store_n(&close_counted_way, close_counted_cancellable, __ATOMIC_SEQ_CST);
}

/* close() runs for every fd the host ever closes: one bounds check and one
 * load decide, then a tail call; everything else is out of line. */
IL_EXPORT IL_HOT int close(int fd)
{
    uint64_t entry = il_fdmap_get(fd);
    if (__builtin_expect(entry == 0, 1))
        return il_real_close(fd);
    if (__builtin_expect(il_fd_is_conn(entry), 1))
        return __atomic_load_n(&close_counted_way, __ATOMIC_RELAXED)(fd);
    return close_known(fd);
}

IL_EXPORT int fclose(FILE *stream)
{
    int fd = stream ? fileno(stream) : -1;
    if (__builtin_expect(il_fdmap_get(fd) == 0, 1) || il_vfork_child())
        return IL_REAL(fclose)(stream); /* a vfork child's: its copy only */
    int cancel_state = hold_off_cancel();
    bool token = il_fork_lock_shared();
    uint64_t entry = il_fdmap_swap(fd, 0);
    int result = IL_REAL(fclose)(stream);
    il_fork_unlock_shared(token);
    result = release_after_close(entry, result);
    allow_cancel(cancel_state);
    return result;
}

/* In a vfork child, nothing: the range is the child's copies. */
static void release_range(unsigned first, unsigned last)
{
    int high = il_fdmap_high();
    if (high < 0 || first > (unsigned)high || il_vfork_child())
        return;
    if (last > (unsigned)high)
        last = (unsigned)high;
    for (unsigned fd = first; fd <= last; fd++) {
        uint64_t entry = il_fdmap_get((int)fd);
        if (entry && entry != IL_FD_OWN) /* own fds are skipped (closerange.h) */
            il_limiter_release(il_fdmap_swap((int)fd, 0));
    }
}

/* The range is released before the real call (entries first, as for
 * close), both under the fork lock (as close_known); close_range cannot
 * fail once its arguments are valid, and invalid arguments are passed
 * through untouched.
 * CLOSE_RANGE_CLOEXEC closes nothing now: counted fds are released at exec
 * (inherit.h), and the library's own fds close on exec already, so the
 * call goes through whole. Without it (CLOSE_RANGE_UNSHARE or not), the
 * range is split around the library's own fds. */
int il_close_range(unsigned first, unsigned last, int flags,
                   int (*closer)(unsigned, unsigned, int))
{
    int known = CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC;
    if (first > last || (flags & ~known) || (flags & CLOSE_RANGE_CLOEXEC))
        return closer(first, last, flags);
    bool token = il_fork_lock_shared();
    int saved_errno = errno;
    release_range(first, last);
    errno = saved_errno;
    int result = il_close_range_split(first, last, flags, closer);
    il_fork_unlock_shared(token);
    return result;
}

IL_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
    int (*real)(unsigned, unsigned, int) = IL_REAL(close_range);
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return il_close_range(first, last, flags, real);
}

IL_EXPORT void closefrom(int lowfd)
{
    if (lowfd < 0) {
        if (IL_REAL(closefrom))
            IL_REAL(closefrom)(lowfd);
        return;
    }
    bool token = il_fork_lock_shared(); /* as close_known */
    int saved_errno = errno;
    release_range((unsigned)lowfd, ~0u);
    errno = saved_errno;
    il_closefrom_split(lowfd);
    il_fork_unlock_shared(token);
}

static int after_dup(int oldfd, int result)
{
    if (result >= 0 && result != oldfd && il_active() && !il_vfork_child()) {
        int saved_errno = errno;
        il_limiter_copy(oldfd, result);
        errno = saved_errno;
    }
    return result;
}

/* A dup of or onto a known fd runs under the fork lock, real call and map
 * update together (as close_known); other dups take no lock. newfd -1:
 * the kernel chooses (a stale entry there is only forgotten). dup2/dup3
 * onto one of the library's fds first move ours away (ownfd.h), then the
 * host's call takes the number. */
struct il_dup il_dup_begin(int oldfd, int newfd)
{
    struct il_dup d = {false, false};
    if (il_vfork_child())
        return d; /* the child's table only: nothing recorded (after_dup) */
    if (newfd >= 0 && oldfd != newfd && il_fdmap_get(newfd) == IL_FD_OWN) {
        int saved_errno = errno;
        d.moved = il_own_fd_evict(newfd) != NULL;
        errno = saved_errno;
    }
    if (il_fdmap_get(oldfd) || (newfd >= 0 && il_fdmap_get(newfd)))
        d.locked = il_fork_lock_shared();
    return d;
}

int il_dup_end(struct il_dup d, int oldfd, int newfd, int result)
{
    if (result < 0 && d.moved) {
        int saved_errno = errno;
        il_own_fd_evict_failed(newfd);
        errno = saved_errno;
    }
    result = after_dup(oldfd, result);
    il_fork_unlock_shared(d.locked);
    return result;
}

IL_EXPORT int dup(int oldfd)
{
    struct il_dup d = il_dup_begin(oldfd, -1);
    return il_dup_end(d, oldfd, -1, IL_REAL(dup)(oldfd));
}

IL_EXPORT int dup2(int oldfd, int newfd)
{
    struct il_dup d = il_dup_begin(oldfd, newfd);
    return il_dup_end(d, oldfd, newfd, IL_REAL(dup2)(oldfd, newfd));
}

IL_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    struct il_dup d = il_dup_begin(oldfd, newfd);
    return il_dup_end(d, oldfd, newfd, IL_REAL(dup3)(oldfd, newfd, flags));
}

/* fcntl's third argument is an int, a long or a pointer depending on cmd;
 * like libc, pass it on as a pointer-sized value. */
static int il_fcntl(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
    if (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC)
        return real(fd, cmd, arg);
    struct il_dup d = il_dup_begin(fd, -1);
    return il_dup_end(d, fd, -1, real(fd, cmd, arg));
}

IL_EXPORT IL_HOT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return il_fcntl(IL_REAL(fcntl), fd, cmd, arg);
}

IL_EXPORT IL_HOT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int (*real)(int, int, ...) = IL_REAL(fcntl64);
    return il_fcntl(real ? real : IL_REAL(fcntl), fd, cmd, arg);
}

/* The child inherits every counted fd, so each gets one more reference
 * before the fork, under the fork lock held exclusive (limiter.h); a
 * failed fork takes them back. For fork() the atfork handlers (init.c) do
 * the prepare step, so that the host's prepare handlers run first; raw
 * clones and libc's clone() run no handlers, so il_fork_prepare does it
 * for them. il_in_fork_wrapper counts the forks in progress in this
 * thread (a fork from a signal handler during a fork nests). */
static bool fork_begin(bool atfork_prepares)
{
    if (!il_active())
        return false;
    il_in_fork_wrapper++;
    if (!atfork_prepares || !__atomic_load_n(&il_atfork_ready, __ATOMIC_ACQUIRE))
        il_limiter_fork_prepare();
    return true;
}

static void fork_end(bool track, long pid)
{
    if (!track)
        return;
    int saved_errno = errno;
    if (pid == 0)
        il_limiter_fork_child();
    else
        il_limiter_fork_parent(pid < 0);
    il_in_fork_wrapper--;
    errno = saved_errno;
}

/* Raw clones also wait for the library's half-made work (forkgate.h),
 * which the atfork handlers do for fork(). */
bool il_fork_prepare(void)
{
    il_forkgate_prepare();
    return fork_begin(false);
}

void il_fork_done(bool track, long pid)
{
    fork_end(track, pid);
    int saved_errno = errno;
    if (pid == 0)
        il_forkgate_child();
    else
        il_forkgate_parent();
    errno = saved_errno;
}

static pid_t fork_tracked(void)
{
    bool track = fork_begin(true);
    pid_t pid = IL_REAL(fork)();
    fork_end(track, pid);
    return pid;
}

IL_EXPORT pid_t fork(void)
{
    return fork_tracked();
}

static __attribute__((noreturn)) void exit_now(void (*real)(int), int status);

/* glibc's daemon() forks and its parent calls _exit inside libc, past the
 * _exit wrapper, so the parent's references would never be dropped. This
 * is glibc's daemon() (2.36) step for step, with the fork, the parent's
 * _exit and the dup2 calls going through the wrappers: setsid errors are
 * returned, chdir errors ignored, /dev/null must be the character device
 * 1:3 (else -1/ENODEV), and the fd of /dev/null is opened without being a
 * cancellation point. */
IL_EXPORT int daemon(int nochdir, int noclose)
{
    if (!il_active() && IL_REAL(daemon))
        return IL_REAL(daemon)(nochdir, noclose);
    pid_t pid = fork_tracked();
    if (pid < 0)
        return -1;
    if (pid > 0)
        exit_now(IL_REAL(exit_now), 0);
    if (setsid() == -1)
        return -1;
    if (!nochdir)
        (void)!chdir("/");
    if (noclose)
        return 0;
    int cancel_state = hold_off_cancel();
    int fd = open("/dev/null", O_RDWR);
    pthread_setcancelstate(cancel_state, NULL);
    struct stat st;
    if (fd == -1)
        return -1;
    if (fstat(fd, &st) != 0) {
        int saved_errno = errno;
        il_real_close(fd);
        errno = saved_errno;
        return -1;
    }
    if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
        il_real_close(fd);
        errno = ENODEV;
        return -1;
    }
    (void)dup2(fd, STDIN_FILENO);
    (void)dup2(fd, STDOUT_FILENO);
    (void)dup2(fd, STDERR_FILENO);
    if (fd > 2)
        (void)close(fd);
    return 0;
}

/* Exec: counted fds that close on exec are released; the others, and the
 * segment, are handed to the new program when it loads the library too
 * (inherit.h), else released. The real exec always gets an environment,
 * so execv/execvp/execl/execlp go to execve/execvpe with it. */
#define EXEC_WITH_INHERITANCE(envp_in, real_call)                                       \
    char *const *env_in_ = (envp_in);                                                \
    char *new_envp_[il_inherit_envp_slots(env_in_)];                                 \
    char segment_var_[48], inherit_var_[IL_INHERIT_LIST_LEN];                        \
    struct il_exec_env env_;                                                         \
    int saved_errno_ = errno;                                                        \
    il_inherit_prepare(env_in_, new_envp_, segment_var_, inherit_var_, &env_);       \
    errno = saved_errno_;                                                            \
    int result_ = (real_call);                                                       \
    saved_errno_ = errno;                                                            \
    il_inherit_exec_failed(&env_);                                                   \
    errno = saved_errno_;                                                            \
    return result_

extern char **environ;

IL_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    EXEC_WITH_INHERITANCE(envp, IL_REAL(execve)(path, argv, env_.envp));
}

IL_EXPORT int execv(const char *path, char *const argv[])
{
    EXEC_WITH_INHERITANCE(environ, IL_REAL(execve)(path, argv, env_.envp));
}

IL_EXPORT int execvp(const char *file, char *const argv[])
{
    EXEC_WITH_INHERITANCE(environ, IL_REAL(execvpe)(file, argv, env_.envp));
}

IL_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    EXEC_WITH_INHERITANCE(envp, IL_REAL(execvpe)(file, argv, env_.envp));
}

IL_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    EXEC_WITH_INHERITANCE(envp, IL_REAL(fexecve)(fd, argv, env_.envp));
}

/* syscall(SYS_execve, path, argv, envp) and
 * syscall(SYS_execveat, dirfd, path, argv, envp, flags). */
long il_exec_raw(long nr, long a, long b, long c, long d, long e)
{
    if (nr == SYS_execve) {
        EXEC_WITH_INHERITANCE((char *const *)c, (int)il_sys(SYS_execve, a, b, env_.envp));
    }
    EXEC_WITH_INHERITANCE((char *const *)d, (int)il_sys(SYS_execveat, a, b, c, env_.envp, e));
}

/* execl, execlp and execle gather their arguments into an argv. */
#define GATHER_ARGS(argv, arg0, ap, then_envp)                          \
    size_t argc_ = 1;                                                   \
    va_start(ap, arg0);                                                 \
    while (va_arg(ap, char *))                                          \
        argc_++;                                                        \
    va_end(ap);                                                         \
    char **argv = __builtin_alloca((argc_ + 1) * sizeof(char *));       \
    va_start(ap, arg0);                                                 \
    argv[0] = (char *)arg0;                                             \
    for (size_t i_ = 1; i_ <= argc_; i_++)                              \
        argv[i_] = va_arg(ap, char *);                                  \
    then_envp;                                                          \
    va_end(ap)

IL_EXPORT int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    GATHER_ARGS(argv, arg, ap, (void)0);
    EXEC_WITH_INHERITANCE(environ, IL_REAL(execve)(path, argv, env_.envp));
}

IL_EXPORT int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    GATHER_ARGS(argv, arg, ap, (void)0);
    EXEC_WITH_INHERITANCE(environ, IL_REAL(execvpe)(file, argv, env_.envp));
}

IL_EXPORT int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    char **envp;
    GATHER_ARGS(argv, arg, ap, envp = va_arg(ap, char **));
    EXEC_WITH_INHERITANCE(envp, IL_REAL(execve)(path, argv, env_.envp));
}

/* _exit skips destructors; exit() is handled by the destructor in init.c. */
static __attribute__((noreturn)) void exit_now(void (*real)(int), int status)
{
    il_limiter_release_all();
    if (real)
        real(status);
    il_sys(SYS_exit_group, status);
    __builtin_unreachable();
}

IL_EXPORT void _exit(int status)
{
    exit_now(IL_REAL(exit_now), status);
}

IL_EXPORT void _Exit(int status)
{
    exit_now(IL_REAL(exit_now2), status);
}
