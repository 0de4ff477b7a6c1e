/* pthread_cancel: marks that a cancellation request may be pending, then
 * makes the real call.
 *
 * A thread can have a request pending only if some thread of the process
 * called pthread_cancel. close() of a counted connection makes its system
 * call without libc's cancellation point and acts on a pending request
 * itself, after the release (interpose.c); with IL_CLOSE_CANCEL_SEEN clear
 * in il_close_flags (real.h) it knows none can be pending and skips
 * pthread_testcancel: the bit is tested in the same compare that tests
 * whether libc's close is next. The bit is never cleared; it survives
 * fork (the child then tests as before: harmless) and not exec (no
 * request does). Requests made inside libc with its internal
 * __pthread_cancel (glibc's own helper threads) never pass here; such
 * threads never close a counted fd. */
#include <pthread.h>

#include "real.h"

#define IL_EXPORT __attribute__((visibility("default")))

/* Why close's relaxed load of il_close_flags never misses a request it
 * must act on. Let R be a request (this call, for thread T) and L the
 * load at the start of a close in T.
 *
 * - R happens before L: T asked for its own cancellation earlier in its
 *   program, or the canceller's call is ordered before T's close by
 *   anything that synchronises (a mutex, a join, an atomic release and
 *   acquire, a write to a pipe that T reads). The bit is set here,
 *   sequenced before the real call, so the setting happens before L as
 *   well, and by write-read coherence L reads it or a later value of the
 *   word (the bit is never cleared). Relaxed loads suffice for this.
 * - R does not happen before L: then nothing the host can observe tells R
 *   from a request made just after the close, which is acted on at T's
 *   next cancellation point; R stays pending for it (libc's own points
 *   read it directly, the library's next close finds the bit set).
 *
 * The setting is sequentially consistent all the same, so that even by
 * the clock the bit is never later than the request: glibc's request is
 * an atomic read-modify-write of T's cancellation word, which a
 * sequentially consistent read-modify-write before it cannot be delayed
 * past (a locked instruction on x86; on aarch64 a store-release, which
 * the next read-modify-write's acquire load cannot pass). A relaxed store
 * could sit in a store buffer while the request is already visible.
 *
 * The real function is never NULL (real.c). The bit is set whatever the
 * call's outcome: a request for a thread that has exited costs the
 * process a pthread_testcancel per close, nothing more. */
IL_EXPORT int pthread_cancel(pthread_t thread)
{
    __atomic_fetch_or(&il_close_flags, IL_CLOSE_CANCEL_SEEN, __ATOMIC_SEQ_CST);
    return __atomic_load_n(&il_real.pthread_cancel, __ATOMIC_RELAXED)(thread);
}
