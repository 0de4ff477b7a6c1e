/* The exported message wrappers: sendmsg, sendmmsg, recvmsg, recvmmsg.
 * They carry counted fds between processes (handoff.h); a message without
 * control data passes with two tests (sendmsg: a message and its control
 * length; recvmsg, after the real call: whether it succeeded and brought
 * control data). */
#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>

#include "fdmap.h"
#include "handoff.h"
#include "hot.h"
#include "proxy.h"
#include "real.h"

#define IL_EXPORT __attribute__((visibility("default")))

/* A thread cancelled in a blocking send sent nothing: its in-flight
 * references go too. */
static void send_cancelled(void *st)
{
    il_handoff_after_send(st, -1);
}

static __attribute__((noinline)) ssize_t sendmsg_counted(int fd, const struct msghdr *msg,
                                                         int flags)
{
    struct il_handoff_send st;
    il_handoff_before_send(fd, msg, &st);
    ssize_t result;
    pthread_cleanup_push(send_cancelled, &st);
    result = IL_REAL(sendmsg)(fd, msg, flags);
    pthread_cleanup_pop(0);
    il_handoff_after_send(&st, result);
    return result;
}

IL_EXPORT IL_HOT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (__builtin_expect(il_handoff_has_control(msg), 0))
        return sendmsg_counted(fd, msg, flags);
    return __atomic_load_n(&il_real.sendmsg, __ATOMIC_RELAXED)(fd, msg, flags);
}

static __attribute__((noinline)) int sendmmsg_counted(int fd, struct mmsghdr *vec, unsigned vlen,
                                                      int flags)
{
    struct il_handoff_send st;
    il_handoff_before_sendmmsg(fd, vec, vlen, &st);
    int result;
    pthread_cleanup_push(send_cancelled, &st);
    result = IL_REAL(sendmmsg)(fd, vec, vlen, flags);
    pthread_cleanup_pop(0);
    il_handoff_after_send(&st, result);
    return result;
}

IL_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned vlen, int flags)
{
    for (unsigned i = 0; vec && i < vlen; i++)
        if (il_handoff_has_control(&vec[i].msg_hdr))
            return sendmmsg_counted(fd, vec, vlen, flags);
    return IL_REAL(sendmmsg)(fd, vec, vlen, flags);
}

static __attribute__((noinline)) ssize_t received(struct msghdr *msg, ssize_t result)
{
    il_handoff_after_recv(msg, result);
    return result;
}

/* recvmsg runs for every message a unix-socket or UDP server receives: the
 * real call, then, once it succeeded, one load decides (the kernel has set
 * msg_controllen to the control data it wrote: 0 for a message without
 * any). */
/* A connection whose PROXY header is not read yet is settled first, as
 * by the other read wrappers (interpose_read.c, proxy.h). */
static __attribute__((noinline)) ssize_t recvmsg_pending(int fd, struct msghdr *msg, int flags)
{
    uint64_t entry = il_fdmap_get(fd);
    if ((entry & IL_FD_PENDING) && il_proxy_settle(fd, entry, flags) != 0)
        return -1;
    ssize_t result = __atomic_load_n(&il_real.recvmsg, __ATOMIC_RELAXED)(fd, msg, flags);
    if (result >= 0 && msg->msg_controllen != 0)
        return received(msg, result);
    return result;
}

IL_EXPORT IL_HOT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (__builtin_expect((il_fdmap_get(fd) & IL_FD_PENDING) != 0, 0))
        return recvmsg_pending(fd, msg, flags);
    ssize_t result = __atomic_load_n(&il_real.recvmsg, __ATOMIC_RELAXED)(fd, msg, flags);
    if (__builtin_expect(result >= 0 && msg->msg_controllen != 0, 0))
        return received(msg, result);
    return result;
}

IL_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned vlen, int flags,
                       struct timespec *timeout)
{
    int result = IL_REAL(recvmmsg)(fd, vec, vlen, flags, timeout);
    if (result > 0)
        il_handoff_after_recvmmsg(vec, result);
    return result;
}
