/* Finding the next definition of each wrapped function. */
#include "real.h"

#include <dlfcn.h>
#include <unistd.h>
#include <sys/syscall.h>

static int close_by_syscall(int fd)
{
    return (int)syscall(SYS_close, fd);
}

static ssize_t read_by_syscall(int fd, void *buf, size_t n)
{
    return syscall(SYS_read, fd, buf, n);
}
static ssize_t readv_by_syscall(int fd, const struct iovec *iov, int n)
{
    return syscall(SYS_readv, fd, iov, n);
}
static ssize_t recv_by_syscall(int fd, void *buf, size_t n, int flags)
{
    return syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
}
static ssize_t recvfrom_by_syscall(int fd, void *buf, size_t n, int flags, struct sockaddr *sa,
                                   socklen_t *len)
{
    return syscall(SYS_recvfrom, fd, buf, n, flags, sa, len);
}
static ssize_t recvmsg_by_syscall(int fd, struct msghdr *msg, int flags)
{
    return syscall(SYS_recvmsg, fd, msg, flags);
}
/* The _chk variants check the buffer size first; before dlsym answers
 * the plain call stands in for them (only another library's constructor
 * can get there). */
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

/* close is never NULL, so the close() fast path needs no test: until
 * dlsym answers, the system call does the same job. */
struct il_real il_real = {
    .close = close_by_syscall,
    .read = read_by_syscall,
    .readv = readv_by_syscall,
    .recv = recv_by_syscall,
    .recvfrom = recvfrom_by_syscall,
    .recvmsg = recvmsg_by_syscall,
    .read_chk = read_chk_by_syscall,
    .recv_chk = recv_chk_by_syscall,
    .recvfrom_chk = recvfrom_chk_by_syscall,
};

/* Replaces a never-NULL pointer only with a found symbol. */
#define RESOLVE_KEEP(field, symbol)                                                \
    do {                                                                           \
        void *found_ = dlsym(RTLD_NEXT, symbol);                                   \
        if (found_)                                                                \
            __atomic_store_n((void **)&il_real.field, found_, __ATOMIC_RELEASE);    \
    } while (0)

#define RESOLVE(field, symbol) \
    __atomic_store_n((void **)&il_real.field, dlsym(RTLD_NEXT, symbol), __ATOMIC_RELEASE)

void il_real_resolve(void)
{
    RESOLVE(accept4, "accept4");
    RESOLVE(close_range, "close_range");
    RESOLVE(closefrom, "closefrom");
    RESOLVE(dup, "dup");
    RESOLVE(dup2, "dup2");
    RESOLVE(dup3, "dup3");
    RESOLVE(fcntl, "fcntl");
    RESOLVE(fcntl64, "fcntl64");
    RESOLVE(fclose, "fclose");
    RESOLVE(fork, "fork");
    RESOLVE(execve, "execve");
    RESOLVE(execv, "execv");
    RESOLVE(execvp, "execvp");
    RESOLVE(execvpe, "execvpe");
    RESOLVE(fexecve, "fexecve");
    RESOLVE(exit_now, "_exit");
    RESOLVE(exit_now2, "_Exit");
    RESOLVE(accept, "accept");
    RESOLVE_KEEP(read, "read");
    RESOLVE_KEEP(readv, "readv");
    RESOLVE_KEEP(recv, "recv");
    RESOLVE_KEEP(recvfrom, "recvfrom");
    RESOLVE_KEEP(recvmsg, "recvmsg");
    RESOLVE_KEEP(read_chk, "__read_chk");
    RESOLVE_KEEP(recv_chk, "__recv_chk");
    RESOLVE_KEEP(recvfrom_chk, "__recvfrom_chk");
    void *real_close = dlsym(RTLD_NEXT, "close");
    if (real_close)
        __atomic_store_n((void **)&il_real.close, real_close, __ATOMIC_RELEASE);
}

