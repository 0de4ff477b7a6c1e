/* ilhold: opens COUNT TCP connections and holds them open.
 *
 * Connection k (k = 0..COUNT-1) comes from source address
 * SRC + (OFFSET + k) % NSRC, so several ilhold processes with consecutive
 * offsets spread one large held set over many distinct sources (each
 * process keeps below the per-process fd limit).  Prints "held N" once
 * the connections are up, then keeps them until a SIGTERM or until SECONDS
 * (default 600) have passed.
 *
 * Usage: ilhold -a ADDR -p PORT -n COUNT [-s SRC -N NSRC -o OFFSET] [-t SECONDS] */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 0, opt;
    long count = 0, offset = 0, nsrc = 1;
    double secs = 600;
    uint32_t src_base = 0;
    while ((opt = getopt(argc, argv, "a:p:n:s:N:o:t:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'n': count = atol(optarg); break;
        case 's': {
            struct in_addr a;
            if (inet_pton(AF_INET, optarg, &a) != 1) {
                fprintf(stderr, "ilhold: bad -s\n");
                return 2;
            }
            src_base = ntohl(a.s_addr);
            break;
        }
        case 'N': nsrc = atol(optarg); break;
        case 'o': offset = atol(optarg); break;
        case 't': secs = atof(optarg); break;
        default:
            fprintf(stderr, "usage: ilhold -a ADDR -p PORT -n COUNT [-s SRC -N NSRC -o OFF] "
                            "[-t SECONDS]\n");
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || count < 0 || count > 1000000 || nsrc < 1 || secs <= 0) {
        fprintf(stderr, "ilhold: bad arguments\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &dst.sin_addr) != 1) {
        fprintf(stderr, "ilhold: bad -a\n");
        return 2;
    }
    time_t end = time(NULL) + (time_t)secs;
    long held = 0;
    for (long k = 0; k < count && !stop && time(NULL) < end; k++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            perror("ilhold: socket");
            break;
        }
        if (src_base) {
            int one = 1;
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            struct sockaddr_in src = {.sin_family = AF_INET};
            src.sin_addr.s_addr = htonl(src_base + (uint32_t)((offset + k) % nsrc));
            if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
                perror("ilhold: bind");
                close(fd);
                break;
            }
        }
        if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0) {
            perror("ilhold: connect");
            close(fd);
            break;
        }
        held++;
    }
    printf("held %ld\n", held);
    fflush(stdout);
    while (!stop && time(NULL) < end)
        poll(NULL, 0, 200);
    return held == count ? 0 : 1;
}
