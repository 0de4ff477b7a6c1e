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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "fdmap.h"
#include "inherit.h"
#include "limiter.h"
#include "real.h"

#define IL_EXPORT __attribute__((visibility("default")))

#define IL_MAX_REFUSALS 64 /* refusals in one accept call, then EAGAIN */

/* Runs the real accept; with a peer buffer of our own when the caller
 * passed none, so the limiter always learns the peer. */
static int accept_once(int lfd, struct sockaddr *addr, socklen_t *addrlen, int flags, bool is4,
                       struct sockaddr_storage *own, socklen_t *own_len)
{
    if (!addr) {
        *own_len = sizeof *own;
        addr = (struct sockaddr *)own;
        addrlen = own_len;
    }
    return is4 ? IL_REAL(accept4)(lfd, addr, addrlen, flags) : IL_REAL(accept)(lfd, addr, addrlen);
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
 * IPLIMIT_BLOCKING=wait on a blocking listener: no bound, no poll. */
static int il_accept(int lfd, struct sockaddr *addr, socklen_t *addrlen, int flags, bool is4)
{
    if (!il_active() || (addr && !addrlen))
        return is4 ? IL_REAL(accept4)(lfd, addr, addrlen, flags)
                   : IL_REAL(accept)(lfd, addr, addrlen);
    int saved_errno = errno;
    socklen_t room = addr ? *addrlen : 0;
    unsigned refused = 0;
    for (;;) {
        struct sockaddr_storage own;
        socklen_t own_len = 0;
        if (addr)
            *addrlen = room;
        int cfd = accept_once(lfd, addr, addrlen, flags, is4, &own, &own_len);
        if (cfd < 0)
            return cfd;
        socklen_t got = addr ? *addrlen : own_len;
        const struct sockaddr *peer = peer_of(cfd, addr, got, room, &own, &own_len);
        socklen_t peer_len = peer == (struct sockaddr *)&own ? own_len : got;
        struct il_rejection_mode mode = {.blocks = false, .wait = false};
        if (il_limiter_admit(lfd, cfd, peer, peer_len, &mode) == IL_PASS) {
            errno = saved_errno;
            return cfd;
        }
        if (mode.wait)
            continue;
        if (++refused >= IL_MAX_REFUSALS || (mode.blocks && !queued(lfd))) {
            if (addr)
                *addrlen = room;
            errno = EAGAIN;
            return -1;
        }
    }
}

IL_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    return il_accept(fd, addr, addrlen, 0, false);
}

IL_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    return il_accept(fd, addr, addrlen, flags, true);
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

static __attribute__((noinline)) int close_known(int fd)
{
    uint64_t entry = il_fdmap_swap(fd, 0);
    return release_after_close(entry, IL_REAL(close)(fd));
}

/* close() runs for every fd the host ever closes: one bounds check and one
 * load decide, then a tail call; everything else is out of line. */
IL_EXPORT int close(int fd)
{
    if (__builtin_expect(il_fdmap_get(fd) != 0, 0))
        return close_known(fd);
    return il_real_close(fd);
}

IL_EXPORT int fclose(FILE *stream)
{
    int fd = stream ? fileno(stream) : -1;
    if (__builtin_expect(il_fdmap_get(fd) == 0, 1))
        return IL_REAL(fclose)(stream);
    uint64_t entry = il_fdmap_swap(fd, 0);
    return release_after_close(entry, IL_REAL(fclose)(stream));
}

static void release_range(unsigned first, unsigned last)
{
    int high = il_fdmap_high();
    if (high < 0 || first > (unsigned)high)
        return;
    if (last > (unsigned)high)
        last = (unsigned)high;
    for (unsigned fd = first; fd <= last; fd++)
        if (il_fdmap_get((int)fd))
            il_limiter_release(il_fdmap_swap((int)fd, 0));
}

/* The range is released before the real call (entries first, as for
 * close); close_range cannot fail once its arguments are valid, and
 * invalid arguments are passed through untouched. */
IL_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
    int (*real)(unsigned, unsigned, int) = IL_REAL(close_range);
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    int known = CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC;
    if (first <= last && !(flags & ~known) && !(flags & CLOSE_RANGE_CLOEXEC)) {
        int saved_errno = errno;
        release_range(first, last);
        errno = saved_errno;
    }
    return real(first, last, flags);
}

IL_EXPORT void closefrom(int lowfd)
{
    void (*real)(int) = IL_REAL(closefrom);
    if (lowfd >= 0) {
        int saved_errno = errno;
        release_range((unsigned)lowfd, ~0u);
        errno = saved_errno;
    }
    if (real)
        real(lowfd);
}

static int after_dup(int oldfd, int result)
{
    if (result >= 0 && result != oldfd && il_active()) {
        int saved_errno = errno;
        il_limiter_copy(oldfd, result);
        errno = saved_errno;
    }
    return result;
}

IL_EXPORT int dup(int oldfd)
{
    return after_dup(oldfd, IL_REAL(dup)(oldfd));
}

IL_EXPORT int dup2(int oldfd, int newfd)
{
    return after_dup(oldfd, IL_REAL(dup2)(oldfd, newfd));
}

IL_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    return after_dup(oldfd, IL_REAL(dup3)(oldfd, newfd, flags));
}

/* fcntl's third argument is an int, a long or a pointer depending on cmd;
 * like libc, pass it on as a pointer-sized value. */
static int il_fcntl(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
    int result = real(fd, cmd, arg);
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
        return after_dup(fd, result);
    return result;
}

IL_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return il_fcntl(IL_REAL(fcntl), fd, cmd, arg);
}

IL_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int (*real)(int, int, ...) = IL_REAL(fcntl64);
    return il_fcntl(real ? real : IL_REAL(fcntl), fd, cmd, arg);
}

/* The child inherits every counted fd, so each gets one more reference
 * before the fork; a failed fork takes them back. The atfork handler in
 * init.c does the same for forks the wrapper cannot see (daemon(), ...). */
IL_EXPORT pid_t fork(void)
{
    bool track = il_active();
    if (track) {
        il_in_fork_wrapper = 1;
        il_limiter_fork_refs(false);
    }
    pid_t pid = IL_REAL(fork)();
    if (track) {
        int saved_errno = errno;
        if (pid < 0)
            il_limiter_fork_refs(true);
        else if (pid == 0)
            __atomic_store_n(&il_state.pid, getpid(), __ATOMIC_RELAXED);
        il_in_fork_wrapper = 0;
        errno = saved_errno;
    }
    return pid;
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
    syscall(SYS_exit_group, status);
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
