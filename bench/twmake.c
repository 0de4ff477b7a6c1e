/* twmake: leaves COUNT TCP sockets in TIME_WAIT on the machine, for the
 * reccost section of bench/run.sh (reconciliation's cost with other
 * services' sockets present).
 *
 * A child process listens on ADDR (port chosen by the kernel) and closes
 * every connection as soon as it accepts it: the server side closes first,
 * so it is the server's socket that stays in TIME_WAIT (60 s on Linux),
 * holding no fd. The parent connects COUNT times, from source addresses
 * SRC + k % 256 (ports chosen by the kernel: no 4-tuple is reused), reads
 * until the EOF and closes. Prints "made N" and exits; the TIME_WAIT
 * sockets stay behind for their minute.
 *
 * Usage: twmake -a ADDR -n COUNT [-s SRC] [-t SECONDS] */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.2", *src = "127.3.0.0";
    long count = 0;
    double secs = 120;
    int opt;
    while ((opt = getopt(argc, argv, "a:n:s:t:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'n': count = atol(optarg); break;
        case 's': src = optarg; break;
        case 't': secs = atof(optarg); break;
        default:
            fprintf(stderr, "usage: twmake -a ADDR -n COUNT [-s SRC] [-t SECONDS]\n");
            return 2;
        }
    }
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct in_addr base;
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1 || inet_pton(AF_INET, src, &base) != 1)
        return 2;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = sizeof sa;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 4096) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
        perror("twmake: listen");
        return 1;
    }
    pid_t child = fork();
    if (child < 0)
        return 1;
    if (child == 0) {
        alarm((unsigned)secs + 5);
        for (;;) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0)
                close(fd);
        }
    }
    close(lfd);
    double end = now() + secs;
    long made = 0;
    uint32_t first = ntohl(base.s_addr);
    char buf[64];
    for (long k = 0; k < count && now() < end; k++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in from = {.sin_family = AF_INET};
        from.sin_addr.s_addr = htonl(first + (uint32_t)(k % 256));
        if (fd < 0 || bind(fd, (struct sockaddr *)&from, sizeof from) != 0 ||
            connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        while (read(fd, buf, sizeof buf) > 0)
            ;
        close(fd);
        made++;
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    printf("made %ld\n", made);
    return made == count ? 0 : 1;
}
