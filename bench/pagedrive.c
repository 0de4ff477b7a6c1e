/* pagedrive: N accept+close cycles on loopback for the pages section
 * (bench/sections/pages.sh), run under valgrind's lackey. Prints on
 * stdout where the object that defines accept (the preloaded library) is
 * mapped and where its accept starts, so that the trace's accesses can be
 * told apart: "lib BASE END ACCEPT" in hex.
 * Usage: pagedrive CYCLES */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <link.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

struct span {
    uintptr_t addr, base, end;
};

static int find_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct span *s = arg;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (start < lo)
            lo = start;
        if (start + ph->p_memsz > hi)
            hi = start + ph->p_memsz;
    }
    if (s->addr < lo || s->addr >= hi)
        return 0;
    s->base = lo;
    s->end = hi;
    return 1;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

int main(int argc, char **argv)
{
    int cycles = argc > 1 ? atoi(argv[1]) : 40;
    struct span s = {.addr = (uintptr_t)dlsym(RTLD_DEFAULT, "accept")};
    if (!dl_iterate_phdr(find_object, &s))
        die("accept's object");
    printf("lib %lx %lx %lx\n", (unsigned long)s.base, (unsigned long)s.end,
           (unsigned long)s.addr);
    fflush(stdout);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 64) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) < 0)
        die("listener");
    for (int i = 0; i < cycles; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) < 0)
            die("connect");
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept(lfd, (struct sockaddr *)&peer, &plen);
        if (fd < 0)
            die("accept");
        close(fd);
        close(c);
    }
    return 0;
}
