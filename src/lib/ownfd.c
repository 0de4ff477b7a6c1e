/* The library's own fds (see ownfd.h). */
#include "ownfd.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "real.h"

int il_own_fd_take(struct il_own_fd *own, int fd)
{
    int high = IL_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, IL_OWN_FD_MIN);
    if (high >= 0) {
        il_real_close(fd);
        fd = high;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = -errno;
        il_real_close(fd);
        own->fd = -1;
        return err;
    }
    *own = (struct il_own_fd){fd, st.st_dev, st.st_ino};
    return 0;
}

bool il_own_fd_valid(const struct il_own_fd *own)
{
    struct stat st;
    return own->fd >= 0 && fstat(own->fd, &st) == 0 && st.st_dev == own->dev &&
           st.st_ino == own->ino;
}

void il_own_fd_close(struct il_own_fd *own)
{
    if (il_own_fd_valid(own))
        il_real_close(own->fd);
    own->fd = -1;
}
