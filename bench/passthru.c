/* passthru.so: an interposer that does nothing but pass accept, accept4,
 * close, read and recv on to libc, for section cpu's lower bound on what
 * preloading any library of this kind costs a server.
 *
 *   LD_PRELOAD=build/bench/passthru.so [PASSTHRU_THREAD=sleep|exit] server
 *
 * PASSTHRU_THREAD starts one thread in each process at its first accept
 * that returns a connection, as the library's reconciler thread is started
 * (and in no process that never accepts): "sleep" keeps it sleeping for
 * ever; "exit" lets it return at once. Either way glibc has marked the
 * process multi-threaded from then on, so the two separate what a second
 * thread costs by being there from what glibc's multi-threaded paths cost
 * alone. PASSTHRU_PAGES=K (at most 64) writes one word in each of K pages
 * of its own at every accept that returns a connection and reads them at
 * every close: what K more pages on the way of a connection cost (each a
 * page walk after a switch between processes where the TLB is not
 * tagged). PASSTHRU_STRIDE=B (64 to 4096, default 4096) puts the K words
 * B bytes apart instead: with 128, K cache lines in K/32 pages, so that
 * lines and pages can be told apart. The next functions are looked up
 * once, in the constructor. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

static int (*next_accept)(int, struct sockaddr *, socklen_t *);
static int (*next_accept4)(int, struct sockaddr *, socklen_t *, int);
static int (*next_close)(int);
static ssize_t (*next_read)(int, void *, size_t);
static ssize_t (*next_recv)(int, void *, size_t, int);

enum thread_mode { NO_THREAD, THREAD_SLEEPS, THREAD_EXITS };
static enum thread_mode thread_mode;
static int thread_started; /* per process: a forked child starts its own */
static pid_t thread_pid;

#define MAX_PAGES 64
static volatile unsigned long *pages; /* MAX_PAGES pages, one word used in each */
static unsigned n_pages;
static unsigned stride_words = 512; /* PASSTHRU_STRIDE bytes / 8: a page by default */

__attribute__((constructor)) static void passthru_init(void)
{
    next_accept = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    next_accept4 =
        (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    next_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
    next_read = (ssize_t(*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
    next_recv = (ssize_t(*)(int, void *, size_t, int))dlsym(RTLD_NEXT, "recv");
    const char *mode = getenv("PASSTHRU_THREAD");
    if (mode && !strcmp(mode, "sleep"))
        thread_mode = THREAD_SLEEPS;
    else if (mode && !strcmp(mode, "exit"))
        thread_mode = THREAD_EXITS;
    const char *k = getenv("PASSTHRU_PAGES");
    if (k) {
        n_pages = (unsigned)atoi(k);
        if (n_pages > MAX_PAGES)
            n_pages = MAX_PAGES;
        void *m = mmap(NULL, MAX_PAGES * 4096UL, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            n_pages = 0;
        else
            pages = m;
        const char *st = getenv("PASSTHRU_STRIDE");
        int stride = st ? atoi(st) : 0;
        if (stride >= 64 && stride <= 4096)
            stride_words = (unsigned)stride / 8;
    }
}

/* One word of each of the K pages: written at accept, read at close. */
static void touch_pages(int write)
{
    unsigned long sum = 0;
    for (unsigned i = 0; i < n_pages; i++) {
        if (write)
            pages[i * stride_words] += 1;
        else
            sum += pages[i * stride_words];
    }
    (void)sum;
}

static void *idle_thread(void *arg)
{
    (void)arg;
    while (thread_mode == THREAD_SLEEPS)
        pause();
    return NULL;
}

static int after_accept(int fd)
{
    if (fd >= 0 && n_pages)
        touch_pages(1);
    if (fd < 0 || thread_mode == NO_THREAD)
        return fd;
    pid_t self = getpid();
    if (thread_started && thread_pid == self)
        return fd;
    thread_started = 1;
    thread_pid = self;
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_create(&thread, &attr, idle_thread, NULL);
    pthread_attr_destroy(&attr);
    return fd;
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    return after_accept(next_accept(fd, addr, len));
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    return after_accept(next_accept4(fd, addr, len, flags));
}

EXPORT int close(int fd)
{
    if (n_pages)
        touch_pages(0);
    return next_close(fd);
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    return next_read(fd, buf, n);
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    return next_recv(fd, buf, n, flags);
}
