/* Closing fd ranges around the library's own fds (closerange.h). */
#include "closerange.h"

#include <errno.h>
#include <unistd.h>

#include "ownfd.h"
#include "real.h"

int il_close_range_split(unsigned first, unsigned last, int flags,
                         int (*closer)(unsigned, unsigned, int))
{
    int own[IL_OWN_FD_SLOTS];
    unsigned n = il_own_fd_list(first, last, own, IL_OWN_FD_SLOTS);
    unsigned lo = first;
    for (unsigned i = 0; i < n; i++) {
        unsigned fd = (unsigned)own[i];
        /* CLOSE_RANGE_UNSHARE on every piece: the first unshares the fd
         * table, the others find it unshared already. */
        if (fd > lo && closer(lo, fd - 1, flags) != 0)
            return -1;
        lo = fd + 1;
    }
    return lo <= last ? closer(lo, last, flags) : 0;
}

/* A piece of closefrom: the last one by the real closefrom (which has its
 * own fallback when close_range is missing), the others by close_range or,
 * without it, one close at a time (they lie below one of our fds, so there
 * are at most a few hundred). */
static int closefrom_piece(unsigned lo, unsigned hi, int flags)
{
    (void)flags;
    void (*real_closefrom)(int) = IL_REAL(closefrom);
    if (hi == ~0u && real_closefrom) {
        real_closefrom((int)lo);
        return 0;
    }
    int (*real_close_range)(unsigned, unsigned, int) = IL_REAL(close_range);
    if (real_close_range && real_close_range(lo, hi, 0) == 0)
        return 0;
    if (hi == ~0u) {
        long max = sysconf(_SC_OPEN_MAX);
        hi = max > 0 ? (unsigned)(max - 1) : 65535;
    }
    for (unsigned fd = lo; fd <= hi && fd >= lo; fd++)
        il_real_close((int)fd);
    return 0;
}

void il_closefrom_split(int lowfd)
{
    int saved_errno = errno;
    il_close_range_split((unsigned)lowfd, ~0u, 0, closefrom_piece);
    errno = saved_errno; /* closefrom returns nothing and sets no errno */
}
