/* The read-family wrappers: where a connection that waits for its PROXY
 * header (proxy.h) is decided, in whichever process reads it first.
 *
 * Every call on an fd the library does not mark pending is one bounds
 * check, one load, one bit test and a tail call to the real function; the
 * rest is out of line. Kamailio reads with read() and peeks with recv()
 * (__recv_chk when built with _FORTIFY_SOURCE), so the fortified entry
 * points are wrapped too. Return values and errno are the real call's,
 * except that a non-blocking read of a pending connection whose header is
 * incomplete returns -1/EAGAIN without taking the header's first bytes. */
#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "fdmap.h"
#include "hot.h"
#include "proxy.h"
#include "real.h"

#define IL_EXPORT __attribute__((visibility("default")))

/* glibc's fortified entry points (declared only under _FORTIFY_SOURCE). */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t size);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t size, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t size, int flags,
                       struct sockaddr *addr, socklen_t *addrlen);

static inline bool pending(int fd)
{
    return __builtin_expect((il_fdmap_get(fd) & IL_FD_PENDING) != 0, 0);
}

/* Out of line: settles the connection; false when the caller must return
 * -1 (errno set) instead of making the real call. */
static __attribute__((noinline)) bool settle(int fd, int flags)
{
    uint64_t entry = il_fdmap_get(fd);
    return !(entry & IL_FD_PENDING) || il_proxy_settle(fd, entry, flags) == 0;
}

/* Each wrapper: the fast path tail-calls the real function; an fd marked
 * pending goes to an out-of-line twin that settles it first, so the fast
 * path saves no registers. */
#define READ_WRAPPER(ret, name, real, flags, params, args)                 \
    static __attribute__((noinline)) ret name##_pending params             \
    {                                                                      \
        if (!settle(fd, flags))                                            \
            return -1;                                                     \
        return IL_REAL_READ(real) args;                                    \
    }                                                                      \
    IL_EXPORT IL_HOT ret name params                                       \
    {                                                                      \
        if (pending(fd))                                                   \
            return name##_pending args;                                    \
        return IL_REAL_READ(real) args;                                    \
    }

READ_WRAPPER(ssize_t, read, read, 0, (int fd, void *buf, size_t n), (fd, buf, n))
READ_WRAPPER(ssize_t, readv, readv, 0, (int fd, const struct iovec *iov, int iovcnt),
             (fd, iov, iovcnt))
READ_WRAPPER(ssize_t, recv, recv, flags, (int fd, void *buf, size_t n, int flags),
             (fd, buf, n, flags))
READ_WRAPPER(ssize_t, recvfrom, recvfrom, flags,
             (int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *addrlen),
             (fd, buf, n, flags, addr, addrlen))
/* recvmsg is in interpose_msg.c: it also receives fds (handoff.h), and
 * settles a pending connection there the same way. */
READ_WRAPPER(ssize_t, __read_chk, read_chk, 0, (int fd, void *buf, size_t n, size_t size),
             (fd, buf, n, size))
READ_WRAPPER(ssize_t, __recv_chk, recv_chk, flags,
             (int fd, void *buf, size_t n, size_t size, int flags), (fd, buf, n, size, flags))
READ_WRAPPER(ssize_t, __recvfrom_chk, recvfrom_chk, flags,
             (int fd, void *buf, size_t n, size_t size, int flags, struct sockaddr *addr,
              socklen_t *addrlen),
             (fd, buf, n, size, flags, addr, addrlen))
