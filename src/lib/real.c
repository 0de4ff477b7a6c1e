/* Finding the next definition of each wrapped function. */
#include "real.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "hot.h"

/* Until the constructor has resolved libc's syscall(): the system call
 * itself, made here, with all six arguments (the kernel ignores those a
 * call does not take). It must not resolve: dlsym and dlopen may allocate,
 * and an allocator that calls syscall() inside its own initialisation,
 * under its own lock (jemalloc opens /proc/sys/vm/overcommit_memory with
 * syscall(SYS_open) from the first malloc, in an earlier library's
 * constructor), would be entered again and wait for itself for ever. */
static long syscall_unresolved(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
    long d = va_arg(ap, long), e = va_arg(ap, long), f = va_arg(ap, long);
    va_end(ap);
    unsigned long ret;
#if defined(__x86_64__)
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = nr, x0 __asm__("x0") = a, x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c, x3 __asm__("x3") = d, x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory", "cc");
    ret = (unsigned long)x0;
#else
#error "the system call before resolution: x86-64 and aarch64 only"
#endif
    if (ret > -4096UL) {
        errno = (int)-ret;
        return -1;
    }
    return (long)ret;
}

long (*il_syscall_next)(long, ...) = syscall_unresolved;

extern pid_t __vfork(void);
/* Named by interpose_vfork.c's assembly: kept, by this name (used). */
__attribute__((used)) pid_t (*il_vfork_next)(void) = __vfork;
IL_HOT_DATA int il_real_close_is_libc;

/* Until dlsym answers (a wrapper called by another library's constructor),
 * the functions that are never NULL are the system calls themselves. */
static int close_by_syscall(int fd)
{
    return (int)il_sys(SYS_close, fd);
}

static ssize_t sendmsg_by_syscall(int fd, const struct msghdr *msg, int flags)
{
    return il_sys(SYS_sendmsg, fd, msg, flags);
}

static ssize_t recvmsg_by_syscall(int fd, struct msghdr *msg, int flags)
{
    return il_sys(SYS_recvmsg, fd, msg, flags);
}

static ssize_t read_by_syscall(int fd, void *buf, size_t n)
{
    return il_sys(SYS_read, fd, buf, n);
}

static ssize_t readv_by_syscall(int fd, const struct iovec *iov, int n)
{
    return il_sys(SYS_readv, fd, iov, n);
}

static ssize_t recv_by_syscall(int fd, void *buf, size_t n, int flags)
{
    return il_sys(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
}

static ssize_t recvfrom_by_syscall(int fd, void *buf, size_t n, int flags, struct sockaddr *sa,
                                   socklen_t *len)
{
    return il_sys(SYS_recvfrom, fd, buf, n, flags, sa, len);
}

/* The _chk variants check the buffer size first; before dlsym answers the
 * plain call stands in for them. */
static ssize_t read_chk_by_syscall(int fd, void *buf, size_t n, size_t size)
{
    (void)size;
    return read_by_syscall(fd, buf, n);
}

static ssize_t recv_chk_by_syscall(int fd, void *buf, size_t n, size_t size, int flags)
{
    (void)size;
    return recv_by_syscall(fd, buf, n, flags);
}

static ssize_t recvfrom_chk_by_syscall(int fd, void *buf, size_t n, size_t size, int flags,
                                       struct sockaddr *sa, socklen_t *len)
{
    (void)size;
    return recvfrom_by_syscall(fd, buf, n, flags, sa, len);
}

/* accept and accept4 if dlsym finds neither: accept4 is the system call
 * of both on every architecture. */
static int accept_by_syscall(int fd, struct sockaddr *addr, socklen_t *len)
{
    return (int)il_sys(SYS_accept4, fd, addr, len, 0);
}

static int accept4_by_syscall(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    return (int)il_sys(SYS_accept4, fd, addr, len, flags);
}

/* pthread_cancel called before dlsym has answered (by another library's
 * constructor): resolve, then call. There is no stand-in: only libc can
 * cancel a thread, and an error such as ESRCH would tell the caller the
 * thread is gone while it runs on. ENOSYS if dlsym finds none, which
 * cannot happen with glibc (it is libc's, or libpthread's, which the
 * library needs itself). */
static int pthread_cancel_resolving(pthread_t thread)
{
    il_real_resolve();
    int (*next)(pthread_t) = __atomic_load_n(&il_real.pthread_cancel, __ATOMIC_ACQUIRE);
    if (next == pthread_cancel_resolving)
        return ENOSYS;
    return next(thread);
}

/* accept, accept4, close, the message and the read families, and
 * pthread_cancel are never NULL, so their fast paths need no test. */
IL_HOT_DATA struct il_real il_real = {
    .accept = accept_by_syscall,
    .accept4 = accept4_by_syscall,
    .close = close_by_syscall,
    .sendmsg = sendmsg_by_syscall,
    .recvmsg = recvmsg_by_syscall,
    .read = read_by_syscall,
    .readv = readv_by_syscall,
    .recv = recv_by_syscall,
    .recvfrom = recvfrom_by_syscall,
    .read_chk = read_chk_by_syscall,
    .recv_chk = recv_chk_by_syscall,
    .recvfrom_chk = recvfrom_chk_by_syscall,
    .pthread_cancel = pthread_cancel_resolving,
};

/* Replaces a function that is never NULL, only if dlsym found one. */
#define RESOLVE_NONNULL(field, symbol)                                            \
    do {                                                                          \
        void *found_ = dlsym(RTLD_NEXT, symbol);                                  \
        if (found_)                                                               \
            __atomic_store_n((void **)&il_real.field, found_, __ATOMIC_RELEASE);  \
    } while (0)

#define RESOLVE(field, symbol) \
    __atomic_store_n((void **)&il_real.field, dlsym(RTLD_NEXT, symbol), __ATOMIC_RELEASE)

/* path names glibc's libc.so.6 (any directory). */
static bool is_libc(const char *path)
{
    const char *base = strrchr(path, '/');
    return strcmp(base ? base + 1 : path, "libc.so.6") == 0;
}

void il_real_resolve(void)
{
    RESOLVE_NONNULL(accept4, "accept4");
    RESOLVE(close_range, "close_range");
    RESOLVE(closefrom, "closefrom");
    RESOLVE(dup, "dup");
    RESOLVE(dup2, "dup2");
    RESOLVE(dup3, "dup3");
    RESOLVE(fcntl, "fcntl");
    RESOLVE(fcntl64, "fcntl64");
    RESOLVE(fclose, "fclose");
    RESOLVE(fork, "fork");
    RESOLVE(daemon, "daemon");
    RESOLVE(execve, "execve");
    RESOLVE(execv, "execv");
    RESOLVE(execvp, "execvp");
    RESOLVE(execvpe, "execvpe");
    RESOLVE(fexecve, "fexecve");
    RESOLVE(exit_now, "_exit");
    RESOLVE(exit_now2, "_Exit");
    RESOLVE_NONNULL(accept, "accept");
    void *real_vfork = dlsym(RTLD_NEXT, "vfork");
    if (real_vfork)
        __atomic_store_n((void **)&il_vfork_next, real_vfork, __ATOMIC_RELEASE);
    void *real_syscall = dlsym(RTLD_NEXT, "syscall");
    if (real_syscall)
        __atomic_store_n((void **)&il_syscall_next, real_syscall, __ATOMIC_RELEASE);
    RESOLVE_NONNULL(sendmsg, "sendmsg");
    RESOLVE(sendmmsg, "sendmmsg");
    RESOLVE_NONNULL(recvmsg, "recvmsg");
    RESOLVE(recvmmsg, "recvmmsg");
    RESOLVE_NONNULL(read, "read");
    RESOLVE_NONNULL(readv, "readv");
    RESOLVE_NONNULL(recv, "recv");
    RESOLVE_NONNULL(recvfrom, "recvfrom");
    RESOLVE_NONNULL(read_chk, "__read_chk");
    RESOLVE_NONNULL(recv_chk, "__recv_chk");
    RESOLVE_NONNULL(recvfrom_chk, "__recvfrom_chk");
    RESOLVE_NONNULL(pthread_cancel, "pthread_cancel");
    void *real_close = dlsym(RTLD_NEXT, "close");
    /* Whether the next close is libc's own, nothing between (interpose.c,
     * il_close_known, makes the same system call then): the object that
     * defines it is libc. dladdr allocates nothing (dlopen would: see
     * syscall_unresolved). */
    Dl_info where;
    __atomic_store_n(&il_real_close_is_libc,
                     real_close && dladdr(real_close, &where) && where.dli_fname &&
                         is_libc(where.dli_fname),
                     __ATOMIC_RELAXED);
    if (real_close)
        __atomic_store_n((void **)&il_real.close, real_close, __ATOMIC_RELEASE);
}

