/* evloop: one process, non-blocking listener in epoll.
 * Level-triggered (default): one accept per wake-up.
 * -e: edge-triggered listener: accept until EAGAIN.
 * -4: accept4(SOCK_NONBLOCK|SOCK_CLOEXEC) with a NULL address (peer from
 *     getpeername); default: accept() with an address buffer, then fcntl.
 * -R CALL: read connections with CALL: read (default), readv, recv,
 *     recvfrom, recvmsg, __read_chk, __recv_chk or __recvfrom_chk.
 * -2: a second listener on ADDR, on a port of its own, served by the same
 *     loop; "second port=P" is printed before the ready line.
 * -T TITLE: writes TITLE over the memory of its arguments and environment,
 *     as servers that set their process title do (nginx, Redis, sshd):
 *     /proc/PID/environ then holds the title's tail, no variables. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

struct conn {
    struct linebuf lb;
    char ip[IP_STR];
};

static struct conn **conns;
static int max_fd;
static int epfd;
static int use_accept4;

static int take(int lfd, char *ip)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd;

    if (use_accept4) {
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            srv_fd_peer(fd, ip);
            if (!(fcntl(fd, F_GETFL) & O_NONBLOCK) || !(fcntl(fd, F_GETFD) & FD_CLOEXEC))
                fprintf(stderr, "accept4 flags lost on fd %d\n", fd);
        }
        return fd;
    }
    fd = accept(lfd, (struct sockaddr *)&ss, &len);
    if (fd >= 0) {
        srv_check_peer(fd, &ss, len);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        srv_peer_str(&ss, ip);
    }
    return fd;
}

static void drop(int fd)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    srv_log("close", conns[fd]->ip);
    free(conns[fd]);
    conns[fd] = NULL;
}

/* Returns 1 if a connection was accepted, 0 when none is pending or on error. */
static int accept_one(int lfd)
{
    struct epoll_event ev = {.events = EPOLLIN};
    char ip[IP_STR];
    int fd = take(lfd, ip);

    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            fprintf(stderr, "accept error(%d)\n", errno);
        return 0;
    }
    if (fd >= max_fd || !(conns[fd] = calloc(1, sizeof **conns))) {
        fprintf(stderr, "no room for fd %d\n", fd);
        close(fd);
        return 1;
    }
    srv_log("accept", ip);
    snprintf(conns[fd]->ip, sizeof conns[fd]->ip, "%s", ip);
    ev.data.fd = fd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    return 1;
}

static void loop(int lfd, int lfd2, int edge)
{
    struct epoll_event evs[64];

    for (;;) {
        int n = epoll_wait(epfd, evs, 64, -1);

        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd || fd == lfd2) {
                while (accept_one(fd) && edge)
                    ;
            } else if (conns[fd] && !srv_serve_read(fd, &conns[fd]->lb)) {
                drop(fd);
            }
        }
    }
}

/* The arguments and the environment's strings lie one after the other;
 * the title goes over all of them, NULs after it (the variables stay
 * readable to getenv from copies, as setproctitle implementations keep
 * them). */
static void set_title(int argc, char **argv, const char *title)
{
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **copy = calloc(n + 1, sizeof *copy);
    char *end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
    for (size_t i = 0; copy && i < n; i++) {
        if (environ[i] == end)
            end += strlen(environ[i]) + 1;
        copy[i] = strdup(environ[i]);
    }
    if (copy)
        environ = copy;
    char *start = argv[0], *text = strdup(title); /* title is in that memory too */
    memset(start, 0, (size_t)(end - start));
    snprintf(start, (size_t)(end - start), "%s", text ? text : "");
    free(text);
}

int main(int argc, char **argv)
{
    static const char usage[] = "evloop -l ADDR -p PORT [-a LOG] [-e] [-4] [-R CALL] [-2] [-T TITLE]";
    const char *title = NULL;
    struct srv_args a = {"127.0.0.1", 0, NULL};
    struct epoll_event ev = {.events = EPOLLIN};
    struct rlimit rl;
    int opt, edge = 0, second = 0, lfd, lfd2 = -1;

    while ((opt = getopt(argc, argv, "l:p:a:e4R:2T:")) != -1) {
        if (srv_common_opt(&a, opt, optarg))
            continue;
        if (opt == 'e')
            edge = 1;
        else if (opt == '4')
            use_accept4 = 1;
        else if (opt == '2')
            second = 1;
        else if (opt == 'T')
            title = optarg;
        else
            srv_usage_exit(usage);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    max_fd = rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur;
    conns = calloc((size_t)max_fd, sizeof *conns);
    lfd = srv_listen(&a);
    fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
    srv_log_open(a.log);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    ev.events |= edge ? EPOLLET : 0;
    ev.data.fd = lfd;
    if (!conns || epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0) {
        perror("setup");
        return 1;
    }
    if (second) {
        struct srv_args a2 = a;
        a2.port = 0;
        lfd2 = srv_listen(&a2);
        fcntl(lfd2, F_SETFL, fcntl(lfd2, F_GETFL) | O_NONBLOCK);
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        ev.data.fd = lfd2;
        if (getsockname(lfd2, (struct sockaddr *)&ss, &len) < 0 ||
            epoll_ctl(epfd, EPOLL_CTL_ADD, lfd2, &ev) < 0) {
            perror("second listener");
            return 1;
        }
        printf("second port=%d\n", ntohs(ss.ss_family == AF_INET
                                              ? ((struct sockaddr_in *)&ss)->sin_port
                                              : ((struct sockaddr_in6 *)&ss)->sin6_port));
    }
    if (title) /* the options' strings are in that memory: used by now */
        set_title(argc, argv, title);
    srv_ready(lfd);
    loop(lfd, lfd2, edge);
    return 0;
}
