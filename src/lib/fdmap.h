/* The fd map: what this process knows about each of its file descriptors.
 *
 * One 64-bit entry per fd number, in private anonymous memory reserved once
 * for every possible fd (fs.nr_open) and touched lazily, so a fork copies
 * it exactly as the kernel copies the fd table.  Threads share it; every
 * access is atomic. Entries:
 *   0                      nothing known (the common case: close() fast path)
 *   IL_FD_CONN | handle    an fd to a counted connection (see conntab.h);
 *                          bits below 56 are the handle, bits 56..62 flags
 *                          of that fd (IL_FD_PENDING)
 *   IL_FD_LISTENER | info  a listening socket already classified */
#ifndef IL_FDMAP_H
#define IL_FDMAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define IL_FD_CONN (1ULL << 63)
#define IL_FD_LISTENER (1ULL << 62)
#define IL_FD_OWN (1ULL << 61)       /* one of the library's own fds (ownfd.h) */
#define IL_FD_PENDING (1ULL << 60)   /* with IL_FD_CONN: PROXY header not yet read */
#define IL_FD_HANDLE_MASK ((1ULL << 56) - 1)
#define IL_FD_POLICEABLE (1ULL << 16) /* listener is TCP over IPv4/IPv6 */
#define IL_FD_PORT_MASK 0xffffULL

/* Hidden: the close() fast path reads these directly, not through the GOT.
 * il_fdmap is never NULL (a dummy of length 0 until il_fdmap_init). */
extern _Atomic uint64_t *il_fdmap __attribute__((visibility("hidden")));
extern unsigned il_fdmap_len __attribute__((visibility("hidden")));

/* Reserves the map. Returns 0 or -errno (then nothing is ever tracked). */
int il_fdmap_init(void);

/* The fast path: a plain load, no syscall, no lock. */
static inline uint64_t il_fdmap_get(int fd)
{
    if ((unsigned)fd >= il_fdmap_len)
        return 0;
    return atomic_load_explicit(&il_fdmap[fd], memory_order_acquire);
}

/* Highest fd that ever held an entry (fdmap.c); see il_fdmap_high. */
extern _Atomic int il_fdmap_high_fd __attribute__((visibility("hidden")));

/* Stores entry for fd and returns what was there. fds outside the map are
 * never tracked: storing returns 0 and does nothing. Inline: the accept
 * path stores one entry per connection. */
static inline uint64_t il_fdmap_swap(int fd, uint64_t entry)
{
    _Atomic uint64_t *map = il_fdmap;
    if ((unsigned)fd >= il_fdmap_len)
        return 0;
    if (entry) {
        int high = atomic_load_explicit(&il_fdmap_high_fd, memory_order_relaxed);
        while (fd > high &&
               !atomic_compare_exchange_weak_explicit(&il_fdmap_high_fd, &high, fd,
                                                      memory_order_relaxed, memory_order_relaxed))
            ;
    } else if (atomic_load_explicit(&map[fd], memory_order_relaxed) == 0) {
        return 0; /* don't fault in a page just to store a zero */
    }
    return atomic_exchange_explicit(&map[fd], entry, memory_order_acq_rel);
}

/* Clears fd's entry and returns what was there: il_fdmap_swap(fd, 0)
 * inline, for the close of an fd whose entry was just seen nonzero. */
static inline uint64_t il_fdmap_take(int fd)
{
    if ((unsigned)fd >= il_fdmap_len)
        return 0;
    return atomic_exchange_explicit(&il_fdmap[fd], 0, memory_order_acq_rel);
}

/* Highest fd that ever held an entry: bounds the walks below. */
int il_fdmap_high(void);

static inline bool il_fd_is_conn(uint64_t entry)
{
    return (entry & IL_FD_CONN) != 0;
}

#endif
