/* Reopening a lost segment fd (segment_recover.h). */
#include "segment_recover.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "real.h"

#define MAX_CHILDREN 256

struct source {
    uint64_t dev, ino;
    char *from;
    size_t from_len;
};

static int open_if_same(const char *path, const struct source *src)
{
    uint64_t dev = src->dev, ino = src->ino;
    struct stat st;
    if (stat(path, &st) != 0 || (uint64_t)st.st_dev != dev || (uint64_t)st.st_ino != ino)
        return -1;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    /* The number may have been reused between stat and open. */
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_dev != dev || (uint64_t)st.st_ino != ino) {
        il_real_close(fd);
        return -1;
    }
    snprintf(src->from, src->from_len, "%s", path);
    return fd;
}

static int from_pid(pid_t pid, int lost_fd, const struct source *src)
{
    char path[64];
    if (pid <= 0 || pid == getpid())
        return -1;
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, lost_fd);
    return open_if_same(path, src);
}

/* pid, then its main thread's children. */
static int from_family(pid_t pid, int lost_fd, const struct source *src)
{
    int fd = from_pid(pid, lost_fd, src);
    if (fd >= 0 || pid <= 0)
        return fd;
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    int list = open(path, O_RDONLY | O_CLOEXEC);
    if (list < 0)
        return -1;
    ssize_t n = read(list, buf, sizeof buf - 1);
    il_real_close(list);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    long child = 0;
    unsigned seen = 0;
    for (const char *p = buf; *p && seen < MAX_CHILDREN; p++) {
        if (*p >= '0' && *p <= '9') {
            child = child * 10 + (*p - '0');
            continue;
        }
        if (child > 0) {
            seen++;
            fd = from_pid((pid_t)child, lost_fd, src);
            if (fd >= 0)
                return fd;
        }
        child = 0;
    }
    return -1;
}

int il_segment_recover(const struct il_shm *shm, int lost_fd, uint64_t dev, uint64_t ino,
                       char *from, size_t from_len)
{
    const struct source src = {dev, ino, from, from_len};
    if (!shm->hdr)
        return -1;
    int fd = -1;
    if (lost_fd >= 0) {
        pid_t creator = shm->hdr->creator_pid, parent = getppid();
        fd = from_family(creator, lost_fd, &src);
        if (fd < 0 && parent != creator)
            fd = from_family(parent, lost_fd, &src);
    }
    if (fd < 0) {
        char path[80];
        uintptr_t start = (uintptr_t)shm->hdr;
        snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx", (unsigned long)start,
                 (unsigned long)(start + shm->size));
        fd = open_if_same(path, &src);
    }
    return fd;
}
