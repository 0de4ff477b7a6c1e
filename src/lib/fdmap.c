/* The per-process fd map (see fdmap.h). */
#include "fdmap.h"

#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hot.h"
#include "real.h"

#define IL_FDMAP_MAX (1u << 24) /* 16M fds: 128 MiB of address space at most */

static _Atomic uint64_t no_map[1];
IL_HOT_DATA _Atomic uint64_t *il_fdmap = no_map;
IL_HOT_DATA unsigned il_fdmap_len;
IL_HOT_DATA _Atomic int il_fdmap_high_fd = -1;

static unsigned read_nr_open(void)
{
    unsigned value = 1u << 20;
    FILE *f = fopen("/proc/sys/fs/nr_open", "re");
    if (f) {
        if (fscanf(f, "%u", &value) != 1)
            value = 1u << 20;
        fclose(f);
    }
    return value < IL_FDMAP_MAX ? value : IL_FDMAP_MAX;
}

int il_fdmap_init(void)
{
    if (il_fdmap != no_map)
        return 0;
    unsigned len = read_nr_open();
    /* MAP_NORESERVE: untouched pages cost nothing and read as zero. */
    void *map = mmap(NULL, (size_t)len * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED)
        return -errno;
    /* The map before its length: a reader that sees the length sees it. */
    il_fdmap = map;
    __atomic_store_n(&il_fdmap_len, len, __ATOMIC_RELEASE);
    return 0;
}

__attribute__((noinline, cold)) void il_fdmap_raise_high(int fd)
{
    int high = atomic_load_explicit(&il_fdmap_high_fd, memory_order_relaxed);
    while (fd > high &&
           !atomic_compare_exchange_weak_explicit(&il_fdmap_high_fd, &high, fd,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

int il_fdmap_high(void)
{
    return atomic_load_explicit(&il_fdmap_high_fd, memory_order_relaxed);
}
