/* acceptlat.so: times each accept()/accept4() that returns a connection.
 *
 * Loaded before the library, so that its accept is the "next" one:
 *
 *   LD_PRELOAD="build/bench/acceptlat.so build/libiplimit.so" ACCEPTLAT_OUT=FILE server
 *
 * Each call is timed with CLOCK_MONOTONIC around the next layer (the
 * library's accept, then the kernel's).  The server must use a
 * non-blocking listener (build/tests/evloop -e) so that a call never waits
 * in the kernel for a connection to arrive: the time is then the kernel's
 * accept plus everything the library does in the call, an inline
 * reconciliation included.  For every call that returns a connection one
 * line "acceptlat MICROSECONDS" is appended to ACCEPTLAT_OUT with a single
 * write(2) (the file is opened once, O_APPEND), after the clock is read.
 * Failed calls (EAGAIN at the end of an edge-triggered burst) are not
 * recorded.  Without ACCEPTLAT_OUT the shim only passes the calls on. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef int (*accept_fn)(int, struct sockaddr *, socklen_t *);
typedef int (*accept4_fn)(int, struct sockaddr *, socklen_t *, int);

static accept_fn next_accept;
static accept4_fn next_accept4;
static int out_fd = -1;

__attribute__((constructor)) static void acceptlat_init(void)
{
    next_accept = (accept_fn)dlsym(RTLD_NEXT, "accept");
    next_accept4 = (accept4_fn)dlsym(RTLD_NEXT, "accept4");
    const char *path = getenv("ACCEPTLAT_OUT");
    if (path && *path)
        out_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

static long long ns_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void note(long long ns)
{
    char line[48];
    int n = snprintf(line, sizeof line, "acceptlat %lld.%03lld\n", ns / 1000, ns % 1000);
    if (n > 0 && (size_t)n < sizeof line && write(out_fd, line, (size_t)n) < 0) {
        /* nothing to do: the measurement is lost, the server goes on */
    }
}

int accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    if (!next_accept) {
        errno = ENOSYS;
        return -1;
    }
    if (out_fd < 0)
        return next_accept(fd, addr, addrlen);
    long long t0 = ns_now();
    int cfd = next_accept(fd, addr, addrlen);
    long long t1 = ns_now();
    if (cfd >= 0) {
        int saved_errno = errno;
        note(t1 - t0);
        errno = saved_errno;
    }
    return cfd;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    if (!next_accept4) {
        errno = ENOSYS;
        return -1;
    }
    if (out_fd < 0)
        return next_accept4(fd, addr, addrlen, flags);
    long long t0 = ns_now();
    int cfd = next_accept4(fd, addr, addrlen, flags);
    long long t1 = ns_now();
    if (cfd >= 0) {
        int saved_errno = errno;
        note(t1 - t0);
        errno = saved_errno;
    }
    return cfd;
}
