/* cancelearly.so: a cancellation request made before libiplimit's
 * constructor (tests/integration/cancelclose.bats).
 *
 * Preloaded after libiplimit (LD_PRELOAD="libiplimit.so cancelearly.so"),
 * so that its constructor runs first, as another library's constructor
 * would. The constructor starts a thread with cancellation disabled and
 * calls pthread_cancel on it at once: the request is pending from before
 * the library's own constructor resolved close()'s way for counted
 * connections (interpose.c, close_counted_way). The thread waits until
 * main posts cancelearly_go, then listens on 127.0.0.1, connects to
 * itself, accepts (a counted connection), enables cancellation (no
 * cancellation point) and closes the accepted fd: close must act on the
 * request after the close, as it would on one made later. Until main's
 * post the thread calls nothing the library wraps (semaphores only), so
 * that it never runs the library's code while the library's constructor
 * does.
 *
 * The main program (cancelclose with CANCELCLOSE_EARLY) finds
 * cancelearly_ready, cancelearly_go and cancelearly_thread with dlsym,
 * posts and joins the thread. Every wait is bounded (SO_RCVTIMEO 5 s;
 * main's post always comes or the process ends). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int cancelearly_ready;  /* the thread runs, its request made */
sem_t cancelearly_go;   /* main's word to go on */
pthread_t cancelearly_thread;
int cancelearly_accepted = -1; /* the fd the thread accepted and closed */

static sem_t disabled;

static void *early_thread(void *arg)
{
    (void)arg;
    /* A thread starts with cancellation enabled: disabled first, then the
     * constructor is told, so that the request finds it disabled and is
     * only recorded. */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    sem_post(&disabled);
    int tries = 0; /* EINTR only; main's post ends the wait */
    while (sem_wait(&cancelearly_go) != 0)
        if (++tries == 100)
            return NULL;
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(listener, 8) != 0 || getsockname(listener, (struct sockaddr *)&addr, &len) != 0)
        return NULL;
    int client = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (client < 0 || connect(client, (struct sockaddr *)&addr, sizeof addr) != 0)
        return NULL;
    struct sockaddr_in peer;
    socklen_t peer_len = sizeof peer;
    int fd = accept(listener, (struct sockaddr *)&peer, &peer_len);
    cancelearly_accepted = fd;
    if (fd < 0)
        return NULL;
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    close(fd); /* a cancellation point: the thread ends here, after the close */
    return NULL;
}

__attribute__((constructor)) static void cancel_early(void)
{
    if (sem_init(&disabled, 0, 0) != 0 || sem_init(&cancelearly_go, 0, 0) != 0 ||
        pthread_create(&cancelearly_thread, NULL, early_thread, NULL) != 0)
        return;
    int tries = 0; /* EINTR only; the thread posts first thing */
    while (sem_wait(&disabled) != 0)
        if (++tries == 100)
            return; /* main finds cancelearly_ready 0 */
    pthread_cancel(cancelearly_thread);
    cancelearly_ready = 1;
}
