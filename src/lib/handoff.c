/* Connections handed between processes by SCM_RIGHTS (see handoff.h). */
#include "handoff.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "conntab.h"
#include "fdmap.h"
#include "keytab.h"
#include "limiter.h"
#include "proxy.h"
#include "log.h"
#include "sockid.h"

static struct il_log_limit index_full_log;

/* Calls fn on every fd of every SCM_RIGHTS message in msg. The walk reads
 * only what the header's lengths cover (CMSG_NXTHDR checks each against
 * msg_controllen), and fds are copied out: the data need not be aligned. */
#define FOR_EACH_RIGHTS_FD(msg, fd, body)                                               \
    for (struct cmsghdr *cm_ = CMSG_FIRSTHDR(msg); cm_; cm_ = CMSG_NXTHDR(msg, cm_)) { \
        if (cm_->cmsg_level != SOL_SOCKET || cm_->cmsg_type != SCM_RIGHTS ||            \
            cm_->cmsg_len < CMSG_LEN(0))                                               \
            continue;                                                                  \
        size_t n_ = (cm_->cmsg_len - CMSG_LEN(0)) / sizeof(int);                       \
        const unsigned char *data_ = CMSG_DATA(cm_);                                   \
        for (size_t i_ = 0; i_ < n_; i_++) {                                           \
            int fd;                                                                    \
            memcpy(&fd, data_ + i_ * sizeof(int), sizeof fd);                          \
            body;                                                                      \
        }                                                                              \
    }

/* The connection's socket identity, recorded once per connection by its
 * first sender: the inode of fd (fstat), in the slot and in the index
 * (the accept path records no inode: it takes no system call). The fd
 * map entry is checked again after the fstat: if another thread closed fd
 * meanwhile (the close wrapper clears the entry first) and the number now
 * names another file, its inode is not recorded. */
static void record_identity(int fd, uint64_t entry)
{
    struct il_shm *shm = &il_state.shm;
    uint64_t handle = entry & IL_FD_HANDLE_MASK;
    uint64_t inode = il_conntab_inode(shm, handle);
    if (!inode) {
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) || il_fdmap_get(fd) != entry)
            return;
        inode = st.st_ino;
        if (il_conntab_set_inode(shm, handle, inode) != 0)
            return;
    }
    if (il_sockid_insert(shm, handle, inode) != 0)
        il_log_limited(&index_full_log, 60, LOG_ERR,
                       "socket identity index full: a connection sent to another process "
                       "is not counted there; raise IPLIMIT_CAPACITY");
}

static void take(int fd, uint32_t msg_index, struct il_handoff_send *st)
{
    uint64_t entry = il_fdmap_get(fd);
    if (!il_fd_is_conn(entry) || st->n == IL_HANDOFF_MAX)
        return;
    uint64_t handle = entry & IL_FD_HANDLE_MASK;
    /* The in-flight reference first: it keeps the slot in this generation
     * while the identity is recorded, and it must exist before the real
     * send, since the receiver may take the fd before the send returns. */
    if (il_conntab_send(&il_state.shm, handle) != 0)
        return;
    st->taken[st->n++] = (struct il_handoff_taken){.handle = handle, .msg = msg_index};
    record_identity(fd, entry);
}

static void take_msg(const struct msghdr *msg, uint32_t msg_index, struct il_handoff_send *st)
{
    if (!il_handoff_has_control(msg) || !msg->msg_control)
        return;
    struct msghdr *m = (struct msghdr *)msg; /* CMSG_NXTHDR takes it non-const */
    FOR_EACH_RIGHTS_FD(m, fd, take(fd, msg_index, st));
}

void il_handoff_before_send(int fd, const struct msghdr *msg, struct il_handoff_send *st)
{
    st->n = 0;
    st->fd = fd;
    st->vec = NULL;
    if (!il_active())
        return;
    int saved_errno = errno;
    take_msg(msg, 0, st);
    errno = saved_errno;
}

void il_handoff_before_sendmmsg(int fd, const struct mmsghdr *vec, unsigned vlen,
                                struct il_handoff_send *st)
{
    st->n = 0;
    st->fd = fd;
    st->vec = vec;
    if (!il_active() || !vec)
        return;
    int saved_errno = errno;
    for (unsigned i = 0; i < vlen; i++)
        take_msg(&vec[i].msg_hdr, i, st);
    errno = saved_errno;
}

static void unsend(uint64_t handle)
{
    struct il_shm *shm = &il_state.shm;
    uint32_t key_index = il_conntab_unsend(shm, handle);
    if (key_index != IL_NO_KEY) {
        il_keytab_release(shm, key_index);
        atomic_fetch_add_explicit(&shm->stats->released, 1, memory_order_relaxed);
    }
}

/* A unix stream socket sends nothing, fds included, for a message of no
 * bytes; datagram and seqpacket sockets send such a message, fds and all. */
static int sends_empty(int fd)
{
    int type = 0;
    socklen_t len = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type != SOCK_STREAM;
}

void il_handoff_after_send(struct il_handoff_send *st, ssize_t result)
{
    if (st->n == 0)
        return;
    int saved_errno = errno;
    int empty_sends = -1; /* not asked yet */
    for (unsigned i = 0; i < st->n; i++) {
        const struct il_handoff_taken *t = &st->taken[i];
        int sent;
        if (!st->vec)
            sent = result > 0 || (result == 0 && (empty_sends < 0 ? (empty_sends = sends_empty(st->fd))
                                                                  : empty_sends));
        else
            sent = result > 0 && t->msg < (size_t)result &&
                   (st->vec[t->msg].msg_len > 0 ||
                    (empty_sends < 0 ? (empty_sends = sends_empty(st->fd)) : empty_sends));
        if (!sent)
            unsend(t->handle);
    }
    st->n = 0;
    errno = saved_errno;
}

/* fd was just installed in this process by the kernel. */
static void adopt(int fd)
{
    if ((unsigned)fd >= il_fdmap_size())
        return; /* beyond the fd map: never tracked */
    /* A new fd number: whatever the map says of it is stale (closed
     * behind the library's back), as after accept or dup. */
    il_limiter_forget(fd);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
        return;
    struct il_shm *shm = &il_state.shm;
    /* A lookup can name a connection that ends before the receipt's CAS;
     * the socket may then be a newer connection's, found on a new look. */
    for (int attempt = 0; attempt < 3; attempt++) {
        uint64_t handle = il_sockid_lookup(shm, st.st_ino);
        if (!handle)
            return;
        uint64_t word;
        if (il_conntab_receive(shm, handle, 1, &word) != 0)
            continue;
        uint64_t entry = IL_FD_CONN | handle;
        /* A connection whose PROXY header is still to be read (proxy.h):
         * this process may be the one to read it first. */
        if (il_proxy_pending(handle))
            entry |= IL_FD_PENDING;
        il_limiter_release(il_fdmap_swap(fd, entry));
        return;
    }
}

static void adopt_msg(struct msghdr *msg)
{
    if (!il_handoff_has_control(msg) || !msg->msg_control)
        return;
    /* MSG_CTRUNC: the kernel installed the fds that fit, wrote their
     * number in cmsg_len, and closed the rest (their in-flight references
     * stay until reconciliation finds the socket gone: docs/failure-model.md). */
    FOR_EACH_RIGHTS_FD(msg, fd, adopt(fd));
}

void il_handoff_after_recv(struct msghdr *msg, ssize_t result)
{
    if (result < 0 || !il_active())
        return;
    int saved_errno = errno;
    adopt_msg(msg);
    errno = saved_errno;
}

void il_handoff_after_recvmmsg(struct mmsghdr *vec, int result)
{
    if (result <= 0 || !vec || !il_active())
        return;
    int saved_errno = errno;
    for (int i = 0; i < result; i++)
        adopt_msg(&vec[i].msg_hdr);
    errno = saved_errno;
}
