/* Connections handed between processes: fds of counted connections sent
 * and received by SCM_RIGHTS (sendmsg, sendmmsg, recvmsg, recvmmsg, and
 * the same through syscall()).
 *
 * A connection counts while any process of the service holds an fd to it
 * (docs/design.md, "What is counted"). An fd on its way through a unix
 * socket is held by no process, so the sender takes an in-flight reference
 * on the connection (conntab.h) before the real send, and the receiver
 * turns it into a reference of its own: a sender that closes its copy at
 * once (a primary handing connections to workers) never lets the count
 * drop in between. The receiver finds the connection from the fd alone:
 * fstat gives the socket's inode, the socket identity index (sockid.h)
 * the connection, recorded by the sender the first time it sent one.
 *
 * The wrappers (interpose_msg.c) use these hooks; so can any other path
 * that sends or receives messages (the syscall() wrapper: SYS_sendmsg,
 * SYS_sendmmsg, SYS_recvmsg, SYS_recvmmsg):
 *
 *   struct il_handoff_send st;
 *   il_handoff_before_send(fd, msg, &st);        // before the real call
 *   ssize_t n = real_sendmsg(fd, msg, flags);
 *   il_handoff_after_send(&st, n);               // undoes what was not sent
 *
 *   ssize_t n = real_recvmsg(fd, msg, flags);
 *   il_handoff_after_recv(msg, n);
 *
 * Every hook keeps errno, takes no lock, allocates nothing, and costs
 * nothing but a few loads for messages without SCM_RIGHTS. */
#ifndef IL_HANDOFF_H
#define IL_HANDOFF_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* In-flight references one send can take; counted fds beyond these in one
 * call are sent without one (as if sent by a process without the library:
 * their receivers add a reference instead). */
#define IL_HANDOFF_MAX 64

struct il_handoff_taken {
    uint64_t handle;
    uint32_t msg; /* which message of a sendmmsg */
    uint32_t pad;
};

struct il_handoff_send {
    unsigned n; /* in-flight references taken */
    int fd;
    const struct mmsghdr *vec; /* sendmmsg: its messages; NULL for sendmsg */
    struct il_handoff_taken taken[IL_HANDOFF_MAX];
};

/* Whether a message may carry fds at all: the fast path's one test. */
static inline int il_handoff_has_control(const struct msghdr *msg)
{
    return msg && msg->msg_controllen >= sizeof(struct cmsghdr);
}

/* Before sendmsg(fd, msg): an in-flight reference for every counted fd in
 * msg's SCM_RIGHTS. */
void il_handoff_before_send(int fd, const struct msghdr *msg, struct il_handoff_send *st);

/* Before sendmmsg(fd, vec, vlen). */
void il_handoff_before_sendmmsg(int fd, const struct mmsghdr *vec, unsigned vlen,
                                struct il_handoff_send *st);

/* After the real send returned result (sendmsg: bytes or -1; sendmmsg:
 * messages sent or -1): in-flight references of what was not sent are
 * dropped. */
void il_handoff_after_send(struct il_handoff_send *st, ssize_t result);

/* After recvmsg returned result: each fd received that is a counted
 * connection of this service becomes a reference in this process. A
 * MSG_PEEK receipt (the kernel installs a copy and leaves the message
 * queued) is treated the same: the peeked copy takes the in-flight
 * reference, and the real receipt that follows, finding none, adds one;
 * both end as references, as they should. (Between the two, the queued fd
 * is not counted: if every other holder closed then, the count would end
 * early. Telling a peek apart would cost the common path its flags.) */
void il_handoff_after_recv(struct msghdr *msg, ssize_t result);

/* After recvmmsg returned result (messages received, or -1). */
void il_handoff_after_recvmmsg(struct mmsghdr *vec, int result);

#endif
