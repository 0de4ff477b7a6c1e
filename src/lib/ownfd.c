/* The library's own fds (see ownfd.h). */
#include "ownfd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "fdmap.h"
#include "limiter.h"
#include "real.h"

static struct il_own_fd registry[IL_OWN_FD_SLOTS];
_Thread_local int il_own_fds_private __attribute__((tls_model("initial-exec")));

/* How far down from the limit il_own_fd_place looks for a free number. */
#define PLACE_TRIES 64

static int dup_at_or_above(int fd, int min)
{
    int r = IL_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, min);
    return r >= 0 ? r : -errno;
}

int il_own_fd_place(int fd)
{
    struct rlimit rl;
    long limit = INT_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)INT_MAX)
        limit = (long)rl.rlim_cur;
    if (limit > IL_OWN_FD_MIN) {
        int r = dup_at_or_above(fd, IL_OWN_FD_MIN);
        if (r != -EMFILE && r != -EINVAL)
            return r;
        if (limit > INT_MAX / 2)
            return r;
        limit = IL_OWN_FD_MIN; /* every number from 200 up is taken: look below */
    }
    /* F_DUPFD(k) fails with EMFILE only when no number from k up to the
     * limit is free, so the first k that succeeds gives exactly k: the
     * highest free number, far from the low ones the host gets. */
    for (long k = limit - 1, tries = 0; k > 2 && tries < PLACE_TRIES; k--, tries++) {
        int r = dup_at_or_above(fd, (int)k);
        if (r != -EMFILE)
            return r;
    }
    return -EMFILE;
}

/* Sets fd's map entry from IL_FD_OWN to 0, leaving any other entry. The
 * fd map describes the host's fd table: an fd of a thread with a table of
 * its own (il_own_fds_private) is never marked, and its number may be one
 * of the host's. */
static void unmark(int fd)
{
    if ((unsigned)fd >= il_fdmap_size() || il_own_fds_private)
        return;
    uint64_t expected = IL_FD_OWN;
    atomic_compare_exchange_strong_explicit(il_fdmap_slot(fd), &expected, 0, memory_order_acq_rel,
                                            memory_order_relaxed);
}

/* The number was just handed to us by the kernel: whatever the map said
 * about it is stale; it is now ours. */
static void mark(int fd)
{
    if (il_own_fds_private)
        return;
    il_limiter_forget(fd);
    il_fdmap_swap(fd, IL_FD_OWN);
}

static bool same_file(int fd, const struct il_own_fd *own)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 &&
           (uint64_t)st.st_dev == atomic_load_explicit(&own->dev, memory_order_relaxed) &&
           (uint64_t)st.st_ino == atomic_load_explicit(&own->ino, memory_order_relaxed);
}

struct il_own_fd *il_own_fd_take(int fd)
{
    int high = il_own_fd_place(fd);
    if (high >= 0 && high < fd) {
        il_real_close(high); /* already higher than where it would go */
    } else if (high >= 0) {
        il_real_close(fd);
        fd = high;
    }
    struct stat st;
    struct il_own_fd *own = NULL;
    for (unsigned i = 0; i < IL_OWN_FD_SLOTS && !own; i++) {
        int free_slot = 0;
        if (atomic_compare_exchange_strong(&registry[i].busy, &free_slot, 1))
            own = &registry[i];
    }
    if (!own || fstat(fd, &st) != 0) {
        int err = own ? errno : EMFILE;
        il_real_close(fd);
        if (own)
            atomic_store_explicit(&own->busy, 0, memory_order_release);
        errno = err;
        return NULL;
    }
    atomic_store_explicit(&own->dev, (uint64_t)st.st_dev, memory_order_relaxed);
    atomic_store_explicit(&own->ino, (uint64_t)st.st_ino, memory_order_relaxed);
    /* Registered before marked: whoever sees the mark finds the slot. */
    atomic_store_explicit(&own->fd, fd, memory_order_release);
    mark(fd);
    return own;
}

bool il_own_fd_valid(const struct il_own_fd *own)
{
    return own && same_file(il_own_fd_num(own), own);
}

void il_own_fd_close(struct il_own_fd *own)
{
    if (!own)
        return;
    int fd = il_own_fd_num(own);
    if (same_file(fd, own)) {
        unmark(fd); /* before the close, as for every fd (interpose.c) */
        il_real_close(fd);
    }
    atomic_store_explicit(&own->fd, -1, memory_order_release);
    atomic_store_explicit(&own->busy, 0, memory_order_release);
}

static struct il_own_fd *find(int fd)
{
    for (unsigned i = 0; i < IL_OWN_FD_SLOTS; i++) {
        struct il_own_fd *own = &registry[i];
        if (atomic_load_explicit(&own->busy, memory_order_acquire) && il_own_fd_num(own) == fd &&
            same_file(fd, own))
            return own;
    }
    return NULL;
}

bool il_own_fd_is(int fd)
{
    if (find(fd))
        return true;
    unmark(fd);
    return false;
}

struct il_own_fd *il_own_fd_evict(int fd)
{
    struct il_own_fd *own = find(fd);
    if (!own)
        return NULL;
    int moved = il_own_fd_place(fd);
    if (moved < 0)
        return NULL;
    int expected = fd;
    if (!atomic_compare_exchange_strong(&own->fd, &expected, moved)) {
        il_real_close(moved); /* moved or closed meanwhile by another thread */
        return NULL;
    }
    mark(moved);
    unmark(fd);
    return own;
}

void il_own_fd_evict_failed(int oldfd)
{
    il_real_close(oldfd);
}

unsigned il_own_fd_list(unsigned first, unsigned last, int *out, unsigned max)
{
    unsigned n = 0;
    for (unsigned i = 0; i < IL_OWN_FD_SLOTS && n < max; i++) {
        struct il_own_fd *own = &registry[i];
        int fd = il_own_fd_num(own);
        if (!atomic_load_explicit(&own->busy, memory_order_acquire) || fd < 0 ||
            (unsigned)fd < first || (unsigned)fd > last || !same_file(fd, own))
            continue;
        unsigned j = n++;
        for (; j > 0 && out[j - 1] > fd; j--)
            out[j] = out[j - 1];
        out[j] = fd;
    }
    return n;
}
