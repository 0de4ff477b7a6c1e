/* pthread_cancel: marks that a cancellation request may be pending, then
 * makes the real call.
 *
 * A thread can have a request pending only if some thread of the process
 * called pthread_cancel. close() of a counted connection makes its system
 * call without libc's cancellation point and acts on a pending request
 * itself, after the release (interpose.c); until a pthread_cancel it
 * knows none can be pending and skips pthread_testcancel: its way for a
 * counted connection (close_counted_way, one word it loads anyway) is
 * then the straight one. The first pthread_cancel switches that way to
 * the one that tests, for good; the switch survives fork (the child then
 * tests as before: harmless) and not exec (no request does). Requests
 * made inside libc with its internal __pthread_cancel (glibc's own helper
 * threads) never pass here; such threads never close a counted fd. */
#include <pthread.h>

#include "interpose.h"
#include "real.h"

#define IL_EXPORT __attribute__((visibility("default")))

/* Why close's relaxed load of its way never misses a request it must act
 * on. Let R be a request (this call, for thread T) and L the load of the
 * way in a close in T.
 *
 * - R happens before L: T asked for its own cancellation earlier in its
 *   program, or the canceller's call is ordered before T's close by
 *   anything that synchronises (a mutex, a join, an atomic release and
 *   acquire, a write to a pipe that T reads). The way is switched here,
 *   sequenced before the real call, so the switch happens before L as
 *   well, and by write-read coherence L reads it or a later value of the
 *   word (nothing switches it back). Relaxed loads suffice for this.
 * - R does not happen before L: then nothing the host can observe tells R
 *   from a request made just after the close, which is acted on at T's
 *   next cancellation point; R stays pending for it (libc's own points
 *   read it directly, the library's next close finds the way switched).
 *
 * The switch is a sequentially consistent store all the same, so that
 * even by the clock it is never later than the request: glibc's request
 * is an atomic read-modify-write of T's cancellation word, which a
 * sequentially consistent store before it cannot be delayed past (a
 * locked exchange on x86; on aarch64 a store-release, which the
 * read-modify-write's acquire load cannot pass). A relaxed store could
 * sit in a store buffer while the request is already visible.
 *
 * The real function is never NULL (real.c). The way is switched whatever
 * the call's outcome: a request for a thread that has exited costs the
 * process a pthread_testcancel per close, nothing more. */
IL_EXPORT int pthread_cancel(pthread_t thread)
{
    il_close_way_cancellable();
    return __atomic_load_n(&il_real.pthread_cancel, __ATOMIC_RELAXED)(thread);
}
