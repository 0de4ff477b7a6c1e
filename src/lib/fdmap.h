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
 *   IL_FD_LISTENER | info  a listening socket already classified: its
 *                          local port, whether it is TCP over IPv4/IPv6,
 *                          and whether the policy of a generation polices
 *                          its port (the port stamp, below) */
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
/* The port stamp of a listener's entry, for a policy with a port list
 * (limiter.c): bits 24..55 hold the low 32 bits of the policy generation
 * whose decision IL_FD_PORT_POLICED gives (set: that policy polices the
 * port). 0 is no stamp: generations start at 1 and a stamp meets a
 * generation it was not made for only after 2^32 reloads. */
#define IL_FD_PORT_POLICED (1ULL << 17)
#define IL_FD_PORT_GEN_SHIFT 24
#define IL_FD_PORT_STAMP (IL_FD_PORT_POLICED | 0xffffffffULL << IL_FD_PORT_GEN_SHIFT)

static inline uint64_t il_fd_port_stamp(uint64_t generation, bool policed)
{
    return (uint64_t)(uint32_t)generation << IL_FD_PORT_GEN_SHIFT |
           (policed ? IL_FD_PORT_POLICED : 0);
}

/* Whether a listener's entry holds the port stamp of generation. */
static inline bool il_fd_port_stamped(uint64_t info, uint64_t generation)
{
    return (uint32_t)(info >> IL_FD_PORT_GEN_SHIFT) == (uint32_t)generation;
}

/* Hidden: the close() fast path reads these directly, not through the GOT.
 * il_fdmap is never NULL (a dummy of length 0 until il_fdmap_init). */
extern _Atomic uint64_t *il_fdmap __attribute__((visibility("hidden")));
extern unsigned il_fdmap_len __attribute__((visibility("hidden")));

/* Reserves the map. Returns 0 or -errno (then nothing is ever tracked). */
int il_fdmap_init(void);

/* The map's length (acquire), then fd's slot in the map. il_fdmap_init
 * stores the map before the length (release), so a reader that found fd
 * inside the length it loaded reads the new map, never the dummy: hence
 * every slot is taken after that test, and the map's pointer may be read
 * plainly (no race: the acquire ordered it after the store). Another
 * library's constructor may start a thread that closes fds while the
 * library's own constructor makes the map. On x86 the acquire is a plain
 * move. */
static inline unsigned il_fdmap_size(void)
{
    return __atomic_load_n(&il_fdmap_len, __ATOMIC_ACQUIRE);
}

static inline _Atomic uint64_t *il_fdmap_slot(int fd)
{
    return il_fdmap + fd;
}

/* The fast path: a plain load, no syscall, no lock. */
static inline uint64_t il_fdmap_get(int fd)
{
    if ((unsigned)fd >= il_fdmap_size())
        return 0;
    return atomic_load_explicit(il_fdmap_slot(fd), memory_order_acquire);
}

/* Highest fd that ever held an entry (fdmap.c); see il_fdmap_high. */
extern _Atomic int il_fdmap_high_fd __attribute__((visibility("hidden")));

/* Raises il_fdmap_high_fd to fd (a compare-and-swap loop: threads may
 * raise it at once). Out of line: it runs once per new highest fd, and
 * its loop would otherwise take registers from every caller's path. */
void il_fdmap_raise_high(int fd);

/* Stores entry for fd and returns what was there. fds outside the map are
 * never tracked: storing returns 0 and does nothing. Inline: the accept
 * path stores one entry per connection. */
static inline uint64_t il_fdmap_swap(int fd, uint64_t entry)
{
    if ((unsigned)fd >= il_fdmap_size())
        return 0;
    _Atomic uint64_t *slot = il_fdmap_slot(fd);
    if (entry) {
        if (__builtin_expect(fd > atomic_load_explicit(&il_fdmap_high_fd, memory_order_relaxed), 0))
            il_fdmap_raise_high(fd);
    } else if (atomic_load_explicit(slot, memory_order_relaxed) == 0) {
        return 0; /* don't fault in a page just to store a zero */
    }
    return atomic_exchange_explicit(slot, entry, memory_order_acq_rel);
}

/* Replaces fd's entry by entry if it is still old; a listener's port
 * stamp, which holds no reference, needs no more (a close or dup that
 * changed the entry meanwhile wins). */
static inline void il_fdmap_replace_if(int fd, uint64_t old, uint64_t entry)
{
    if ((unsigned)fd < il_fdmap_size())
        atomic_compare_exchange_strong_explicit(il_fdmap_slot(fd), &old, entry, memory_order_acq_rel,
                                                memory_order_relaxed);
}

/* Clears fd's entry and returns what was there: il_fdmap_swap(fd, 0)
 * inline, for the close of an fd whose entry was just seen nonzero. */
static inline uint64_t il_fdmap_take(int fd)
{
    if ((unsigned)fd >= il_fdmap_size())
        return 0;
    return atomic_exchange_explicit(il_fdmap_slot(fd), 0, memory_order_acq_rel);
}

/* Highest fd that ever held an entry: bounds the walks below. */
int il_fdmap_high(void);

static inline bool il_fd_is_conn(uint64_t entry)
{
    return (entry & IL_FD_CONN) != 0;
}

#endif
