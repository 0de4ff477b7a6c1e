/* cancelclose: close() of a counted connection by a thread with a
 * cancellation request pending (tests/integration/cancelclose.bats).
 *
 * One process, self-contained: it listens on 127.0.0.1 (ephemeral port),
 * connects to itself from 127.0.0.1, and a worker thread accepts that
 * connection, asks for its own cancellation (pthread_cancel(pthread_self()),
 * deferred) and closes the fd. With the library, close() is a cancellation
 * point acted on just after the call: the fd is closed, the count released,
 * then the thread is cancelled. The main thread then joins the worker and
 * connects again from the same source: under IPLIMIT_MAX=1 that second
 * connection is admitted only if the first one's count was released.
 *
 * With CANCELCLOSE_KEEP set, the worker keeps the fd open instead (the
 * control: the second connection must then be refused).
 *
 * With CANCELCLOSE_OTHER set, the request comes from the main thread: the
 * worker accepts with cancellation disabled, tells main through a pipe,
 * waits for main's word through another (main calls pthread_cancel on it
 * first, then writes), enables cancellation (no cancellation point) and
 * closes. The request is ordered before the close only by the pipe: the
 * library's close must see it all the same (interpose_cancel.c).
 *
 * With CANCELCLOSE_EARLY set, cancelearly.so (preloaded after the library)
 * made the request before the library's constructor ran; main only tells
 * its thread to go (a semaphore), joins it and reports as above (tests/servers/
 * cancelearly.c); the listener below then serves the second connection.
 *
 * Prints one line: "cancelled=C closed=C second=ok|refused|error" and exits
 * 0 (the test reads the line). Every wait is bounded (SO_RCVTIMEO 5 s). */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int listener;
static int accepted_fd = -1;
static int to_main[2] = {-1, -1}, to_worker[2] = {-1, -1}; /* CANCELCLOSE_OTHER */

static void *worker(void *arg)
{
    (void)arg;
    bool other = getenv("CANCELCLOSE_OTHER") != NULL;
    if (other)
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    int fd = accept(listener, NULL, NULL);
    accepted_fd = fd;
    if (fd < 0 || getenv("CANCELCLOSE_KEEP"))
        return NULL; /* the control: the connection stays open and counted */
    if (other) {
        char c = 'a';
        if (write(to_main[1], &c, 1) != 1 || read(to_worker[0], &c, 1) != 1)
            return NULL; /* main's request never came: cancelled=0 */
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    } else {
        pthread_cancel(pthread_self());
    }
    close(fd); /* a cancellation point: the thread ends here, after the close */
    return NULL;
}

static int connect_self(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)addr, sizeof *addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The second connection from the same source, on an accept with a
 * timeout after the kernel has queued it: admitted, or refused by the
 * library (-1/EAGAIN and the peer reset); then the result line. */
static void report(struct sockaddr_in *addr, int cancelled, int closed)
{
    int second = connect_self(addr);
    const char *verdict = "error";
    if (second >= 0) {
        struct timeval tv = {5, 0};
        setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        int fd = accept(listener, NULL, NULL);
        verdict = fd >= 0 ? "ok" : (errno == EAGAIN || errno == EWOULDBLOCK) ? "refused" : "error";
        if (fd >= 0)
            close(fd);
        close(second);
    }
    printf("cancelled=%d closed=%d second=%s\n", cancelled, closed, verdict);
}

/* CANCELCLOSE_EARLY: cancelearly.so's thread accepts and closes a
 * connection of its own (from 127.0.0.1 too); then a connection to our
 * listener from the same source is admitted under IPLIMIT_MAX=1 only if
 * the thread's close released its count. */
static int early(struct sockaddr_in *addr)
{
    int *ready = dlsym(RTLD_DEFAULT, "cancelearly_ready");
    sem_t *go = dlsym(RTLD_DEFAULT, "cancelearly_go");
    pthread_t *thread = dlsym(RTLD_DEFAULT, "cancelearly_thread");
    int *accepted = dlsym(RTLD_DEFAULT, "cancelearly_accepted");
    void *status = NULL;
    if (!ready || !go || !thread || !accepted || !*ready || sem_post(go) != 0 ||
        pthread_join(*thread, &status) != 0) {
        fprintf(stderr, "cancelclose: no cancelearly.so thread to start\n");
        return 2;
    }
    int cancelled = status == PTHREAD_CANCELED;
    int closed = *accepted >= 0 && fcntl(*accepted, F_GETFD) == -1 && errno == EBADF;
    report(addr, cancelled, closed);
    return 0;
}

int main(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(listener, 8) != 0 || getsockname(listener, (struct sockaddr *)&addr, &len) != 0) {
        perror("cancelclose: listen");
        return 2;
    }
    if (pipe(to_main) != 0 || pipe(to_worker) != 0) {
        perror("cancelclose: pipe");
        return 2;
    }
    if (getenv("CANCELCLOSE_EARLY"))
        return early(&addr);
    int first = connect_self(&addr);
    pthread_t thread;
    void *status = NULL;
    if (first < 0 || pthread_create(&thread, NULL, worker, NULL) != 0) {
        perror("cancelclose: first connection");
        return 2;
    }
    if (getenv("CANCELCLOSE_OTHER")) {
        /* The worker's word, then the request, then ours: the request is
         * made while the worker has the fd open and cannot act on it. */
        char c;
        if (read(to_main[0], &c, 1) == 1 && pthread_cancel(thread) == 0)
            (void)!write(to_worker[1], &c, 1);
        else
            close(to_worker[1]); /* the worker's read ends: not cancelled */
    }
    if (pthread_join(thread, &status) != 0) {
        perror("cancelclose: join");
        return 2;
    }
    int cancelled = status == PTHREAD_CANCELED;
    int closed = accepted_fd >= 0 && fcntl(accepted_fd, F_GETFD) == -1 && errno == EBADF;

    report(&addr, cancelled, closed);
    close(first);
    return 0;
}
