/* Helpers shared by the iplimit test servers (see tests/README.md). */
#ifndef IL_TEST_COMMON_H
#define IL_TEST_COMMON_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>

#define IP_STR INET6_ADDRSTRLEN

struct linebuf {
    size_t len;
    char buf[256];
};

struct srv_args {
    const char *addr;
    int port;
    const char *log;
};

void srv_usage_exit(const char *usage);
/* -l ADDR, -p PORT, -a LOG; and -R CALL (the read call of srv_serve_read)
 * for a server whose getopt string has it. */
int srv_common_opt(struct srv_args *a, int opt, const char *arg);
int srv_listen(const struct srv_args *a);
void srv_ready(int lfd);
void srv_log_open(const char *path);
void srv_log(const char *event, const char *ip);
void srv_peer_str(const struct sockaddr_storage *ss, char *buf);
void srv_fd_peer(int fd, char *buf);
void srv_check_peer(int fd, const struct sockaddr_storage *ss, socklen_t len);
int srv_serve_read(int fd, struct linebuf *lb);
/* Serves fd to its end: logs "accept IP", echoes, closes, logs "close IP". */
void srv_serve_conn(int fd);
/* The connections one process holds and serves with poll (fdsafe -m
 * rawclose, spawner, execserver): slot 0 is the listener. srv_poll_add
 * takes an accepted fd and logs "accept IP"; srv_poll_serve serves the
 * connections poll found ready and, at EOF, closes each with close_fn and
 * logs "close IP". Room for SRV_POLL_MAX connections (srv_poll_full). */
#define SRV_POLL_MAX 64
struct srv_pollset {
    struct pollfd fds[SRV_POLL_MAX + 1];
    struct linebuf bufs[SRV_POLL_MAX + 1];
    char ips[SRV_POLL_MAX + 1][IP_STR];
    int n; /* slots in use, the listener's included */
};
void srv_poll_init(struct srv_pollset *s, int lfd);
int srv_poll_full(const struct srv_pollset *s);
void srv_poll_add(struct srv_pollset *s, int fd);
void srv_poll_serve(struct srv_pollset *s, int (*close_fn)(int));
void srv_on_signal(int sig, void (*fn)(int));
void srv_child_init(pid_t parent);
void srv_track_child(pid_t pid);
void srv_untrack_child(pid_t pid);
/* A SIGCHLD handler: reaps every exited child and untracks it. */
void srv_reap_children(int sig);
void srv_exit_on_term(void);
int srv_atoi(const char *s, int min, int max);

#endif
